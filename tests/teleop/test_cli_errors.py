"""Bad input: one clear line, a non-zero exit, and nothing half-written left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigs.dynamixel.bus import MotorMissingError
from rigs.spec import load_rig
from teleop.cli import main
from teleop.recording.policy import RecordingPolicy
from teleop.recording.run import start_session
from teleop.rig_runtime import RigRuntime


def _record(tmp_path: Path, rig: str, *extra: str) -> list[str]:
    return ["record", "--rig", rig, "--operator", "op", "--task", "t", "--seconds", "1",
            "--data-dir", str(tmp_path / "data"), *extra]  # fmt: skip


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("teleop: error: ")
    return err[0]


def test_unknown_preset(tmp_path, capsys):
    assert main(_record(tmp_path, "sim-bimanul")) == 2
    line = _one_error_line(capsys)
    assert "unknown rig preset 'sim-bimanul'" in line and "sim-bimanual" in line
    assert not (tmp_path / "data").exists()


def test_malformed_rig_file(tmp_path, capsys):
    bad = tmp_path / "rig.toml"
    bad.write_text("id = 'x'\n[[arms]\n")
    assert main(_record(tmp_path, str(bad))) == 2
    assert f"{bad}: not valid TOML" in _one_error_line(capsys)


def test_invalid_rig_file(tmp_path, capsys):
    bad = tmp_path / "rig.toml"
    bad.write_text(load_rig("sim-bimanual").toml_text.replace("fps = 30", "fps = -5", 1))
    assert main(_record(tmp_path, str(bad))) == 2
    line = _one_error_line(capsys)
    assert f"{bad}: field 'cameras[0].fps'" in line and "greater than or equal to 1" in line


def test_port_that_does_not_exist(tmp_path, capsys):
    rig = tmp_path / "aloha.toml"
    text = load_rig("aloha-bimanual").toml_text
    rig.write_text(text[: text.index("[[cameras]]")])  # arms only
    assert main(_record(tmp_path, str(rig))) == 2
    line = _one_error_line(capsys)
    assert "bus left_leader: port /dev/serial/by-id/" in line and "does not exist" in line
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_bad_rate(tmp_path, capsys):
    assert main(_record(tmp_path, "sim-bimanual", "--rate", "5000")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --rate: 5000 is out of range" in err[0], err
    assert "at most 1000" in err[0]


def test_inspect_missing_and_corrupt_files(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.mcap")]) == 2
    assert "nope.mcap" in _one_error_line(capsys)
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 100)
    assert main(["inspect", str(junk)]) == 2
    assert "teleop recover" in _one_error_line(capsys)


def test_motor_that_does_not_answer_leaves_no_session(tmp_path):
    data = tmp_path / "data"
    with RigRuntime(load_rig("sim-bimanual")) as runtime:
        assert runtime.virtual is not None
        runtime.virtual.inject_motor_silent("left_follower", 4)
        with pytest.raises(MotorMissingError, match="bus left_follower .*motor id 4 \\(elbow"):
            start_session(
                runtime,
                data,
                operator="op",
                task="t",
                policy=RecordingPolicy(allow_uncalibrated=True),
            )
    assert not data.exists()


def test_record_refuses_without_calibration_and_names_the_fix(tmp_path, capsys):
    assert main(_record(tmp_path, "sim-bimanual", "--min-free-gb", "0")) == 2
    line = _one_error_line(capsys)
    assert "arm left_leader of rig sim-bimanual has no calibration record" in line
    assert "teleop calibrate --rig sim-bimanual --arm left_leader" in line


def test_record_refuses_a_follower_far_from_its_leader(tmp_path, capsys, calibrated_root):
    data = calibrated_root(tmp_path / "data")
    assert (
        main(_record(tmp_path, "sim-bimanual", "--min-free-gb", "0", "--max-pose-delta", "0.01"))
        == 2
    )
    line = _one_error_line(capsys)
    assert line.startswith("teleop: error: cannot start: ") and "pose delta" in line
    assert "_follower." in line and "rad from " in line and "move " in line
    assert [p.name for p in data.iterdir()] == ["calibration"]  # no session folder was made
