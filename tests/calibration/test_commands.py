"""The command line: ``teleop calibrate``, ``teleop calibration list|show|diff`` and
``teleop doctor``, through their argparse registration (as teleop.cli wires them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from calibration.records import format_utc, utc_now
from calibration.store import CalibrationStore
from teleop.errors import TeleopError
from tests.calibration.conftest import cli


def test_calibrate_list_show_diff_and_a_tampered_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    data = str(tmp_path)
    rc = cli(
        "calibrate", "--rig", "sim-bimanual", "--arm", "left_leader", "--camera", "left_wrist",
        "--operator", "op9", "--data-dir", data,
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "== left_leader: sweep shoulder" in out
    assert out.count("saved ") == 2
    store = CalibrationStore(tmp_path)
    active = store.active("sim-bimanual")
    leader, camera = active["left_leader"], active["left_wrist"]
    assert leader.record.operator == "op9"
    assert camera.record.calibration.serial.startswith("SYN")  # type: ignore[union-attr]

    # A second calibration of the same arm (a changed offset) becomes the active one.
    body = leader.record.body()
    body["created_utc"] = format_utc(utc_now())
    body["calibration"]["joints"][1]["offset_rad"] += 0.01
    newer = store.save(type(leader.record).model_validate(body))

    assert cli("calibration", "list", "--rig", "sim-bimanual", "--data-dir", data) == 0
    out = capsys.readouterr().out
    marked = [line for line in out.splitlines() if line.startswith("*")]
    assert any(newer.id in line for line in marked)
    assert not any(leader.id in line for line in marked)
    assert any(camera.id in line for line in marked)
    assert sum("Z-" in line for line in out.splitlines()) == 3  # one row per record

    assert cli("calibration", "show", newer.id[:20], "--data-dir", data) == 0
    out = capsys.readouterr().out
    assert f"record    {newer.id}" in out and "active    yes" in out and "shoulder" in out
    assert cli("calibration", "show", str(leader.path), "--data-dir", data, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sha256"] == leader.sha256 and shown["record"]["operator"] == "op9"

    assert cli("calibration", "diff", leader.id, newer.id, "--data-dir", data) == 0
    out = capsys.readouterr().out
    assert "shoulder: offset" in out and "+0.0100" in out and "waist: same" in out

    # One byte changed on disk: every command refuses it in one line naming the file.
    os.chmod(leader.path, 0o644)
    raw = bytearray(leader.path.read_bytes())
    at = raw.index(b'"operator":"op9"') + len('"operator":"op')
    raw[at] = ord("8")
    leader.path.write_bytes(bytes(raw))
    with pytest.raises(TeleopError) as err:
        cli("calibration", "show", leader.id, "--data-dir", data)
    assert str(leader.path) in str(err.value) and "altered" in str(err.value)
    assert "\n" not in str(err.value)
    assert cli("calibration", "list", "--data-dir", data) == 1
    assert f"! calibration record {leader.path} was altered" in capsys.readouterr().out


def test_calibrate_names_what_does_not_exist(tmp_path: Path):
    with pytest.raises(TeleopError, match="rig sim-bimanual has no arm 'nope'; arms: left_leader"):
        cli("calibrate", "--rig", "sim-bimanual", "--arm", "nope", "--data-dir", str(tmp_path))
    with pytest.raises(TeleopError, match="name what to calibrate"):
        cli("calibrate", "--rig", "sim-bimanual", "--data-dir", str(tmp_path))


def test_doctor_on_a_bad_rig_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\n')
    assert cli("doctor", "--rig", str(bad), "--data-dir", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "rig file" in out and "arms" in out
