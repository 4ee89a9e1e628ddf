"""The operator's path on the virtual rig, driven by key presses as a person (or pedal) would:
sign in, pre-flight, record two episodes, keep one, discard one, then a fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from teleop.recording.lifecycle import RunnerState
from teleop.recording.policy import RecordingPolicy
from ui.app import MainWindow
from ui.keys import Keymap

OPERATORS = '[[operators]]\nid = "op7"\nname = "Ada Lovelace"\n'
# Long episodes: the test, not the task's clock, decides when each episode stops.
TASKS = '[[tasks]]\nname = "pick_place"\ntarget_episodes = 5\nepisode_s = 60\nreset_s = 0\n'


def write_lists(root: Path) -> Path:
    (root / "operators.toml").write_text(OPERATORS)
    (root / "tasks.toml").write_text(TASKS)
    return root


def manifest(root: Path) -> dict:
    (session_file,) = root.glob("*/session.json")
    return json.loads(session_file.read_text())


@pytest.mark.timeout(120)
def test_sign_in_preflight_record_keep_discard_fault(qtbot, tmp_path, calibrated_root):
    root = write_lists(calibrated_root(tmp_path / "data"))
    # F13 stands in for a USB foot pedal: it arrives as one more key on start_stop.
    keymap = Keymap(start_stop="Space,F13")
    w = MainWindow(root, rig="sim-bimanual", keymap=keymap, policy=RecordingPolicy(min_free_gb=0.1))
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitExposed(w)

    # -- sign-in ---------------------------------------------------------------------------
    assert w.signin.operator.currentText() == "Ada Lovelace (op7)"
    assert "Target 5 episodes of 60 s" in w.signin.task_details.text()
    qtbot.mouseClick(w.signin.proceed, Qt.MouseButton.LeftButton)

    # -- pre-flight (runs on the engine thread: the GUI keeps answering) ---------------------
    assert w.stack.currentWidget() is w.preflight
    qtbot.waitUntil(
        lambda: bool(w.preflight.results) and w.preflight.rerun_button.isEnabled(), timeout=60_000
    )
    assert w.preflight.record_button.isEnabled(), w.preflight.status.text()
    checks = {r.check for r in w.preflight.results}
    assert {"bus port", "motors", "calibration record", "pose delta", "camera fps"} <= checks
    qtbot.mouseClick(w.preflight.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: w.record.status is not None and w.record.status.state is RunnerState.ARMED,
        timeout=60_000,
    )
    assert w.stack.currentWidget() is w.record
    assert w.record.counter_label.text() == "Kept 0 / 5"

    def state() -> RunnerState | None:
        return w.record.status.state if w.record.status else None

    # -- episode 1: Space starts, Space stops, K keeps ----------------------------------------
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: state() is RunnerState.RECORDING, timeout=10_000)
    assert w.record.state_label.text().startswith("● RECORDING")
    # Live previews: every camera's tile shows frames pulled by the timer.
    qtbot.waitUntil(lambda: all(t.shown >= 10 for t in w.record.tiles.values()), timeout=30_000)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: w.record.status.undecided == 1, timeout=20_000)
    assert w.record.state_label.text() == "KEEP EPISODE 0001?"
    qtbot.keyClick(w, Qt.Key.Key_K)
    qtbot.waitUntil(lambda: w.record.status.kept == 1, timeout=10_000)
    assert w.record.counter_label.text() == "Kept 1 / 5"
    # The operator's own verdict on the episode (QA confirms later).
    qtbot.keyClick(w, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: w.record.marks.get(1) == "success", timeout=10_000)

    # -- episode 2: the pedal (F13) starts and stops, D discards -----------------------------
    qtbot.keyClick(w, Qt.Key.Key_F13)
    qtbot.waitUntil(lambda: state() is RunnerState.RECORDING, timeout=10_000)
    qtbot.wait(1000)
    qtbot.keyClick(w, Qt.Key.Key_F13)
    qtbot.waitUntil(lambda: w.record.status.undecided == 2, timeout=20_000)
    qtbot.keyClick(w, Qt.Key.Key_D)
    qtbot.waitUntil(lambda: w.record.status.discarded == 1, timeout=10_000)
    qtbot.waitUntil(
        lambda: w.record.counter_label.text() == "Kept 1 / 5   ·   discarded 1", timeout=10_000
    )

    session_root = w.station.session.root
    m = manifest(root)
    assert [(e["index"], e["status"]) for e in m["episodes"]] == [(1, "kept"), (2, "discarded")]
    assert m["operator"] == "op7" and m["task"] == "pick_place"
    assert m["episodes"][0]["operator_mark"] == "success"
    assert (session_root / "episode_0001.mcap").stat().st_size > 0
    assert (session_root / "discarded" / "episode_0002.mcap").exists()
    assert "loop" in w.record.health_label.text() and "fps" in w.record.health_label.text()

    # -- episode 3: a follower bus goes silent; a banner names the cause and the fix --------
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: state() is RunnerState.RECORDING, timeout=10_000)
    qtbot.wait(500)
    w.station.runtime.virtual.inject_bus_silent("left_follower")
    qtbot.waitUntil(lambda: w.record.fault_banner.isVisible(), timeout=20_000)
    qtbot.waitUntil(lambda: state() is RunnerState.IDLE, timeout=20_000)
    assert "left_follower" in w.record.fault_banner.text()
    assert "Fix:" in w.record.fault_banner.text()
    assert w.record.state_label.text() == "STOPPED"
    assert not w.record.buttons["start"].isEnabled()

    # -- end the session: discarded files are deleted, the manifest is closed ---------------
    qtbot.mouseClick(w.record.end_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.stack.currentWidget() is w.signin, timeout=30_000)
    m = manifest(root)
    assert m["closed_utc"]
    statuses = {e["index"]: e["status"] for e in m["episodes"]}
    assert statuses[1] == "kept" and statuses[2] == "discarded"
    assert any(f.startswith("fault:") for f in m["episodes"][2]["quality"]["flags"])
    assert not (session_root / "discarded" / "episode_0002.mcap").exists()
    # Episode 3 was still undecided: closing keeps it (the operator can discard it in QA).
    assert statuses[3] == "kept"
    assert w.signin.notice.text() == f"Session {session_root.name} closed: 2 episodes kept."
    w.shutdown()


@pytest.mark.timeout(120)
def test_screenshots_option_renders_every_screen_live(qtbot, tmp_path, calibrated_root):
    from ui.app import main

    root = write_lists(calibrated_root(tmp_path / "data"))
    out = tmp_path / "shots"
    assert main(["--data-dir", str(root), "--screenshots", str(out)]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [
        "1-sign-in.png", "10-review.png", "11-export-progress.png", "12-export-done.png",
        "2-preflight.png", "3-record-ready.png", "4-record-recording.png",
        "5-record-keep-or-discard.png", "6-record-reset.png", "7-record-fault.png",
        "8-sessions.png", "9-sessions-filtered.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in out.glob("*.png"))
    assert root.exists()  # the operator's data root is used, never removed
