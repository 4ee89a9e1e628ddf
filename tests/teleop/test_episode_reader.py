"""summarize / iter_messages / read_attachment, and clear errors on damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcap.writer import IndexType
from mcap.writer import Writer as McapWriter

from teleop.episode import (
    DEPTH_PNG_FORMAT,
    EpisodeReadError,
    EpisodeWriter,
    iter_messages,
    read_attachment,
    summarize,
)
from teleop.episode.schemas import COMPRESSED_IMAGE

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
NAMES = ["j1", "j2"]


@pytest.fixture
def episode(tmp_path: Path) -> Path:
    """2 s of joints at 100 Hz, a camera at 10 fps, events, metadata and attachments."""
    path = tmp_path / "episode_0007.mcap"
    with EpisodeWriter(path) as w:
        w.add_metadata("provenance", {"operator": "op-1", "task": "pour"})
        w.add_attachment("rig.toml", "application/toml", b"id = 'sim'\n", T0)
        w.add_attachment("calibration/left.json", "application/json", b"{}", T0)
        w.declare_topic("/cameras/wrist/color/compressed", COMPRESSED_IMAGE)  # never written
        w.write_event(T0, T0, "start", "")
        for i in range(201):  # 0 .. 2000 ms inclusive
            t = T0 + i * 10 * MS
            w.write_joint_state("/left_leader/joint_states", t - MS, t, NAMES, [i, -i])
            if i % 10 == 0:
                w.write_compressed_image(
                    "/cameras/high/color/compressed", t, t, "high", "jpeg", b"j" * 50
                )
                w.write_compressed_image(
                    "/cameras/high/depth", t, t, "high", DEPTH_PNG_FORMAT, b"p" * 80
                )
            if i == 100:
                w.flush_to_disk()
        w.write_event(T0 + 2000 * MS, T0 + 2000 * MS, "stop", "operator pressed stop")
        w.add_metadata("quality", {"achieved_rate_hz": "100.0", "flags": "[]"})
    return path


def test_summarize_reads_the_indexes(episode: Path) -> None:
    s = summarize(episode)
    assert s.path == episode
    assert s.profile == "ros2"
    assert s.start_ns == T0
    assert s.end_ns == T0 + 2000 * MS
    assert s.duration_s == pytest.approx(2.0)
    assert s.message_count == 201 + 21 + 21 + 2
    assert list(s.topics) == sorted(s.topics)
    joints = s.topics["/left_leader/joint_states"]
    assert (joints.message_type, joints.message_count) == ("sensor_msgs/msg/JointState", 201)
    assert joints.rate_hz == pytest.approx(100.0)
    camera = s.topics["/cameras/high/color/compressed"]
    assert camera.rate_hz == pytest.approx(10.0)
    assert s.topics["/cameras/high/depth"].message_count == 21
    assert s.topics["/episode/events"].message_type == "teleop_msgs/msg/EpisodeEvent"
    assert s.topics["/episode/events"].rate_hz == pytest.approx(0.5)  # 2 events 2 s apart
    dead = s.topics["/cameras/wrist/color/compressed"]
    assert (dead.message_count, dead.rate_hz) == (0, None)
    assert s.metadata == {
        "provenance": {"operator": "op-1", "task": "pour"},
        "quality": {"achieved_rate_hz": "100.0", "flags": "[]"},
    }
    assert s.attachment_names == ["rig.toml", "calibration/left.json"]
    assert s.attachments[0].media_type == "application/toml"
    assert s.attachments[0].size_bytes == len(b"id = 'sim'\n")
    assert s.chunk_count == 2  # split by the flush_to_disk() in the middle
    assert s.compression == ("zstd",)
    assert s.file_size_bytes == episode.stat().st_size
    assert "MSG: std_msgs/Header\n" in s.schemas["sensor_msgs/msg/JointState"]


def test_iter_messages_decodes_in_log_time_order(episode: Path) -> None:
    messages = list(iter_messages(episode))
    assert len(messages) == 245
    times = [m.log_time_ns for m in messages]
    assert times == sorted(times)
    first_joint = next(m for m in messages if m.topic == "/left_leader/joint_states")
    assert first_joint.message_type == "sensor_msgs/msg/JointState"
    assert first_joint.message.name == NAMES
    assert first_joint.message.position == [0.0, -0.0]
    assert first_joint.publish_time_ns == T0 - MS  # publish_time carries header.stamp
    assert (first_joint.message.header.stamp.sec, first_joint.message.header.stamp.nanosec) == (
        1_699_999_999,
        999_000_000,
    )
    assert first_joint.sequence == 1


def test_iter_messages_filters_topics_and_time(episode: Path) -> None:
    events = list(iter_messages(episode, ["/episode/events"]))
    assert [(e.message.kind, e.message.detail) for e in events] == [
        ("start", ""),
        ("stop", "operator pressed stop"),
    ]
    depth = list(
        iter_messages(
            episode, ["/cameras/high/depth"], start_ns=T0 + 500 * MS, end_ns=T0 + 1000 * MS
        )
    )
    assert [d.log_time_ns for d in depth] == [T0 + k * 100 * MS for k in range(5, 10)]
    assert depth[0].message.format == "16UC1; png compressed"
    assert bytes(depth[0].message.data) == b"p" * 80


def test_read_attachment(episode: Path) -> None:
    assert read_attachment(episode, "rig.toml") == b"id = 'sim'\n"
    assert read_attachment(episode, "calibration/left.json") == b"{}"
    with pytest.raises(KeyError, match="no attachment named 'missing'"):
        read_attachment(episode, "missing")


def _assert_one_clear_line(exc: EpisodeReadError, path: Path, *, recover: bool = True) -> None:
    message = str(exc)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert (f"run `teleop recover {path}`" in message) is recover


@pytest.mark.parametrize("keep", [0.99, 0.6, 0.1])
def test_truncated_file_raises_clear_error(episode: Path, tmp_path: Path, keep: float) -> None:
    data = episode.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EpisodeReadError, match="truncated") as info:
        summarize(cut)
    _assert_one_clear_line(info.value, cut)
    with pytest.raises(EpisodeReadError, match="truncated"):
        iter_messages(cut)  # fails on the call, not at the first next()


def test_partial_file_of_an_open_writer_is_truncated(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "e.mcap")
    w.write_event(T0, T0, "start", "")
    w.flush_to_disk()
    with pytest.raises(EpisodeReadError, match="truncated") as info:
        summarize(w.partial_path)
    _assert_one_clear_line(info.value, w.partial_path)
    w.abort()


def test_not_mcap_empty_and_missing(tmp_path: Path) -> None:
    text = tmp_path / "notes.mcap"
    text.write_text("not an mcap file at all\n")
    with pytest.raises(EpisodeReadError, match="not an MCAP file") as info:
        summarize(text)
    _assert_one_clear_line(info.value, text)
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    with pytest.raises(EpisodeReadError, match="is empty"):
        summarize(empty)
    missing = tmp_path / "missing.mcap"
    with pytest.raises(EpisodeReadError, match="no such file") as info:
        summarize(missing)
    _assert_one_clear_line(info.value, missing, recover=False)


def test_file_without_summary_raises(tmp_path: Path) -> None:
    path = tmp_path / "nosummary.mcap"
    with open(path, "wb") as f:
        writer = McapWriter(
            f,
            index_types=IndexType.NONE,
            repeat_channels=False,
            repeat_schemas=False,
            use_statistics=False,
            use_summary_offsets=False,
        )
        writer.start(profile="ros2")
        writer.finish()
    with pytest.raises(EpisodeReadError, match="no summary section") as info:
        summarize(path)
    _assert_one_clear_line(info.value, path)


def test_damaged_summary_raises(episode: Path, tmp_path: Path) -> None:
    data = bytearray(episode.read_bytes())
    # Overwrite the middle of the summary section (between the last chunk and the footer).
    start = len(data) - 400
    data[start : start + 200] = b"\xff" * 200
    damaged = tmp_path / "damaged.mcap"
    damaged.write_bytes(bytes(data))
    with pytest.raises(EpisodeReadError, match="damaged summary section") as info:
        summarize(damaged)
    _assert_one_clear_line(info.value, damaged)
