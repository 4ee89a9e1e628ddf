"""Replay engine: frames nearest a time, stepping, joint windows, marks, damaged files."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from teleop.episode.reader import EpisodeReadError, iter_messages
from teleop.playback import EpisodeReader, Player, Snapshot, episode_marks


def _stamp(msg) -> int:  # type: ignore[no-untyped-def]
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _episode(root: Path, operator: str = "op7") -> Path:
    return sorted(root.glob(f"*_{operator}/episode_0001.mcap"))[0]


def _wait(player: Player, ok: Callable[[Snapshot], bool]) -> Snapshot:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        snap = player.snapshot()
        if snap is not None and ok(snap):
            return snap
        time.sleep(0.01)
    raise AssertionError("the player never prepared the expected snapshot")


def test_frame_at_is_the_frame_nearest_in_capture_time(recorded_root: Path) -> None:
    path = _episode(recorded_root)
    with EpisodeReader(path) as reader:
        assert reader.cameras == ("left_wrist", "low", "overhead", "right_wrist")
        for camera in ("overhead", "right_wrist"):
            topic = f"/cameras/{camera}/color/compressed"
            stamps = np.array([_stamp(m.message) for m in iter_messages(path, [topic])])
            mids = (stamps[:-1] + stamps[1:]) // 2
            for t in (
                stamps[0] - 10**9,  # before the first frame: the first
                mids[len(mids) // 3] - 1_000_000,  # just before a midpoint: the earlier
                mids[len(mids) // 2] + 1_000_000,  # just after: the later
                int(stamps[-1]) + 10**9,  # after the end: the last
            ):
                frame = reader.frame_at(camera, int(t))
                assert frame is not None
                assert frame.stamp_ns == stamps[np.argmin(np.abs(stamps - t))]
                assert frame.image.ndim == 3 and frame.image.shape[2] == 3
        depth = reader.frame_at("low", reader.start_ns + 10**9, depth=True)
        assert depth is not None and depth.depth and depth.image.shape[2] == 3


def test_step_moves_exactly_one_frame_of_the_reference_camera(recorded_root: Path) -> None:
    path = _episode(recorded_root)
    player = Player()
    reader = player.open(path)
    try:
        counts = {c: reader.frame_count(c) for c in reader.cameras}
        ref = max(reader.cameras, key=lambda c: counts[c])
        topic = f"/cameras/{ref}/color/compressed"
        stamps = [_stamp(m.message) for m in iter_messages(path, [topic])]
        i = len(stamps) // 2
        player.seek(stamps[i] - reader.start_ns)
        _wait(player, lambda s: s.frames[ref].stamp_ns == stamps[i])
        player.step(1)
        _wait(player, lambda s: s.frames[ref].stamp_ns == stamps[i + 1])
        player.step(-3)
        snap = _wait(player, lambda s: s.frames[ref].stamp_ns == stamps[i - 2])
        assert not snap.playing
    finally:
        player.close()


def test_snapshot_holds_the_recorded_joints_nearest_the_playhead(recorded_root: Path) -> None:
    path = _episode(recorded_root)
    topics = [
        "/left_leader/joint_states",
        "/left_follower/joint_states",
        "/left_follower/joint_commands",
    ]
    recorded = {
        t: [(_stamp(m.message), m.message.position) for m in iter_messages(path, [t])]
        for t in topics
    }
    player = Player()
    reader = player.open(path)
    try:
        t = reader.duration_ns * 2 // 3
        player.seek(t)
        snap = _wait(player, lambda s: s.position_ns == t and s.joints_position_ns == t)
        at = reader.start_ns + t
        for topic in topics:
            stamps = np.array([s for s, _ in recorded[topic]])
            expected = recorded[topic][int(np.argmin(np.abs(stamps - at)))][1]
            series = snap.joints[topic]
            assert series.joint_names[0] == "waist"
            np.testing.assert_array_equal(series.nearest(at), expected)
            # The window holds every sample within 5 s either side.
            inside = stamps[(stamps >= at - 5 * 10**9) & (stamps < at + 5 * 10**9)]
            np.testing.assert_array_equal(series.stamp_ns, inside)
    finally:
        player.close()


def test_marks_show_events_and_session_quality(recorded_root: Path, tmp_path: Path) -> None:
    session = _episode(recorded_root).parent
    copy = tmp_path / session.name
    shutil.copytree(session, copy)
    manifest = json.loads((copy / "session.json").read_text())
    quality = manifest["episodes"][0]["quality"]
    quality["flags"] = [*quality["flags"], "frames_missing: low x1"]
    quality["cameras"]["low"]["events"] = [{"kind": "stall", "t_s": 1.5, "detail": "no frames"}]
    (copy / "session.json").write_text(json.dumps(manifest))
    with EpisodeReader(copy / "episode_0001.mcap") as reader:
        marks = episode_marks(reader)
    kinds = [m.text.split(":")[0] for m in marks.marks]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    stall = [m for m in marks.marks if m.text.startswith("stall: low")]
    assert [(m.t_ns, m.category) for m in stall] == [(1_500_000_000, "quality")]
    assert "frames_missing: low x1" in marks.flags


def test_truncated_file_is_refused_with_one_line(recorded_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "episode_0001.mcap"
    data = _episode(recorded_root).read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeReadError) as err:
        EpisodeReader(bad)
    assert "\n" not in str(err.value)
    assert str(bad) in str(err.value) and "teleop recover" in str(err.value)
    player = Player()
    with pytest.raises(EpisodeReadError):
        player.open(bad)
    assert not player.is_open
