"""The sessions overview lists what is on disk, with each episode's flags."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

from teleop.session import Session  # noqa: E402
from ui.app import SessionsWindow, main  # noqa: E402


def test_window_lists_sessions_episodes_and_flags(tmp_path):
    s = Session.create(
        tmp_path,
        operator="op7",
        task="fold",
        rig_id="sim-bimanual",
        rig_sha256="x",
        started_utc="t",
    )
    s.add_episode({"index": 1, "file": "episode_0001.mcap", "duration_s": 5.0,
                   "quality": {"achieved_rate_hz": 49.9, "flags": ["frames_dropped: low x3"]}})  # fmt: skip
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "session.json").write_text("{not json")
    _app = QApplication.instance() or QApplication([])
    w = SessionsWindow(tmp_path)
    assert w.tree.topLevelItemCount() == 1  # the unreadable manifest is skipped, not fatal
    top = w.tree.topLevelItem(0)
    assert top.text(0) == s.id and top.text(1) == "op7"
    ep = top.child(0)
    assert (
        ep.text(0) == "episode_0001.mcap"
        and ep.text(4) == ""
        and ep.text(7) == "frames_dropped: low x3"
    )


def test_screenshot_option_writes_a_png(tmp_path):
    out = tmp_path / "shot.png"
    assert main(["--data-dir", str(tmp_path), "--screenshot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
