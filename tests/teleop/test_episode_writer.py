"""EpisodeWriter: file format, independent decoders, crash safety, lifecycle."""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from mcap.exceptions import EndOfFile
from mcap.reader import NonSeekingReader, make_reader
from mcap.records import Channel, Message, Metadata
from mcap.stream_reader import StreamReader
from mcap_ros2._dynamic import generate_dynamic
from mcap_ros2.decoder import DecoderFactory
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from teleop.episode import cdr, schemas
from teleop.episode.writer import EpisodeWriteError, EpisodeWriter, WriterState

T0 = 1_700_000_000_123_456_789
NAMES = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"]


@dataclass
class Expected:
    """What was written, per topic, as plain Python values in ROS field names."""

    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, topic: str, log_time: int, stamp: int, fields: dict[str, Any]) -> None:
        sec, nanosec = divmod(stamp, 1_000_000_000)
        entry = {"_log_time": log_time, "_stamp": (sec, nanosec), **fields}
        self.messages.setdefault(topic, []).append(entry)

    def count(self) -> int:
        return sum(len(v) for v in self.messages.values())


def write_all_kinds(w: EpisodeWriter, exp: Expected, start: int, n_cycles: int) -> int:
    """Write every message kind with varied values; return the next free timestamp."""
    rng = np.random.default_rng(start % 1000)
    t = start
    for i in range(n_cycles):
        t += 5_000_000
        pos = rng.standard_normal(7)
        vel = rng.standard_normal(7).tolist()  # a list, not an array: both must work
        w.write_joint_state("/left_follower/joint_states", t - 700_000, t, NAMES, pos, vel, None)
        exp.add(
            "/left_follower/joint_states",
            t,
            t - 700_000,
            {
                "frame_id": "",
                "name": NAMES,
                "position": pos.tolist(),
                "velocity": vel,
                "effort": [],
            },
        )
        # frame_id of odd length and an empty position: alignment edge cases.
        eff = rng.standard_normal(7).astype(np.float32)  # float32 input is widened to float64
        w.write_joint_state(
            "/left_leader/joint_states", t, t + 1, NAMES, [], None, eff, frame_id="abc"
        )
        exp.add(
            "/left_leader/joint_states",
            t + 1,
            t,
            {
                "frame_id": "abc",
                "name": NAMES,
                "position": [],
                "velocity": [],
                "effort": eff.astype(np.float64).tolist(),
            },
        )
        if i % 3 == 0:
            jpeg = rng.integers(0, 256, 1000 + i, dtype=np.uint8)  # odd sizes, an ndarray
            w.write_compressed_image(
                "/cameras/cam_high/color/compressed",
                t - 30_000_000,
                t,
                "cam_high_optical",
                "jpeg",
                jpeg,
            )
            exp.add(
                "/cameras/cam_high/color/compressed",
                t,
                t - 30_000_000,
                {"frame_id": "cam_high_optical", "format": "jpeg", "data": jpeg.tobytes()},
            )
            depth = rng.integers(0, 256, 777, dtype=np.uint8).tobytes()
            w.write_compressed_image(
                "/cameras/cam_high/depth",
                t - 30_000_000,
                t,
                "cam_high_optical",
                schemas.DEPTH_PNG_FORMAT,
                depth,
            )
            exp.add(
                "/cameras/cam_high/depth",
                t,
                t - 30_000_000,
                {"frame_id": "cam_high_optical", "format": schemas.DEPTH_PNG_FORMAT, "data": depth},
            )
            k = np.array([[600.0 + i, 0.0, 320.5], [0.0, 601.0, 240.25], [0.0, 0.0, 1.0]])
            d = [0.1, -0.2, 0.001, 0.002, 0.0]
            w.write_camera_info(
                "/cameras/cam_high/camera_info",
                t - 30_000_000,
                t,
                "cam_high_optical",
                640,
                480,
                k,
                d,
                "plumb_bob",
                None,
                None,
            )
            p = [*k[0], 0.0, *k[1], 0.0, *k[2], 0.0]
            exp.add(
                "/cameras/cam_high/camera_info",
                t,
                t - 30_000_000,
                {
                    "frame_id": "cam_high_optical",
                    "width": 640,
                    "height": 480,
                    "distortion_model": "plumb_bob",
                    "d": d,
                    "k": k.ravel().tolist(),
                    "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                    "p": [float(x) for x in p],
                },
            )
        if i % 10 == 0:
            statuses = [
                (0, "left_follower/bus", "ok", "FTDI-1234", {"rate_hz": "200.0", "errors": "0"}),
                (2, "cam_high", "frames dropped – ünïcode", "", {}),
            ]
            w.write_diagnostics(schemas.DIAGNOSTICS_TOPIC, t, t, statuses)
            exp.add(schemas.DIAGNOSTICS_TOPIC, t, t, {"frame_id": "", "status": statuses})
    w.write_event(t, t, "mark", f"cycle {n_cycles}")
    exp.add(
        schemas.EVENTS_TOPIC, t, t, {"frame_id": "", "kind": "mark", "detail": f"cycle {n_cycles}"}
    )
    return t


@pytest.fixture
def episode(tmp_path: Path) -> tuple[Path, Expected]:
    """A finished episode with every message kind, metadata and an attachment."""
    path = tmp_path / "episode_0001.mcap"
    exp = Expected()
    with EpisodeWriter(path, chunk_size=1024 * 1024) as w:
        w.add_metadata("provenance", {"operator": "op-7", "task": "fold towel", "rig": "sim"})
        w.add_attachment("rig.toml", "application/toml", b'name = "sim"\n', T0)
        w.write_event(T0, T0, "start", "")
        exp.add(schemas.EVENTS_TOPIC, T0, T0, {"frame_id": "", "kind": "start", "detail": ""})
        t = write_all_kinds(w, exp, T0, 60)
        w.flush_to_disk()  # a second chunk follows, so chunk boundaries are exercised
        write_all_kinds(w, exp, t, 40)
        w.add_metadata("quality", {"achieved_rate_hz": "199.8", "flags": "[]"})
    return path, exp


# -- comparison helpers ----------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return [float(x) for x in value]


def assert_matches(decoded: Any, expected: dict[str, Any], topic: str) -> None:
    """Compare a decoded message (mcap_ros2 or rosbags object) with what was written."""
    assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec) == expected["_stamp"], topic
    assert decoded.header.frame_id == expected["frame_id"], topic
    for name, value in expected.items():
        if name.startswith("_") or name == "frame_id":
            continue
        got = getattr(decoded, name)
        if name == "data":
            assert bytes(got) == value, topic
        elif name == "status":
            assert len(got) == len(value)
            for status, (level, sname, message, hwid, values) in zip(got, value, strict=True):
                assert (status.level, status.name, status.message, status.hardware_id) == (
                    level,
                    sname,
                    message,
                    hwid,
                )
                assert {kv.key: kv.value for kv in status.values} == values
        elif isinstance(value, list) and value and isinstance(value[0], str):
            assert list(got) == value, (topic, name)
        elif isinstance(value, list):
            assert _as_list(got) == value, (topic, name)
        else:
            assert got == value, (topic, name)


def check_all_decoded(
    decoded: dict[str, list[tuple[int, Any]]], exp: Expected, *, reader: str
) -> None:
    assert set(decoded) == set(exp.messages), reader
    for topic, written in exp.messages.items():
        got = decoded[topic]
        assert len(got) == len(written), (reader, topic)
        # Sort both by log time; writes within a topic are in log-time order already.
        for (log_time, msg), want in zip(got, written, strict=True):
            assert log_time == want["_log_time"], (reader, topic)
            assert_matches(msg, want, f"{reader}:{topic}")


# -- the file format -------------------------------------------------------------------------


def test_file_is_indexed_zstd_ros2_mcap(episode: tuple[Path, Expected]) -> None:
    path, exp = episode
    with open(path, "rb") as f:
        reader = make_reader(f)
        header = reader.get_header()
        assert header.profile == "ros2"
        assert header.library.startswith("teleop/")
        summary = reader.get_summary()
        assert summary is not None
        assert summary.statistics is not None
        assert summary.statistics.message_count == exp.count()
        assert summary.statistics.chunk_count == len(summary.chunk_indexes) >= 2
        assert summary.statistics.metadata_count == 2
        assert summary.statistics.attachment_count == 1
        assert {c.compression for c in summary.chunk_indexes} == {"zstd"}
        # Message indexes exist for every chunk (readers seek by them).
        assert all(c.message_index_offsets for c in summary.chunk_indexes)
        assert len(summary.metadata_indexes) == 2
        assert [a.name for a in summary.attachment_indexes] == ["rig.toml"]
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        types = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        assert types["/left_follower/joint_states"] == "sensor_msgs/msg/JointState"
        assert types["/cameras/cam_high/depth"] == "sensor_msgs/msg/CompressedImage"
        assert types["/cameras/cam_high/camera_info"] == "sensor_msgs/msg/CameraInfo"
        assert types["/diagnostics"] == "diagnostic_msgs/msg/DiagnosticArray"
        assert types["/episode/events"] == "teleop_msgs/msg/EpisodeEvent"
        meta = {m.name: m.metadata for m in reader.iter_metadata()}
        assert meta["provenance"]["operator"] == "op-7"
        assert meta["quality"]["achieved_rate_hz"] == "199.8"
    # Every chunk CRC is valid, and the data-section CRC too (NonSeekingReader checks it).
    with open(path, "rb") as f:
        assert (
            sum(1 for _ in NonSeekingReader(f, validate_crcs=True).iter_messages()) == exp.count()
        )


def test_every_topic_decodes_with_mcap_ros2(episode: tuple[Path, Expected]) -> None:
    path, exp = episode
    decoded: dict[str, list[tuple[int, Any]]] = {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, message, msg in reader.iter_decoded_messages(log_time_order=False):
            decoded.setdefault(channel.topic, []).append((message.log_time, msg))
            assert message.publish_time == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
    check_all_decoded(decoded, exp, reader="mcap_ros2")


def test_every_topic_decodes_with_rosbags_anyreader(episode: tuple[Path, Expected]) -> None:
    # rosbags is an independent ROS 2 implementation: it builds its types from the schema
    # text embedded in the file, including the custom teleop_msgs/msg/EpisodeEvent.
    path, exp = episode
    decoded: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([path]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts == {topic: len(v) for topic, v in exp.messages.items()}
        for connection, timestamp, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            decoded.setdefault(connection.topic, []).append((timestamp, msg))
    for topic in decoded:  # rosbags yields in log-time order; written order is per topic
        decoded[topic].sort(key=lambda item: item[0])
    check_all_decoded(decoded, exp, reader="rosbags")


def test_standard_definitions_match_ros2_humble() -> None:
    # RIHS01 type hashes (what ROS 2 Iron+ compares) must equal the real types', so rosbag2
    # and ROS tools treat our embedded definitions as the standard ones.
    reference = get_typestore(Stores.ROS2_HUMBLE)
    ours = get_typestore(Stores.EMPTY)
    types: dict[str, Any] = {}
    for name, text in schemas.MESSAGE_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    ours.register(types)
    for name in (
        schemas.JOINT_STATE,
        schemas.COMPRESSED_IMAGE,
        schemas.CAMERA_INFO,
        schemas.DIAGNOSTIC_ARRAY,
    ):
        assert ours.hash_rihs01(name) == reference.hash_rihs01(name), name


@pytest.mark.parametrize(
    ("type_name", "data"),
    [
        (schemas.JOINT_STATE, cdr.encode_joint_state(T0, "", [], [], None, None)),
        (schemas.JOINT_STATE, cdr.encode_joint_state(1, "x", ["a"], [1.5], [], np.array([2.5]))),
        (schemas.JOINT_STATE, cdr.encode_joint_state(T0, "ab", ["é", "bb"], [], [1.0, 2.0], [])),
        (schemas.COMPRESSED_IMAGE, cdr.encode_compressed_image(T0, "c", "jpeg", b"")),
        (schemas.COMPRESSED_IMAGE, cdr.encode_compressed_image(T0, "", "x", b"\x01\x02\x03")),
        (
            schemas.CAMERA_INFO,
            cdr.encode_camera_info(
                T0, "f", 1, 2, np.eye(3), [], "equidistant", np.ones((3, 4)), np.eye(3)
            ),
        ),
        (schemas.DIAGNOSTIC_ARRAY, cdr.encode_diagnostic_array(T0, "", [])),
        (
            schemas.DIAGNOSTIC_ARRAY,
            cdr.encode_diagnostic_array(T0, "a", [(3, "n", "", "h", {"k": ""})]),
        ),
        (schemas.EPISODE_EVENT, cdr.encode_episode_event(T0, "", "", "")),
    ],
)
def test_cdr_edge_cases_decode_identically(type_name: str, data: bytes) -> None:
    """Empty sequences and odd string lengths shift alignment; both decoders must agree."""
    assert bytes(data[:4]) == b"\x00\x01\x00\x00"
    ours = get_typestore(Stores.EMPTY)
    ours.register(get_types_from_msg(schemas.message_definition(type_name), type_name))
    by_rosbags = ours.deserialize_cdr(bytes(data), type_name)
    by_mcap = generate_dynamic(type_name, schemas.message_definition(type_name))[type_name](
        bytes(data)
    )
    # Re-encoding what rosbags decoded must reproduce our bytes exactly.
    assert bytes(ours.serialize_cdr(by_rosbags, type_name)) == bytes(data)
    assert by_mcap.header.stamp.sec == by_rosbags.header.stamp.sec


def test_cdr_rejects_bad_values() -> None:
    with pytest.raises(cdr.CdrEncodeError, match="position has 2 values for 3 names"):
        cdr.encode_joint_state(T0, "", ["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(cdr.CdrEncodeError, match="k needs exactly 9"):
        cdr.encode_camera_info(T0, "", 1, 1, [1.0] * 8, [], "plumb_bob", [0.0] * 12, [0.0] * 9)
    with pytest.raises(cdr.CdrEncodeError, match="expected a str"):
        cdr.encode_diagnostic_array(T0, "", [(0, "n", "m", "h", {"k": 3})])  # type: ignore[dict-item]
    with pytest.raises(cdr.CdrEncodeError, match="builtin_interfaces/Time"):
        cdr.encode_episode_event(2**31 * 10**9, "", "k", "d")


# -- lifecycle and crash safety --------------------------------------------------------------


def test_partial_exists_while_open_and_is_renamed_on_finish(tmp_path: Path) -> None:
    path = tmp_path / "episode_0001.mcap"
    w = EpisodeWriter(path)
    assert w.partial_path == tmp_path / "episode_0001.mcap.partial"
    assert w.partial_path.exists()
    assert not path.exists()
    w.write_event(T0, T0, "start", "")
    w.flush_to_disk()
    assert not path.exists()
    assert w.finish() == path
    assert path.exists()
    assert not w.partial_path.exists()
    assert w.state is WriterState.FINISHED
    assert w.bytes_written == path.stat().st_size


@dataclass
class Recovered:
    messages: list[tuple[str, int, bytes]] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)


def read_until_truncation(path: Path) -> Recovered:
    """What mcap's stream reader recovers from a file cut anywhere (as after a crash)."""
    out = Recovered()
    channels: dict[int, str] = {}
    with open(path, "rb") as f:
        try:
            for record in StreamReader(f).records:
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                elif isinstance(record, Message):
                    out.messages.append((channels[record.channel_id], record.log_time, record.data))
                elif isinstance(record, Metadata):
                    out.metadata.append(record.name)
        except (EndOfFile, struct.error, zstandard.ZstdError):
            # The cut: at a record boundary EndOfFile, inside a record a short read
            # (struct.error), inside a chunk a short zstd frame. Everything before is yielded.
            pass
    return out


def test_flush_to_disk_makes_everything_before_it_recoverable(tmp_path: Path) -> None:
    """The crash-safety guarantee: after flush_to_disk, a copy of the .partial holds every
    message written before the call in complete chunks, whatever happens afterwards.

    This also guards the dependency on mcap's Writer.flush(): if the library stopped closing
    the open chunk there, the copy would miss the last messages.
    """
    path = tmp_path / "episode_0001.mcap"
    exp = Expected()
    w = EpisodeWriter(path)
    w.add_metadata("provenance", {"operator": "op-7"})
    t = write_all_kinds(w, exp, T0, 30)
    w.flush_to_disk()
    flushed_size = w.partial_path.stat().st_size
    assert flushed_size == w.bytes_written  # nothing left in Python buffers

    crash_copy = tmp_path / "after_flush.mcap.partial"
    shutil.copyfile(w.partial_path, crash_copy)
    recovered = read_until_truncation(crash_copy)
    assert len(recovered.messages) == exp.count()
    by_topic: dict[str, list[int]] = {}
    for topic, log_time, _ in recovered.messages:
        by_topic.setdefault(topic, []).append(log_time)
    assert by_topic == {
        topic: [m["_log_time"] for m in msgs] for topic, msgs in exp.messages.items()
    }
    assert recovered.metadata == ["provenance"]  # provenance survives too

    # More data after the flush, then a crash that cuts the file at arbitrary points past the
    # flush: everything before the flush is still there.
    more = Expected()
    write_all_kinds(w, more, t, 400)  # enough to fill and write out at least one more chunk
    w.flush_to_disk()
    full = w.partial_path.read_bytes()
    assert len(full) > flushed_size
    for cut in (flushed_size, flushed_size + 1, (flushed_size + len(full)) // 2, len(full) - 3):
        crash_copy.write_bytes(full[:cut])
        assert read_until_truncation(crash_copy).messages[: exp.count()] == recovered.messages
    w.abort()


def test_exception_in_context_keeps_partial_and_no_mcap(tmp_path: Path) -> None:
    path = tmp_path / "episode_0001.mcap"
    with pytest.raises(RuntimeError, match="camera unplugged"), EpisodeWriter(path) as w:
        w.write_event(T0, T0, "start", "")
        w.write_joint_state("/a/joint_states", T0, T0, ["j"], [0.5])
        raise RuntimeError("camera unplugged")
    assert not path.exists()
    assert w.partial_path.exists()
    assert w.state is WriterState.ABORTED
    # abort() wrote out the open chunk, so the messages are recoverable.
    assert [topic for topic, _, _ in read_until_truncation(w.partial_path).messages] == [
        "/episode/events",
        "/a/joint_states",
    ]
    assert w.abort() == w.partial_path  # idempotent


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "episode_0001.mcap"
    path.write_bytes(b"closed episode")
    with pytest.raises(EpisodeWriteError, match="never rewritten"):
        EpisodeWriter(path)
    path.unlink()
    leftover = tmp_path / "episode_0001.mcap.partial"
    leftover.write_bytes(b"crashed recording")
    with pytest.raises(EpisodeWriteError, match="teleop recover"):
        EpisodeWriter(path)
    assert leftover.read_bytes() == b"crashed recording"
    with pytest.raises(ValueError, match=r"\.mcap"):
        EpisodeWriter(tmp_path / "episode.bag")
    with pytest.raises(ValueError, match="chunk_size"):
        EpisodeWriter(tmp_path / "x.mcap", chunk_size=10)


def test_closed_writer_refuses_writes(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "e.mcap")
    w.finish()
    with pytest.raises(EpisodeWriteError, match="finished"):
        w.write_event(T0, T0, "late", "")
    with pytest.raises(EpisodeWriteError):
        w.flush_to_disk()
    with pytest.raises(EpisodeWriteError):
        w.finish()


def test_bad_input_raises_before_touching_the_file(tmp_path: Path) -> None:
    """A rejected message must not leave half a record in the open chunk."""
    path = tmp_path / "e.mcap"
    with EpisodeWriter(path) as w:
        w.write_joint_state("/a/joint_states", T0, T0, ["j"], [0.0])
        with pytest.raises(TypeError, match="integer nanoseconds"):
            w.write_joint_state("/a/joint_states", T0, float(T0), ["j"], [0.0])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="outside"):
            w.write_event(T0, -1, "x", "")
        with pytest.raises(ValueError, match="already carries sensor_msgs/msg/JointState"):
            w.write_compressed_image("/a/joint_states", T0, T0, "", "jpeg", b"")
        with pytest.raises(TypeError, match="must be str"):
            w.add_metadata("quality", {"rate": 200.0})  # type: ignore[dict-item]
        w.write_joint_state("/a/joint_states", T0 + 1, np.int64(T0 + 1), ["j"], [1.0])
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        positions = [m.position for _, _, _, m in reader.iter_decoded_messages()]
    assert positions == [[0.0], [1.0]]


def test_counters_and_declared_topics(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "e.mcap")
    w.declare_topic("/cameras/dead/color/compressed", schemas.COMPRESSED_IMAGE)
    for i in range(5):
        w.write_joint_state("/a/joint_states", T0 + i, T0 + i, ["j"], [float(i)])
    w.write_event(T0, T0, "start", "")
    stats = w.stats()
    assert stats.message_counts == {
        "/cameras/dead/color/compressed": 0,
        "/a/joint_states": 5,
        "/episode/events": 1,
    }
    assert stats.message_count == 6
    assert stats.payload_bytes > 0
    before = w.bytes_written
    w.flush_to_disk()
    assert w.bytes_written > before
    path = w.finish()
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    assert "/cameras/dead/color/compressed" in {c.topic for c in summary.channels.values()}
