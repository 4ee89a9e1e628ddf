"""Lazy, indexed random access to one episode file, for replay.

Opening reads only the summary section (schemas, channels, statistics, one chunk index per
chunk), the metadata records and the ``rig.toml`` attachment; no chunk is decompressed. A
question about time t ("the overhead frame nearest t", "the joints from t-5 s to t+5 s") is
answered from the chunk indexes: each says which channels the chunk holds and the log_time
range of its messages, so only the few chunks around t are read and decompressed. The last
few decompressed chunks are kept (LRU); joint samples extracted from a chunk are kept longer,
since they are small and a plot window spans many chunks.

Times are UTC nanoseconds as in the file. Frames are matched on ``header.stamp`` (capture
time); chunks are selected on log_time (receipt time), which is never earlier than the stamp
and at most :data:`MAX_LATENCY_NS` later.

Not thread-safe: one thread uses one reader (the player's worker owns its own).
"""

from __future__ import annotations

import logging
import os
import struct
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mcap.exceptions import McapError
from mcap.records import ChunkIndex
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory

from rigs.cameras.codec import CodecError, decode_depth_png, decode_jpeg, depth_preview
from teleop.episode.reader import EpisodeReadError, open_checked
from teleop.episode.schemas import EVENTS_TOPIC, JOINT_STATE
from teleop.playback.chunks import read_chunk

try:  # a chunk damaged inside its compressed data raises zstandard's own error
    from zstandard import ZstdError
except ImportError:  # pragma: no cover - zstandard comes with mcap's zstd support
    ZstdError = ValueError  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

MAX_LATENCY_NS = 250_000_000
"""Longest expected delay from a frame's capture (stamp) to its receipt (log_time). The
recorder measures p99 ≈ 80 ms; a later frame is still found, one search round later."""
_FIRST_WINDOW_NS = 100_000_000
Buffer = bytes | memoryview
_DAMAGE = (McapError, struct.error, ValueError, EOFError, OSError, ZstdError)
# CDR encapsulation header (4 bytes), then std_msgs/Header starts with stamp (int32 sec,
# uint32 nanosec). Byte 1 of the encapsulation says the endianness.
_STAMP_LE = struct.Struct("<iI")
_STAMP_BE = struct.Struct(">iI")


@dataclass(frozen=True)
class Frame:
    """One decoded camera image: colour BGR, or a false-colour picture of depth."""

    camera: str
    stamp_ns: int
    """header.stamp: capture time, UTC ns."""
    image: np.ndarray
    """H×W×3 uint8 BGR (for depth: ``depth_preview`` of the 16-bit image)."""
    depth: bool = False


@dataclass(frozen=True)
class JointSeries:
    """Joint positions of one JointState topic over a time window."""

    topic: str
    joint_names: tuple[str, ...]
    stamp_ns: np.ndarray
    """int64 UTC ns (header.stamp), ascending."""
    position_rad: np.ndarray
    """float64, shape (samples, joints)."""

    def nearest(self, stamp_ns: int) -> np.ndarray | None:
        """The positions of the sample whose stamp is nearest ``stamp_ns`` (None if empty)."""
        if len(self.stamp_ns) == 0:
            return None
        return self.position_rad[_nearest_index(self.stamp_ns, stamp_ns)]


@dataclass(frozen=True)
class EpisodeEvent:
    """One ``/episode/events`` message."""

    stamp_ns: int
    kind: str
    detail: str


@dataclass(frozen=True)
class _ChannelMessages:
    stamp_ns: np.ndarray  # int64, ascending
    payloads: list[memoryview]  # in stamp order


@dataclass
class _JointChunk:
    stamp_ns: np.ndarray
    position_rad: np.ndarray


class EpisodeReader:
    """Random access by time to one episode's frames, joints and events.

    Args:
        path: a complete episode file.
        cache_chunks: decompressed chunks to keep (each is up to the writer's chunk size,
            4 MiB). Playing needs the 2–3 around the playhead; a few more make stepping back
            and forth free.

    Raises:
        EpisodeReadError: the file is not a complete episode (with a one-line message).
    """

    def __init__(self, path: Path, *, cache_chunks: int = 6):
        self.path = Path(path)
        self._file, reader, summary = open_checked(self.path)
        try:
            stats = summary.statistics
            assert stats is not None  # open_checked guarantees it
            self.start_ns: int = stats.message_start_time
            """Earliest message log_time: replay position 0."""
            self.end_ns: int = stats.message_end_time
            self.metadata: dict[str, dict[str, str]] = {
                m.name: dict(m.metadata) for m in reader.iter_metadata()
            }
            rig_toml = self._attachment(summary, "rig.toml")
        except _DAMAGE as exc:
            self._file.close()
            raise EpisodeReadError(self.path, f"damaged index or metadata ({_why(exc)})") from exc
        self._counts = dict(stats.channel_message_counts)
        self._topics = {c.topic: c.id for c in summary.channels.values()}
        # Events are few: the generic decoder (built from the embedded schema) serves them.
        self._decoders: dict[int, Callable[[bytes], Any]] = {}
        joint_channels = set()
        for channel in summary.channels.values():
            schema = summary.schemas.get(channel.schema_id)
            if schema is None:
                continue
            if schema.name == JOINT_STATE:
                joint_channels.add(channel.id)
            elif channel.topic == EVENTS_TOPIC:
                decoder = DecoderFactory().decoder_for(channel.message_encoding, schema)
                if decoder is not None:
                    self._decoders[channel.id] = decoder
        self.cameras: tuple[str, ...] = tuple(
            sorted(
                t.split("/")[2]
                for t in self._topics
                if t.startswith("/cameras/") and t.endswith("/color/compressed")
            )
        )
        """Cameras with a colour topic, sorted by name."""
        self.depth_cameras: tuple[str, ...] = tuple(
            c for c in self.cameras if f"/cameras/{c}/depth" in self._topics
        )
        self.joint_topics: tuple[str, ...] = tuple(
            sorted(
                t
                for t, cid in self._topics.items()
                if cid in joint_channels
                and (t.endswith("/joint_states") or t.endswith("/joint_commands"))
            )
        )
        """``/<arm>/joint_states`` and ``/<follower>/joint_commands`` topics."""
        self.leader_of: dict[str, str] = _leaders(rig_toml, self.joint_topics)
        """follower arm name → the leader arm it follows."""
        self._chunks = sorted(summary.chunk_indexes, key=lambda c: c.message_start_time)
        self._chunk_start = np.array([c.message_start_time for c in self._chunks], np.int64)
        self._chunk_end = np.array([c.message_end_time for c in self._chunks], np.int64)
        # A chunk's messages can end after a later chunk's begin (arrival order is not log
        # order across threads), so the search keeps a running maximum of end times.
        self._chunk_end_max = np.maximum.accumulate(self._chunk_end) if self._chunks else None
        self._cache: OrderedDict[int, dict[int, _ChannelMessages]] = OrderedDict()
        self._cache_chunks = max(1, cache_chunks)
        self._joint_cache: OrderedDict[int, dict[int, _JointChunk]] = OrderedDict()
        self._joint_names: dict[int, tuple[str, ...]] = {}
        self._joint_layouts: dict[int, _JointLayout] = {}
        self._advised: set[int] = set()
        self.chunks_read = 0
        """Chunks decompressed so far (for benchmarks and tests)."""

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file and drop the caches."""
        self._file.close()
        self._cache.clear()
        self._joint_cache.clear()

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def duration_ns(self) -> int:
        """From the first to the last message log_time."""
        return self.end_ns - self.start_ns

    # -- frames ---------------------------------------------------------------------------

    def frame_count(self, camera: str, *, depth: bool = False) -> int:
        """Frames ``camera`` recorded (from the summary's statistics)."""
        return self._counts.get(self._camera_channel(camera, depth), 0)

    def frame_stamp_at(self, camera: str, stamp_ns: int, *, depth: bool = False) -> int | None:
        """The stamp of ``camera``'s frame nearest ``stamp_ns`` (None: the camera has none)."""
        found = self._nearest(self._camera_channel(camera, depth), stamp_ns)
        return None if found is None else found[0]

    def frame_at(self, camera: str, stamp_ns: int, *, depth: bool = False) -> Frame | None:
        """``camera``'s frame whose capture stamp is nearest ``stamp_ns``, decoded.

        ``depth`` selects the depth stream (shown through ``depth_preview``). None when the
        camera recorded no frame at all.

        Raises:
            KeyError: no such camera (or it has no depth).
            EpisodeReadError: the chunk holding the frame is damaged, or the image is not
                decodable.
        """
        found = self._nearest(self._camera_channel(camera, depth), stamp_ns)
        if found is None:
            return None
        return self.decode(camera, found[0], found[1], depth=depth)

    def frame_payload_at(
        self, camera: str, stamp_ns: int, *, depth: bool = False
    ) -> tuple[int, Buffer] | None:
        """(stamp, CDR-encoded CompressedImage message) of the nearest frame, not decoded yet."""
        return self._nearest(self._camera_channel(camera, depth), stamp_ns)

    def decode(self, camera: str, stamp_ns: int, payload: Buffer, *, depth: bool = False) -> Frame:
        """Decode a payload from :meth:`frame_payload_at` into a :class:`Frame`."""
        try:
            data = _compressed_image_data(payload)
            image = depth_preview(decode_depth_png(data)) if depth else decode_jpeg(data)
        except (CodecError, struct.error, ValueError) as exc:
            raise EpisodeReadError(
                self.path, f"{camera} frame at {stamp_ns}: {exc}", recoverable=False
            ) from exc
        return Frame(camera, stamp_ns, image, depth)

    def step_stamp(self, camera: str, stamp_ns: int, frames: int) -> int | None:
        """The stamp of the frame ``frames`` frames after (negative: before) the one nearest
        ``stamp_ns`` on ``camera``; clamped to the first/last frame."""
        channel = self._camera_channel(camera, False)
        if not self._counts.get(channel):
            return None
        span = (abs(frames) + 2) * _FIRST_WINDOW_NS
        while True:
            lo, hi = stamp_ns - span, stamp_ns + span + MAX_LATENCY_NS
            stamps = np.unique(self._channel_stamps(channel, lo, hi))
            whole = lo <= self.start_ns - MAX_LATENCY_NS and hi >= self.end_ns + MAX_LATENCY_NS
            if len(stamps):
                target = _nearest_index(stamps, stamp_ns) + frames
                if 0 <= target < len(stamps) and lo <= stamps[target] <= hi - MAX_LATENCY_NS:
                    return int(stamps[target])
                if whole:
                    return int(stamps[min(max(target, 0), len(stamps) - 1)])
            elif whole:
                return None
            span *= 4

    def count_between(self, camera: str, after_ns: int, before_ns: int) -> int:
        """Frames of ``camera`` with after < stamp < before (within chunks already cached)."""
        channel = self._topics.get(f"/cameras/{camera}/color/compressed")
        n = 0
        for chunk in self._cache.values():
            msgs = chunk.get(channel) if channel is not None else None
            if msgs is not None:
                n += int(np.count_nonzero((msgs.stamp_ns > after_ns) & (msgs.stamp_ns < before_ns)))
        return n

    # -- joints and events ----------------------------------------------------------------

    def load_joints(self, from_ns: int, to_ns: int, max_chunks: int) -> bool:
        """Read at most ``max_chunks`` chunks of the joint window not read yet, those nearest
        its middle first; True once the whole window is in memory (``joints`` is then cheap).

        Lets the player fill a window after a seek a chunk at a time between frames.
        """
        wanted = {self._topics[t] for t in self.joint_topics}
        middle = (from_ns + to_ns) // 2
        missing = sorted(
            (
                i
                for i in self._chunks_overlapping(from_ns, to_ns + MAX_LATENCY_NS, wanted)
                if i not in self._joint_cache
            ),
            key=lambda i: abs(int(self._chunk_start[i]) - middle),
        )
        for i in missing[:max_chunks]:
            self._joint_chunk(i)
        return len(missing) <= max_chunks

    def prefetch(self, from_ns: int, to_ns: int) -> None:
        """Ask the OS to start reading the chunks of [from, to] in the background
        (``posix_fadvise(WILLNEED)``), so playing does not wait for the disk."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None:
            return
        for i in self._chunks_overlapping(from_ns, to_ns, self._counts):
            if i in self._advised:
                continue
            index = self._chunks[i]
            advise(self._file.fileno(), index.chunk_start_offset, index.chunk_length,
                   os.POSIX_FADV_WILLNEED)  # fmt: skip
            self._advised.add(i)
        if len(self._advised) > 4096:  # bounded; re-advising a chunk is harmless
            self._advised.clear()

    def joints(self, from_ns: int, to_ns: int) -> dict[str, JointSeries]:
        """Joint positions with from <= stamp < to, per joint topic (see ``joint_topics``)."""
        wanted = {self._topics[t]: t for t in self.joint_topics}
        parts: dict[int, list[_JointChunk]] = {cid: [] for cid in wanted}
        for i in self._chunks_overlapping(from_ns, to_ns + MAX_LATENCY_NS, wanted):
            for cid, part in self._joint_chunk(i).items():
                if cid in parts:
                    parts[cid].append(part)
        out: dict[str, JointSeries] = {}
        for cid, topic in wanted.items():
            names = self._joint_names.get(cid, ())
            if parts[cid]:
                stamps = np.concatenate([p.stamp_ns for p in parts[cid]])
                pos = np.concatenate([p.position_rad for p in parts[cid]])
                keep = (stamps >= from_ns) & (stamps < to_ns)
                stamps, pos = stamps[keep], pos[keep]
                order = np.argsort(stamps, kind="stable")
                stamps, pos = stamps[order], pos[order]
            else:
                stamps, pos = np.zeros(0, np.int64), np.zeros((0, len(names)))
            out[topic] = JointSeries(topic, names, stamps, pos)
        return out

    def events(self) -> list[EpisodeEvent]:
        """Every ``/episode/events`` message, in stamp order (reads only chunks holding one)."""
        cid = self._topics.get(EVENTS_TOPIC)
        if cid is None or cid not in self._decoders:
            return []
        decoder = self._decoders[cid]
        out = []
        for i, index in enumerate(self._chunks):
            if cid not in index.message_index_offsets:
                continue
            # Not through the LRU: events are spread over the file and would evict the
            # chunks around the playhead.
            msgs = self._parse(i, index).get(cid)
            if msgs is None:
                continue
            for stamp, payload in zip(msgs.stamp_ns, msgs.payloads, strict=True):
                msg = self._decode(decoder, payload)
                out.append(EpisodeEvent(int(stamp), str(msg.kind), str(msg.detail)))
        return sorted(out, key=lambda e: e.stamp_ns)

    # -- internals ------------------------------------------------------------------------

    def _camera_channel(self, camera: str, depth: bool) -> int:
        topic = f"/cameras/{camera}/depth" if depth else f"/cameras/{camera}/color/compressed"
        try:
            return self._topics[topic]
        except KeyError:
            raise KeyError(f"{self.path}: no topic {topic}") from None

    def _nearest(self, channel: int, stamp_ns: int) -> tuple[int, Buffer] | None:
        if not self._counts.get(channel):
            return None
        window = _FIRST_WINDOW_NS
        while True:
            lo, hi = stamp_ns - window, stamp_ns + window + MAX_LATENCY_NS
            best: tuple[int, Buffer] | None = None
            for i in self._chunks_overlapping(lo, hi, {channel}):
                msgs = self._chunk(i).get(channel)
                if msgs is None or not len(msgs.stamp_ns):
                    continue
                k = _nearest_index(msgs.stamp_ns, stamp_ns)
                s = int(msgs.stamp_ns[k])
                if best is None or abs(s - stamp_ns) < abs(best[0] - stamp_ns):
                    best = (s, msgs.payloads[k])
            # Every frame whose stamp is within `window` of t lies in the chunks read, so a
            # frame that close is the nearest; otherwise widen (a gap in that camera).
            if best is not None and abs(best[0] - stamp_ns) <= window:
                return best
            if lo <= self.start_ns - MAX_LATENCY_NS and hi >= self.end_ns + MAX_LATENCY_NS:
                return best
            window = max(window * 4, abs(best[0] - stamp_ns) if best else 0)

    def _channel_stamps(self, channel: int, lo: int, hi: int) -> np.ndarray:
        parts = [
            msgs.stamp_ns
            for i in self._chunks_overlapping(lo, hi, {channel})
            if (msgs := self._chunk(i).get(channel)) is not None
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _chunks_overlapping(self, lo: int, hi: int, channels: Iterable[int]) -> list[int]:
        """Indexes of chunks holding any of ``channels`` with log times overlapping [lo, hi]."""
        if self._chunk_end_max is None:
            return []
        first = int(np.searchsorted(self._chunk_end_max, lo, side="left"))
        last = int(np.searchsorted(self._chunk_start, hi, side="right"))
        wanted = set(channels)
        return [
            i
            for i in range(first, last)
            if self._chunk_end[i] >= lo
            and not wanted.isdisjoint(self._chunks[i].message_index_offsets)
        ]

    def _chunk(self, i: int) -> dict[int, _ChannelMessages]:
        cached = self._cache.get(i)
        if cached is not None:
            self._cache.move_to_end(i)
            return cached
        parsed = self._parse(i, self._chunks[i])
        self._cache[i] = parsed
        while len(self._cache) > self._cache_chunks:
            self._cache.popitem(last=False)
        return parsed

    def _parse(self, i: int, index: ChunkIndex) -> dict[int, _ChannelMessages]:
        """Read, decompress and split one chunk into per-channel, stamp-sorted messages."""
        try:
            messages = read_chunk(self._file, index.chunk_start_offset, index.chunk_length)
        except (*_DAMAGE, RuntimeError) as exc:
            raise EpisodeReadError(
                self.path, f"damaged chunk at offset {index.chunk_start_offset} ({_why(exc)})"
            ) from exc
        self.chunks_read += 1
        by_channel: dict[int, list[tuple[int, memoryview]]] = {}
        for channel_id, log_time, data in messages:
            by_channel.setdefault(channel_id, []).append((_header_stamp(data, log_time), data))
        out = {}
        for cid, items in by_channel.items():
            items.sort(key=lambda m: m[0])
            out[cid] = _ChannelMessages(
                np.fromiter((m[0] for m in items), np.int64, len(items)),
                [m[1] for m in items],
            )
        if i not in self._joint_cache:
            self._store_joints(i, out)
        return out

    def _joint_chunk(self, i: int) -> dict[int, _JointChunk]:
        cached = self._joint_cache.get(i)
        if cached is not None:
            self._joint_cache.move_to_end(i)
            return cached
        # Parsed outside the LRU: a ±5 s window spans ~20 chunks and would evict the few
        # around the playhead that the frames need. Parsing stores the chunk's joints.
        self._parse(i, self._chunks[i])
        return self._joint_cache[i]

    def _store_joints(self, i: int, parsed: dict[int, _ChannelMessages]) -> None:
        joints: dict[int, _JointChunk] = {}
        for topic in self.joint_topics:
            cid = self._topics[topic]
            msgs = parsed.get(cid)
            if msgs is None:
                continue
            layout = self._joint_layouts.get(cid)
            rows = []
            try:
                for payload in msgs.payloads:
                    layout, position = _joint_state(payload, layout)
                    rows.append((layout.names, position))
            except (struct.error, ValueError, UnicodeDecodeError) as exc:
                raise EpisodeReadError(
                    self.path, f"undecodable {topic} message ({_why(exc)})", recoverable=False
                ) from exc
            if layout is not None:
                self._joint_layouts[cid] = layout
            if cid not in self._joint_names and rows:
                self._joint_names[cid] = rows[0][0]
            names = self._joint_names.get(cid, ())
            pos = np.full((len(rows), len(names)), np.nan)
            for row, (row_names, position) in enumerate(rows):
                # A message naming other joints (not written by teleop) is left as a gap.
                if row_names == names and len(position) == len(names):
                    pos[row] = position
            joints[cid] = _JointChunk(msgs.stamp_ns, pos)
        self._joint_cache[i] = joints
        # Joint samples are ~1/40 of a chunk's size: keep enough for a ±5 s window and more.
        while len(self._joint_cache) > 256:
            self._joint_cache.popitem(last=False)

    def _decode(self, decoder: Callable[[bytes], Any], payload: Buffer) -> Any:
        try:
            return decoder(bytes(payload))
        except Exception as exc:  # mcap_ros2 raises assorted errors on bad CDR
            raise EpisodeReadError(
                self.path, f"undecodable message ({_why(exc)})", recoverable=False
            ) from exc

    def _attachment(self, summary: Any, name: str) -> bytes | None:
        for index in summary.attachment_indexes:
            if index.name == name:
                self._file.seek(index.offset)
                record = next(StreamReader(self._file, skip_magic=True).records)
                return bytes(getattr(record, "data", b""))
        return None


def _header_stamp(data: memoryview, log_time_ns: int) -> int:
    """header.stamp of a CDR message that starts with a std_msgs/Header.

    Read straight from the bytes: every recorded image, joint and event message starts with
    a Header. A message too short for one (not ours) is placed at its log_time.
    """
    if len(data) >= 12:
        fmt = _STAMP_LE if data[1] & 1 else _STAMP_BE
        sec, nsec = fmt.unpack_from(data, 4)
        return sec * 1_000_000_000 + nsec
    return log_time_ns


def _compressed_image_data(cdr: Buffer) -> Buffer:
    """The ``data`` field of a CDR ``sensor_msgs/msg/CompressedImage``, without a copy of
    the rest: header.stamp (8 bytes), header.frame_id and format (strings), then data."""
    u32 = struct.Struct("<I" if cdr[1] & 1 else ">I")
    pos = 4 + 8  # encapsulation, stamp; CDR aligns relative to the end of encapsulation
    for _ in range(2):  # frame_id, format
        pos += -(pos - 4) % 4
        (length,) = u32.unpack_from(cdr, pos)
        pos += 4 + length
    pos += -(pos - 4) % 4
    (length,) = u32.unpack_from(cdr, pos)
    if pos + 4 + length > len(cdr):
        raise ValueError("CompressedImage data runs past the message")
    return cdr[pos + 4 : pos + 4 + length]


def _joint_state(cdr: Buffer, layout: _JointLayout | None) -> tuple[_JointLayout, np.ndarray]:
    """The layout and positions of a CDR ``sensor_msgs/msg/JointState``.

    Hand-decoded: the generic ``mcap_ros2`` decoder took ~165 µs a message, which made a
    ±5 s plot window (3000 messages) cost half a second. A topic's frame_id and joint names
    repeat in every message, so once ``layout`` is known, a byte comparison of that prefix
    locates the positions without parsing the names again.
    """
    little = bool(cdr[1] & 1)
    if layout is None or cdr[12 : 12 + len(layout.prefix)] != layout.prefix:
        layout = _joint_layout(cdr, little)
    u32 = "<u4" if little else ">u4"
    count = int(np.frombuffer(cdr, u32, 1, layout.count_at)[0])
    at = layout.count_at + 4
    at += -(at - 4) % 8
    if at + 8 * count > len(cdr):
        raise ValueError("JointState position runs past the message")
    return layout, np.frombuffer(cdr, "<f8" if little else ">f8", count, at)


@dataclass(frozen=True)
class _JointLayout:
    prefix: bytes
    """Message bytes from after header.stamp up to the position count."""
    names: tuple[str, ...]
    count_at: int


def _joint_layout(cdr: Buffer, little: bool) -> _JointLayout:
    u32 = struct.Struct("<I" if little else ">I")
    pos = 4 + 8  # encapsulation, header.stamp; CDR aligns relative to the end of encapsulation
    (length,) = u32.unpack_from(cdr, pos)
    pos += 4 + length  # header.frame_id
    pos += -(pos - 4) % 4
    (count,) = u32.unpack_from(cdr, pos)
    pos += 4
    names = []
    for _ in range(count):
        pos += -(pos - 4) % 4
        (length,) = u32.unpack_from(cdr, pos)
        names.append(bytes(cdr[pos + 4 : pos + 3 + length]).decode("utf-8"))  # drop the NUL
        pos += 4 + length
    pos += -(pos - 4) % 4
    return _JointLayout(bytes(cdr[12:pos]), tuple(names), pos)


def _nearest_index(sorted_ns: np.ndarray, t_ns: int) -> int:
    k = int(np.searchsorted(sorted_ns, t_ns))
    if k == 0:
        return 0
    if k == len(sorted_ns):
        return k - 1
    return k if sorted_ns[k] - t_ns < t_ns - sorted_ns[k - 1] else k - 1


def _leaders(rig_toml: bytes | None, joint_topics: Iterable[str]) -> dict[str, str]:
    """follower → leader, from the rig spec's ``follows`` (else by name: left_follower →
    left_leader, as the presets name them)."""
    arms = {t.split("/")[1] for t in joint_topics}
    pairs: dict[str, str] = {}
    if rig_toml:
        try:
            spec = tomllib.loads(rig_toml.decode("utf-8"))
            for arm in spec.get("arms", []):
                if arm.get("role") == "follower" and arm.get("follows"):
                    pairs[str(arm["name"])] = str(arm["follows"])
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError, TypeError):
            log.warning("rig.toml attachment unreadable; pairing arms by name")
    for arm in sorted(arms):
        if arm not in pairs and "follower" in arm:
            leader = arm.replace("follower", "leader")
            if leader in arms:
                pairs[arm] = leader
    return {f: lead for f, lead in pairs.items() if f in arms}


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
