"""Squeeze-to-start, countdown with sound cues, and the serial pedal driving the record screen.

The squeeze and the pedal run on the virtual rig through the real paths: the virtual rig's
hands close both leader grippers; a pseudo-terminal is the pedal's serial port.
"""

from __future__ import annotations

import os
import re
import tty
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from rigs.pedal import SerialPedal
from rigs.spec import load_rig
from teleop.recording.lifecycle import RunnerState
from teleop.recording.policy import RecordingPolicy
from ui.app import MainWindow
from ui.squeeze import LeaderGripper, SqueezeDetector

from .test_record_flow import manifest, write_lists


def grippers() -> list[LeaderGripper]:
    # Leader a closes at 0.1 rad and opens at 1.1; leader b is mounted the other way round.
    return [LeaderGripper("a", 1, 0.1, 1.1), LeaderGripper("b", 0, 2.0, 1.0)]


def pose(a: float, b: float) -> dict[str, np.ndarray]:
    return {"a": np.array([0.0, a]), "b": np.array([b])}


def test_detector_fires_once_after_hold_and_needs_a_release_first():
    d = SqueezeDetector(grippers(), hold_s=0.5)
    # Already squeezed when it starts watching: nothing until both were seen open.
    assert not d.update(pose(0.1, 2.0), 0.0)
    assert not d.update(pose(0.1, 2.0), 1.0)
    assert not d.update(pose(1.1, 1.0), 1.1)  # open
    assert not d.update(pose(0.12, 1.95), 1.2)  # both closed (within 20 % of the range)
    assert not d.update(pose(0.12, 1.95), 1.6)
    assert d.held_for(1.6) == pytest.approx(0.4)
    assert d.update(pose(0.12, 1.95), 1.71)  # 0.51 s held: fires
    assert not d.update(pose(0.12, 1.95), 3.0)  # and not again while still squeezed
    assert not d.update(pose(1.1, 1.0), 3.1)
    assert not d.update(pose(0.1, 2.0), 3.2)


def test_detector_one_gripper_or_a_break_does_not_count():
    d = SqueezeDetector(grippers(), hold_s=0.5)
    d.update(pose(1.1, 1.0), 0.0)
    for t in np.arange(0.1, 2.0, 0.05):
        assert not d.update(pose(0.1, 1.0), float(t))  # only leader a squeezes
    assert not d.update(pose(0.1, 2.0), 2.0)
    assert not d.update(pose(0.6, 2.0), 2.3)  # a opens halfway: the hold starts again
    assert not d.update(pose(0.1, 2.0), 2.4)
    assert not d.update(pose(0.1, 2.0), 2.8)
    assert d.update(pose(0.1, 2.0), 2.9)
    assert not d.update({"a": np.array([0.0, 0.1])}, 5.0)  # a leader missing: no decision


def test_controls_table_is_optional():
    spec = load_rig("sim-bimanual").spec
    assert not spec.controls.squeeze_to_start and spec.controls.squeeze_hold_s == 0.5


def squeeze_rig(tmp_path: Path) -> str:
    """sim-bimanual with ``[controls] squeeze_to_start`` (same id: the records still fit)."""
    text = resources.files("rigs").joinpath("presets", "sim-bimanual.toml").read_text()
    path = tmp_path / "sim-squeeze.toml"
    path.write_text(text + "\n[controls]\nsqueeze_to_start = true\nsqueeze_hold_s = 0.4\n")
    assert load_rig(path).spec.controls.squeeze_to_start
    return str(path)


def open_record_screen(qtbot, w: MainWindow) -> None:
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    qtbot.mouseClick(w.signin.proceed, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: bool(w.preflight.results) and w.preflight.rerun_button.isEnabled(), timeout=60_000
    )
    failed = [r for r in w.preflight.results if r.status.name == "FAIL"]
    assert w.preflight.record_button.isEnabled(), (w.preflight.status.text(), failed)
    qtbot.mouseClick(w.preflight.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: w.record.status is not None and w.record.status.state is RunnerState.ARMED,
        timeout=60_000,
    )


def state(w: MainWindow) -> RunnerState | None:
    return w.record.status.state if w.record.status else None


@pytest.mark.timeout(120)
def test_squeezing_both_leader_grippers_starts_the_episode(qtbot, tmp_path, calibrated_root):
    root = write_lists(calibrated_root(tmp_path / "data"))
    w = MainWindow(
        root, rig=squeeze_rig(tmp_path), policy=RecordingPolicy(min_free_gb=0.1), sound=False
    )
    open_record_screen(qtbot, w)
    assert w.record.squeeze is not None
    assert "squeeze both grippers" in w.record.hint_label.text()
    virtual = w.station.runtime.virtual
    leaders = [a.name for a in w.station.runtime.spec.leaders]

    squeeze = w.record.squeeze
    hold_ms = int(squeeze.hold_s * 1000)

    def seen(closed: set[str]) -> bool:
        """The detector's last sample shows exactly these leaders' grippers squeezed."""
        o = squeeze.openings
        return (
            set(o) == set(leaders)
            and {a for a, v in o.items() if v < squeeze.closed_below} == closed
        )

    def still_armed_while_seen(closed: set[str]) -> None:
        """For longer than a squeeze must last, the detector keeps seeing ``closed``; nothing
        starts."""
        n = squeeze.updates
        qtbot.waitUntil(lambda: squeeze.updates > n + 20 and seen(closed), timeout=30_000)
        qtbot.wait(2 * hold_ms)
        assert seen(closed) and state(w) is RunnerState.ARMED

    # The hands open both grippers: nothing starts.
    for arm in leaders:
        virtual.calibration_move(arm, "open")
    qtbot.waitUntil(lambda: seen(set()) and squeeze.released, timeout=30_000)
    still_armed_while_seen(set())
    # One gripper squeezed is not enough.
    virtual.calibration_move(leaders[0], "close")
    qtbot.waitUntil(lambda: seen({leaders[0]}), timeout=30_000)
    still_armed_while_seen({leaders[0]})
    # Both squeezed and held: the episode starts, as the Start key would.
    virtual.calibration_move(leaders[1], "close")
    qtbot.waitUntil(lambda: state(w) is RunnerState.RECORDING, timeout=30_000)
    assert w.record.cues == ["start"]
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: w.record.status.undecided == 1, timeout=30_000)
    qtbot.keyClick(w, Qt.Key.Key_K)
    qtbot.waitUntil(lambda: w.record.status.kept == 1, timeout=30_000)
    # Still squeezed after the episode: no new start until the grippers open again.
    still_armed_while_seen(set(leaders))
    assert not squeeze.released and w.record.cues == ["start", "stop"]
    assert [(e["index"], e["status"]) for e in manifest(root)["episodes"]] == [(1, "kept")]
    w.shutdown()


@pytest.mark.timeout(120)
def test_serial_pedal_countdown_and_cues(qtbot, tmp_path, calibrated_root):
    root = write_lists(calibrated_root(tmp_path / "data"))
    master, slave = os.openpty()
    tty.setraw(slave)
    pedal = SerialPedal(os.ttyname(slave), 9600)  # default map: 1 start/stop, 2 keep, 3 discard
    w = MainWindow(
        root,
        rig="sim-bimanual",
        policy=RecordingPolicy(min_free_gb=0.1),
        countdown_s=1.5,
        sound=False,
        pedal=pedal,
    )
    try:
        pedal.start()
        open_record_screen(qtbot, w)
        assert "countdown" in w.record.hint_label.text()

        # Pedal "1": the countdown shows big, then recording starts with a start cue.
        os.write(master, b"1")
        qtbot.waitUntil(lambda: w.record.countdown_label.isVisible(), timeout=5_000)
        assert re.fullmatch(r"Recording in [12]", w.record.countdown_label.text())
        assert state(w) is RunnerState.ARMED
        qtbot.waitUntil(lambda: state(w) is RunnerState.RECORDING, timeout=10_000)
        assert not w.record.countdown_label.isVisible()
        assert w.record.cues == ["start"]
        qtbot.wait(500)
        os.write(master, b"1")  # stop: no countdown
        qtbot.waitUntil(lambda: w.record.status.undecided == 1, timeout=20_000)
        assert w.record.cues == ["start", "stop"]
        os.write(master, b"2")  # keep
        qtbot.waitUntil(lambda: w.record.status.kept == 1, timeout=10_000)

        # A second press during the countdown cancels it.
        os.write(master, b"1")
        qtbot.waitUntil(lambda: w.record.countdown_label.isVisible(), timeout=5_000)
        qtbot.keyClick(w, Qt.Key.Key_Space)
        assert not w.record.countdown_label.isVisible()
        qtbot.wait(3 * 1500)  # three times the countdown: it would have started by now
        assert state(w) is RunnerState.ARMED and w.record.cues == ["start", "stop"]
        assert pedal.received == ["start_stop", "start_stop", "keep", "start_stop"]
        assert [(e["index"], e["status"]) for e in manifest(root)["episodes"]] == [(1, "kept")]
    finally:
        w.shutdown()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--countdown", "-1"], "--countdown"),
        (["--serial-pedal", "/dev/null", "--serial-pedal-map", "1=fly"], "unknown action 'fly'"),
        (["--serial-pedal", "/dev/null", "--serial-pedal-map", "1"], "TOKEN=ACTION"),
    ],
)
def test_bad_control_options_are_refused(capsys, args, expected):
    from ui.app import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err
