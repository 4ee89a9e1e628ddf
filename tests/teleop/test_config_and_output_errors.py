"""Configuration files and output channels that go wrong: one line, exit 2, nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rigs.spec import RigSpecError, parse_rig
from teleop.cli import main
from teleop.tasks import TasksFileError, load_tasks


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("teleop: error: "), err
    return err[0]


def test_a_rig_file_nested_50000_deep_is_one_clear_error():
    with pytest.raises(RigSpecError, match=r"rig\.toml: nested too deeply"):
        parse_rig("id = " + "[" * 50_000 + "]" * 50_000, "rig.toml")


def test_tasks_toml_with_an_empty_failure_reason_is_refused(tmp_path: Path):
    (tmp_path / "tasks.toml").write_text(
        '[[tasks]]\nname = "pick"\ntarget_episodes = 5\nepisode_s = 10\nfailure_reasons = ["dropped", " "]\n'
    )
    with pytest.raises(TasksFileError, match="an empty failure reason"):
        load_tasks(tmp_path)


@pytest.mark.parametrize("where", ["/nonexistent/data", ""])
def test_episodes_on_a_missing_or_empty_data_dir_says_so(where: str, capsys):
    assert main(["episodes", "--data-dir", where]) == 2
    line = _one_error_line(capsys)
    assert "data" in line and ("no such data directory" in line or "is empty" in line)


def test_output_piped_into_head_ends_quietly(recorded_root: Path):
    cmd = f"{sys.executable} -m teleop.cli episodes --data-dir {recorded_root} | head -c 10"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 10 and done.stderr == ""


@pytest.mark.parametrize("sub", ["", "new-folder"])
@pytest.mark.parametrize("command", ["record", "calibrate"])
def test_a_data_root_that_cannot_be_written_is_refused_before_the_rig_opens(
    tmpfs, capsys, command: str, sub: str
):
    read_only = tmpfs("1m", read_only=True)
    data = read_only / sub if sub else read_only
    args = {
        "record": ["record", "--rig", "sim-bimanual", "--operator", "op", "--task", "t",
                   "--seconds", "1", "--quiet"],
        "calibrate": ["calibrate", "--rig", "sim-bimanual", "--all", "--yes", "--operator", "op"],
    }[command]  # fmt: skip
    assert main([*args, "--data-dir", str(data)]) == 2
    line = _one_error_line(capsys)
    assert "not writable" in line and str(read_only) in line
    assert sorted(read_only.iterdir()) == []


def test_episodes_on_a_data_root_where_the_catalog_cannot_be_written(tmpfs, capsys):
    read_only = tmpfs("1m", read_only=True)
    assert main(["episodes", "--data-dir", str(read_only)]) == 2
    line = _one_error_line(capsys)
    assert "cannot write the catalog" in line and str(read_only) in line
