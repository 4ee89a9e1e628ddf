"""Foxglove decodes every message of an episode, with Foxglove's own readers (not ours):
@mcap/core's indexed reader, @foxglove/rosmsg's ROS 2 parser and
@foxglove/rosmsg2-serialization's MessageReader, run by Node from tests/foxglove."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from teleop import catalog
from teleop.cli import main
from teleop.episode.reader import read_attachment, summarize
from teleop.episode.recover import recover
from teleop.episode.rewrite import EpisodeCopier, new_episode_file
from tests.foxglove_readers import read_with_foxglove, undecoded

ARMS = ["left_leader", "right_leader", "left_follower", "right_follower"]
FOLLOWERS = ["left_follower", "right_follower"]
CAMERAS = ["overhead", "low", "left_wrist", "right_wrist"]
DEPTH_CAMERAS = ["overhead", "low"]


def expected_frames() -> dict[str, str]:
    frames = {f"/{arm}/joint_states": f"{arm}_base_link" for arm in ARMS}
    for f in FOLLOWERS:
        frames[f"/{f}/joint_targets"] = frames[f"/{f}/joint_commands"] = f"{f}_base_link"
    for cam in CAMERAS:
        frames[f"/cameras/{cam}/color/compressed"] = f"{cam}_color_optical_frame"
        frames[f"/cameras/{cam}/camera_info"] = f"{cam}_color_optical_frame"
    for cam in DEPTH_CAMERAS:
        frames[f"/cameras/{cam}/depth"] = f"{cam}_depth_optical_frame"
    frames["/diagnostics"] = frames["/episode/events"] = "sim-bimanual"
    return frames


def assert_foxglove_reads_everything(path: Path) -> dict[str, Any]:
    result = read_with_foxglove(path)
    assert undecoded(result) == {}
    s = summarize(path)
    assert result["messages"] == result["statistics_messages"] == s.message_count > 0
    for topic, t in result["topics"].items():
        assert t["messages"] == s.topics[topic].message_count
        assert t["stamp_backwards"] == 0, f"{topic}: header stamps go backwards"
    # The playhead jumps to the middle: reading starts there, and what follows decodes.
    seek = result["seek"]
    assert seek["decoded"] == seek["messages"] > 0
    assert int(seek["earliest_log_time"]) >= int(seek["start_time"])
    assert seek["messages"] < result["messages"]
    return result


def test_foxglove_decodes_every_message_of_a_new_episode(recorded_root: Path):
    (row,) = catalog.query(recorded_root, "task = 'pick_place' AND episode_index = 1")
    path = Path(row["path"])
    result = assert_foxglove_reads_everything(path)
    topics = result["topics"]
    assert set(topics) == set(expected_frames())  # four arms, four cameras with depth, ...
    assert {t: v["frame_ids"] for t, v in topics.items()} == {
        t: [frame] for t, frame in expected_frames().items()
    }
    assert all(v["messages"] > 0 for v in topics.values())
    assert topics["/left_follower/joint_states"]["schema"] == "sensor_msgs/msg/JointState"
    assert topics["/episode/events"]["schema"] == "teleop_msgs/msg/EpisodeEvent"


def test_foxglove_decodes_a_recovered_episode(recorded_root: Path, tmp_path: Path):
    (row,) = catalog.query(recorded_root, "task = 'pick_place' AND episode_index = 2")
    data = Path(row["path"]).read_bytes()
    partial = tmp_path / "episode_0002.mcap.partial"
    partial.write_bytes(data[: len(data) * 3 // 5])  # what a crash leaves: no summary
    report = recover(partial)
    assert 0 < report.messages < summarize(Path(row["path"])).message_count
    result = assert_foxglove_reads_everything(report.output)
    assert result["messages"] == report.messages


# -- files written by teleop 0.1 ------------------------------------------------------------

_BLOCK = re.compile(r"^MSG: ([A-Za-z0-9_]+)/([A-Za-z0-9_]+)$", re.MULTILINE)


def write_as_version_0_1(source: Path, output: Path) -> None:
    """A copy of ``source`` with the definitions as teleop 0.1 wrote them: every dependency
    block named ``MSG: pkg/msg/Name`` while the field lines say ``pkg/Name``."""

    def old_form(_name: str, _encoding: str, data: bytes) -> bytes:
        return _BLOCK.sub(r"MSG: \1/msg/\2", data.decode()).encode()

    with open(source, "rb") as f, new_episode_file(output) as out:
        from mcap.stream_reader import StreamReader

        copy = EpisodeCopier(out, "teleop/0.1.0", old_form)
        for rec in StreamReader(f).records:
            copy.add(rec)
        copy.finish("test", {"made_by": "write_as_version_0_1"})
    assert copy.schemas_changed == 5


def plain(value: Any) -> Any:
    """A rosbags message as JSON-like data, spelled as read_episode.mjs spells Foxglove's
    (rosbags also lists the type name and the constants, which are not message data)."""
    if dataclasses.is_dataclass(value):
        fields = (
            f.name
            for f in dataclasses.fields(value)
            if not f.name.startswith("__") and not f.name.isupper()
        )
        return {name: plain(getattr(value, name)) for name in fields}
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8:
            return {"bytes": len(value), "sha256": hashlib.sha256(value.tobytes()).hexdigest()}
        return value.tolist()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def test_repair_makes_a_version_0_1_file_readable_by_foxglove(
    recorded_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    root = tmp_path / "data"
    shutil.copytree(recorded_root, root)
    (row,) = catalog.query(root, "task = 'fold_towel'")
    session_dir = root / row["session"]
    episode = session_dir / row["file"]
    old = tmp_path / "old.mcap"
    write_as_version_0_1(episode, old)
    old.replace(episode)  # the session now holds a file as 0.1 recorded it
    original_bytes = episode.read_bytes()

    before = read_with_foxglove(episode)
    assert all(t["decoded"] == 0 for t in before["topics"].values())
    assert "Expected 1 top level type definition" in before["topics"]["/diagnostics"]["error"]

    assert main(["inspect", str(episode)]) == 0
    assert "old form (written by teleop 0.1)" in capsys.readouterr().out

    assert main(["repair", str(session_dir)]) == 0
    line = capsys.readouterr().out.strip()
    repaired = session_dir / "episode_0001.repaired.mcap"
    assert line.startswith(f"{episode}: repaired into {repaired}")
    assert episode.read_bytes() == original_bytes  # the original is untouched

    result = read_with_foxglove(repaired, dump=100_000)
    assert undecoded(result) == {}
    assert summarize(repaired).legacy_schemas == []

    # Message by message, Foxglove's decoding of the copy equals rosbags' of the original.
    with AnyReader([episode]) as reader:
        expected: dict[str, list[Any]] = {}
        for conn, log_time, raw in reader.messages():
            msg = plain(reader.deserialize(raw, conn.msgtype))
            expected.setdefault(conn.topic, []).append((str(log_time), msg))
    got = {
        topic: [(m["log_time"], m["message"]) for m in t["dump"]]
        for topic, t in result["topics"].items()
    }
    assert set(got) == set(expected)
    for topic in expected:
        assert len(got[topic]) == len(expected[topic]), topic
        assert json.loads(json.dumps(got[topic])) == json.loads(json.dumps(expected[topic])), topic

    # Same metadata and attachments, plus a record of the repair.
    s_old, s_new = summarize(episode), summarize(repaired)
    assert {k: v for k, v in s_new.metadata.items() if k != "repair"} == s_old.metadata
    assert s_new.metadata["repair"]["repaired_from"] == episode.name
    assert s_new.attachment_names == s_old.attachment_names
    for name in s_old.attachment_names:
        assert read_attachment(repaired, name) == read_attachment(episode, name)

    # The manifest and the catalog now point at the copy; labels follow the episode.
    manifest = json.loads((session_dir / "session.json").read_text())
    (entry,) = manifest["episodes"]
    assert entry["file"] == repaired.name and entry["repaired_from"] == episode.name
    (listed,) = catalog.query(root, "task = 'fold_towel'")
    assert listed["file"] == repaired.name and listed["readable"] == 1
    assert listed["episode_id"] == row["episode_id"]

    # A second run finds nothing to do and writes nothing.
    assert main(["repair", str(repaired)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["middle of the file", "inside chunk 1's compressed data"])
def test_repair_refuses_a_damaged_file_and_writes_nothing(
    recorded_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
):
    from tests.teleop.test_damaged_files import flip_in_chunk

    (row,) = catalog.query(recorded_root, "task = 'fold_towel'")
    old = tmp_path / "episode_0001.mcap"
    write_as_version_0_1(Path(row["path"]), old)
    if where.startswith("inside"):
        flip_in_chunk(old, 1)  # fails zstd decompression or the chunk CRC
    else:
        data = bytearray(old.read_bytes())
        data[len(data) // 2] ^= 0xFF
        old.write_bytes(bytes(data))
    assert main(["repair", str(old)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"teleop: error: {old}: damaged") and "teleop recover" in err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_0001.mcap"]
