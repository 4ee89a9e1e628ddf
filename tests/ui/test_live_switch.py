"""The record screen's Live view switch: the session's Foxglove view on and off, its URL and
counters in the health bar (``teleop-gui --live`` starts sessions with it on)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from teleop.live import LiveAddress
from teleop.recording.lifecycle import RunnerState
from teleop.recording.policy import RecordingPolicy
from ui.app import MainWindow

from .test_controls import open_record_screen, state
from .test_record_flow import write_lists


@pytest.mark.timeout(180)
def test_live_view_switch_starts_and_stops_the_sessions_publisher(qtbot, tmp_path, calibrated_root):
    root = write_lists(calibrated_root(tmp_path / "data"))
    w = MainWindow(
        root,
        rig="sim-bimanual",
        policy=RecordingPolicy(min_free_gb=0.1),
        sound=False,
        live=LiveAddress("127.0.0.1", 0),
    )
    open_record_screen(qtbot, w)
    record, station = w.record, w.station

    # --live: the session started with the view on, its address in the health bar.
    assert record.live_box.isChecked()
    publisher = station.live
    assert publisher is not None and publisher.running
    assert station.recorder is not None and station.recorder.live is publisher
    url = publisher.url
    qtbot.waitUntil(
        lambda: f"live view {url}: 0 clients" in record.health_label.text(), timeout=10_000
    )

    # Off: the publisher stops and the recorder no longer hands it anything.
    qtbot.mouseClick(record.live_box, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: station.live is None, timeout=10_000)
    assert not publisher.running and station.recorder.live is None
    assert not record.live_box.isChecked()
    qtbot.waitUntil(lambda: "live view" not in record.health_label.text(), timeout=10_000)

    # On again, during an episode: what it writes from then on is published.
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: state(w) is RunnerState.RECORDING, timeout=10_000)
    qtbot.mouseClick(record.live_box, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: station.live is not None, timeout=10_000)
    again = station.live
    assert again is not publisher and station.recorder.live is again
    qtbot.waitUntil(lambda: again.stats().published > 100, timeout=30_000)
    qtbot.waitUntil(lambda: f"live view {again.url}:" in record.health_label.text(), timeout=10_000)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: record.status.undecided == 1, timeout=30_000)

    # Ending the session stops it.
    qtbot.mouseClick(record.end_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.stack.currentWidget() is w.signin, timeout=60_000)
    assert station.live is None and not again.running
    assert station.live_wanted  # the next session starts with the view on, as this one ended
