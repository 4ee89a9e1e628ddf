"""ReplayView: open, seek on the timeline, play, step, speed, depth, and recovery on open."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from teleop.episode.reader import EpisodeReadError
from teleop.playback import EpisodeReader
from ui.replay import ReplayView, open_with_recovery


@pytest.fixture()
def episode(recorded_root: Path) -> Path:
    return sorted(recorded_root.glob("*_op7/episode_0001.mcap"))[0]


@pytest.fixture()
def view(qtbot) -> ReplayView:  # type: ignore[no-untyped-def]
    v = ReplayView()
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    yield v
    v.close_episode()


def test_open_seek_on_timeline_and_screenshot(qtbot, view: ReplayView, episode: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(view.episodeOpened) as opened:
        view.open_episode(episode)
    assert opened.args == [episode]
    assert set(view.tiles) == {"left_wrist", "low", "overhead", "right_wrist"}
    assert set(view.plots) == {"left_follower", "right_follower"}
    target = view.duration_ns // 2
    x = view.timeline.x_of(target)
    with qtbot.waitSignal(view.positionChanged):
        qtbot.mouseClick(view.timeline, Qt.MouseButton.LeftButton, pos=QPoint(x, 20))
    pixel_ns = view.duration_ns / (view.timeline.width() - 2 * view.timeline.MARGIN)
    assert abs(view.position_ns - target) <= pixel_ns
    at = view.start_ns + view.position_ns
    with EpisodeReader(episode) as reader:
        nearest = {c: reader.frame_stamp_at(c, at) for c in reader.cameras}
    for camera, tile in view.tiles.items():
        qtbot.waitUntil(lambda t=tile, c=camera: t.showing == (nearest[c], False))
    qtbot.waitUntil(lambda: bool(view.timeline.marks and view.plots["left_follower"].curves))
    assert view.timeline.marks[0].text.startswith("start")
    view.set_extra_marks([(view.duration_ns // 4, "success (qa)")])
    qtbot.wait(100)
    view.grab().save("/tmp/replay_view.png")


def test_play_step_speed_and_depth(qtbot, view: ReplayView, episode: Path) -> None:  # type: ignore[no-untyped-def]
    view.open_episode(episode)
    view.play()
    qtbot.waitUntil(lambda: view.position_ns > 200_000_000, timeout=5000)
    view.pause()
    assert view.buttons["play"].text().endswith("Play")
    before = view.position_ns
    qtbot.mouseClick(view.buttons["forward"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.position_ns != before)
    assert view.position_ns > before
    # A step lands exactly on the next frame of the camera that paces stepping.
    at = view.start_ns + view.position_ns
    qtbot.waitUntil(lambda: any(t.showing and t.showing[0] == at for t in view.tiles.values()))

    view.speed_combo.setCurrentIndex(view.speed_combo.findText("2×"))
    assert view.player.speed == 2.0
    view.set_speed(0.25)
    assert view.speed_combo.currentText() == "0.25×"

    tile = view.tiles["overhead"]
    assert tile.depth_box is not None and view.tiles["left_wrist"].depth_box is None
    tile.depth_box.setChecked(True)
    qtbot.waitUntil(lambda: tile.showing is not None and tile.showing[1])
    assert "depth" in tile.stamp_label.text()


def test_bad_file_raises_and_recovery_returns_a_file_that_opens(
    qtbot, view: ReplayView, episode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / episode.name
    data = episode.read_bytes()
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(EpisodeReadError):
        view.open_episode(bad)
    asked: list[str] = []

    def answer(choice: str):  # type: ignore[no-untyped-def]
        def exec_(box: QMessageBox) -> int:
            asked.append(box.text())
            for button in box.buttons():
                if button.text().replace("&", "") == choice:
                    button.click()
            return 0

        return exec_

    monkeypatch.setattr(QMessageBox, "exec", answer("Cancel"))
    assert open_with_recovery(view, bad) is None
    monkeypatch.setattr(QMessageBox, "exec", answer("Recover"))
    recovered = open_with_recovery(view, bad)
    assert len(asked) == 2 and "\n" not in asked[0] and str(bad) in asked[0]
    assert recovered is not None and recovered != bad
    view.open_episode(recovered)
    assert view.duration_ns > 0 and len(view.tiles) == 4
    assert open_with_recovery(view, episode) == episode  # a good file: no question asked
    assert len(asked) == 2
