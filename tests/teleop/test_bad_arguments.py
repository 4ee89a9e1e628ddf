"""Every numeric argument is finite and in range and every identity is named, refused while
the arguments are parsed: one line, exit 2, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from teleop.cli import main

RECORD = ["record", "--rig", "sim-bimanual", "--operator", "op", "--task", "t"]


@pytest.mark.parametrize(
    ("argv", "argument", "why"),
    [
        (RECORD + ["--seconds", "nan"], "--seconds", "not finite"),
        (RECORD + ["--seconds", "inf"], "--seconds", "not finite"),
        (RECORD + ["--seconds", "0"], "--seconds", "out of range"),
        (RECORD + ["--episodes", "0"], "--episodes", "out of range"),
        (RECORD + ["--episodes", "1.5"], "--episodes", "not a whole number"),
        (RECORD + ["--max-pose-delta", "nan"], "--max-pose-delta", "not finite"),
        (RECORD + ["--max-calibration-age-days", "nan"], "--max-calibration-age-days", "not finite"),
        (RECORD + ["--stop-free-gb", "-1"], "--stop-free-gb", "out of range"),
        (RECORD + ["--min-free-gb", "1e400"], "--min-free-gb", "not finite"),
        (RECORD + ["--rate", "0.5"], "--rate", "out of range"),
        (RECORD + ["--seed", "-1"], "--seed", "out of range"),
        (["record", "--rig", "sim-bimanual", "--operator", "", "--task", "t"], "--operator", "empty"),
        (["record", "--rig", "sim-bimanual", "--operator", "op", "--task", "  "], "--task", "empty"),
        (["replay", "--rig", "sim-bimanual", "x.mcap", "--speed", "nan"], "--speed", "not finite"),
        (["replay", "--rig", "sim-bimanual", "x.mcap", "--speed", "0"], "--speed", "out of range"),
        (["replay", "--rig", "sim-bimanual", "x.mcap", "--approach-speed", "nan"], "--approach-speed", "not finite"),
        (["doctor", "--rig", "sim-bimanual", "--max-calibration-age-days", "nan"],
         "--max-calibration-age-days", "not finite"),
        (["calibrate", "--rig", "sim-bimanual", "--all", "--operator", ""], "--operator", "empty"),
        (["label", "x.mcap", "--label", "success", "--reviewer", ""], "--reviewer", "empty"),
        (["export", "lerobot", "--where", "1", "--out", "o", "--fps", "inf"], "--fps", "not finite"),
        (["bench", "crash", "--trials", "0"], "--trials", "out of range"),
    ],
)  # fmt: skip
def test_refused_at_parse_time_in_one_line(
    argv, argument, why, tmp_path: Path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    assert main([*argv, "--data-dir", str(data)] if argv[0] != "bench" else argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"argument {argument}: " in err[0] and why in err[0], err[0]
    assert not data.exists() and list(tmp_path.iterdir()) == []
