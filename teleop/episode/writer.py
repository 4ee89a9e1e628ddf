"""EpisodeWriter: the single owner of one episode's MCAP file.

File invariants this module guarantees:

* While recording, data goes to ``<name>.mcap.partial``. Only :meth:`EpisodeWriter.finish`
  produces ``<name>.mcap``, and only after the summary is written and the file and its
  directory are fsynced; so a name ending in ``.mcap`` always means a complete, indexed file.
* After :meth:`EpisodeWriter.flush_to_disk` returns, every message written before the call is
  inside a complete chunk on stable storage. A crash loses at most what came after the last
  call; the ``.partial`` can be rebuilt by ``teleop recover``.
* Metadata records (provenance, quality) are fsynced as soon as they are added.

Not thread-safe, by design: one thread (the recorder's writer thread) owns the writer.
"""

from __future__ import annotations

import enum
import logging
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from mcap.writer import LIBRARY_IDENTIFIER as MCAP_LIBRARY_IDENTIFIER
from mcap.writer import CompressionType, IndexType
from mcap.writer import Writer as McapWriter

from rigs.durable import fsync_dir
from teleop.episode import cdr
from teleop.episode.schemas import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    DIAGNOSTIC_ARRAY,
    EPISODE_EVENT,
    EVENTS_TOPIC,
    JOINT_STATE,
    MESSAGE_ENCODING,
    PROFILE,
    SCHEMA_ENCODING,
    message_definition,
)
from teleop.errors import TeleopError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_CHUNK_SIZE = 1 * MIB
MAX_CHUNK_SIZE = 4 * MIB
DEFAULT_CHUNK_SIZE = 4 * MIB
PARTIAL_SUFFIX = ".partial"

try:
    # From the installed distribution rather than teleop.__version__, so this layer does not
    # import the package's top level.
    _TELEOP_VERSION = version("teleop")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    _TELEOP_VERSION = "0+unknown"
_U64_LIMIT = 2**64

_COMPRESSION = {
    "zstd": CompressionType.ZSTD,
    "lz4": CompressionType.LZ4,
    "none": CompressionType.NONE,
}

# flush_to_disk() relies on mcap's public Writer.flush() ("finishes the chunk in progress,
# writes everything buffered so far to the output stream, and flushes the stream"). Older
# mcap releases lack it; fail at import with a clear message rather than mid-episode.
if not callable(getattr(McapWriter, "flush", None)):  # pragma: no cover - depends on install
    raise ImportError("teleop.episode needs mcap>=1.6 (mcap.writer.Writer.flush is missing)")

# fdatasync flushes the data and the metadata needed to read it back (the size) but not
# timestamps, which saves a journal write per call on Linux.
_fdatasync = getattr(os, "fdatasync", os.fsync)


class EpisodeWriteError(TeleopError):
    """The episode file cannot be created or written, or the writer is used after closing."""


class WriterState(enum.Enum):
    """Lifecycle: OPEN → FINISHED (complete ``.mcap``) or OPEN → ABORTED (``.partial`` kept)."""

    OPEN = "open"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(frozen=True)
class WriterStats:
    """A snapshot of what one writer has written so far."""

    message_counts: dict[str, int]
    """Messages written per topic (topics declared but never written have 0)."""
    payload_bytes: int
    """Serialized (CDR) message bytes handed to MCAP, before compression."""
    file_bytes: int
    """Bytes handed to the file so far: compressed chunks, indexes, metadata, attachments.
    The chunk being filled is not counted until it is closed."""

    @property
    def message_count(self) -> int:
        """Messages written over all topics."""
        return sum(self.message_counts.values())


MessageTap = Callable[[str, str, int, bytes | bytearray], None]
"""Called as ``tap(topic, type_name, log_time_ns, cdr_bytes)`` after each message is written:
the exact bytes the file holds, for a live view. It runs on the writer's thread and must
never block (hand the bytes over and return)."""


class _Channel:
    __slots__ = ("id", "type_name", "sequence", "count")

    def __init__(self, channel_id: int, type_name: str):
        self.id = channel_id
        self.type_name = type_name
        self.sequence = 0
        self.count = 0


def episode_mcap_writer(
    out: IO[bytes],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    compression: CompressionType = CompressionType.ZSTD,
) -> McapWriter:
    """An mcap writer with the settings of every episode file teleop writes: all indexes and
    statistics, schemas and channels repeated in the summary, chunk CRCs and a CRC of the
    whole data section (in DataEnd) so a file can be verified end to end."""
    return McapWriter(
        out,
        chunk_size=chunk_size,
        compression=compression,
        index_types=IndexType.ALL,
        repeat_channels=True,
        repeat_schemas=True,
        use_chunking=True,
        use_statistics=True,
        use_summary_offsets=True,
        enable_crcs=True,
        # zlib.crc32 runs at GB/s: about 1 ms per recorded second.
        enable_data_crcs=True,
    )


def partial_path_for(path: Path) -> Path:
    """The in-progress name for an episode file: ``episode_0001.mcap.partial``."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _ns(value: int, what: str) -> int:
    # operator.index accepts int and numpy integers and rejects floats, which would silently
    # lose nanoseconds. Range-checked here because mcap packs it as uint64 midway through a
    # record: a failure there would leave a half-written record in the open chunk.
    try:
        ns = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be integer nanoseconds, got {value!r}") from None
    if not 0 <= ns < _U64_LIMIT:
        raise ValueError(f"{what} {ns} is outside 0..2**64-1 nanoseconds")
    return ns


class EpisodeWriter:
    """Write one episode to an indexed, zstd-chunked ``ros2``-profile MCAP file.

    Timestamps are UTC nanoseconds. ``stamp_ns`` goes in the message's ``header.stamp`` and
    in the MCAP publish_time (the best estimate of capture time); ``log_time_ns`` is the MCAP
    log_time (host receipt time). Channels are registered on first use of a topic; a topic
    keeps its message type for the whole file.

    Use as a context manager, or call :meth:`finish` (success) or :meth:`abort` (failure)
    yourself::

        with EpisodeWriter(session_dir / "episode_0001.mcap") as w:
            w.add_metadata("provenance", {...})
            w.write_joint_state("/left_follower/joint_states", stamp, now, names, pos)
            w.flush_to_disk()          # about once a second
        # leaving normally finishes; an exception aborts and keeps the .partial

    Args:
        path: final file name; must end in ``.mcap`` and must not exist yet, and neither may
            ``<path>.partial`` (a leftover from a crash: recover it first).
        chunk_size: uncompressed bytes after which a chunk is closed, 1–4 MiB.
        compression: chunk compression, ``"zstd"`` (default), ``"lz4"`` or ``"none"``.
        tap: optional :data:`MessageTap` given every message written.

    Raises:
        ValueError: bad ``path`` suffix or ``chunk_size``.
        EpisodeWriteError: the file or its ``.partial`` already exists, or cannot be created.
    """

    def __init__(
        self,
        path: Path,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compression: Literal["zstd", "lz4", "none"] = "zstd",
        tap: MessageTap | None = None,
    ):
        path = Path(path)
        if path.suffix != ".mcap":
            raise ValueError(f"{path}: an episode file name must end in .mcap")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be 1-4 MiB, got {chunk_size} bytes")
        if compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(_COMPRESSION)}")
        self._path = path
        self._partial = partial_path_for(path)
        if path.exists():
            raise EpisodeWriteError(f"{path}: already exists; closed episodes are never rewritten")
        try:
            # "x": never truncate a .partial left by a crash; it may be the only copy.
            self._file: IO[bytes] = open(self._partial, "xb")  # noqa: SIM115 - owned until finish/abort
        except FileExistsError:
            raise EpisodeWriteError(
                f"{self._partial}: exists (left by an interrupted recording); "
                f"run `teleop recover {self._partial}` or move it away"
            ) from None
        except OSError as exc:
            raise EpisodeWriteError(f"{self._partial}: cannot create: {exc.strerror}") from exc

        self._mcap = episode_mcap_writer(self._file, chunk_size, _COMPRESSION[compression])
        self._state = WriterState.OPEN
        self._tap = tap
        self._schema_ids: dict[str, int] = {}
        self._channels: dict[str, _Channel] = {}
        self._payload_bytes = 0
        self._final_size = 0
        try:
            self._mcap.start(
                profile=PROFILE, library=f"teleop/{_TELEOP_VERSION}; {MCAP_LIBRARY_IDENTIFIER}"
            )
            # Make the new directory entry and the header durable now: a power cut in the
            # first second should still leave a recognisable (empty) .partial, not nothing.
            self._sync_file()
            fsync_dir(self._partial.parent)
        except BaseException:
            self._close_file_quietly()
            self._state = WriterState.ABORTED
            raise

    # -- properties -----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The final ``.mcap`` name (exists only after :meth:`finish`)."""
        return self._path

    @property
    def partial_path(self) -> Path:
        """The ``.partial`` name written while the episode is open."""
        return self._partial

    @property
    def state(self) -> WriterState:
        """OPEN, FINISHED or ABORTED."""
        return self._state

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages written per topic (a copy)."""
        return {topic: ch.count for topic, ch in self._channels.items()}

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the file so far (see :attr:`WriterStats.file_bytes`)."""
        if self._state is not WriterState.OPEN:
            return self._final_size
        return self._file.tell()

    def stats(self) -> WriterStats:
        """Counters so far. Call it from the owning thread (it reads mutable state)."""
        return WriterStats(
            message_counts=self.message_counts,
            payload_bytes=self._payload_bytes,
            file_bytes=self.bytes_written,
        )

    # -- records outside the message stream -----------------------------------------------

    def add_metadata(self, name: str, values: Mapping[str, str]) -> None:
        """Add an MCAP Metadata record (e.g. ``provenance`` at start, ``quality`` at end).

        The record is fsynced before this returns, so provenance survives a crash.

        Raises:
            TypeError: a key or value is not a str (MCAP metadata maps str to str).
        """
        self._require_open()
        if not isinstance(name, str):
            raise TypeError(f"metadata name must be a str, got {name!r}")
        for key, value in values.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"metadata {name!r}: {key!r} -> {value!r}: keys and values must be str "
                    "(encode nested values as JSON)"
                )
        self._mcap.add_metadata(name, dict(values))
        self._sync_file()

    def add_attachment(
        self,
        name: str,
        media_type: str,
        data: bytes,
        log_time_ns: int,
        *,
        create_time_ns: int = 0,
    ) -> None:
        """Add an MCAP Attachment (rig spec, calibration record, …).

        ``create_time_ns`` is when the attached content was created, 0 if unknown.
        """
        self._require_open()
        self._mcap.add_attachment(
            create_time=_ns(create_time_ns, "create_time_ns"),
            log_time=_ns(log_time_ns, "log_time_ns"),
            name=name,
            media_type=media_type,
            data=bytes(data),
        )

    # -- messages ---------------------------------------------------------------------------

    def declare_topic(self, topic: str, type_name: str) -> None:
        """Register ``topic`` with message type ``type_name`` before its first message.

        Optional: writing registers topics too. Declaring them up front makes a topic that
        never receives a message (a dead camera) show up in the summary with count 0.

        Raises:
            KeyError: ``type_name`` is not a recorded type (see ``schemas``).
            ValueError: ``topic`` is already registered with another type.
        """
        self._require_open()
        self._channel(topic, type_name)

    def write_joint_state(
        self,
        topic: str,
        stamp_ns: int,
        log_time_ns: int,
        names: Sequence[str],
        position: cdr.FloatArray | None,
        velocity: cdr.FloatArray | None = None,
        effort: cdr.FloatArray | None = None,
        *,
        frame_id: str = "",
    ) -> None:
        """Write a ``sensor_msgs/msg/JointState``.

        ``position``, ``velocity``, ``effort`` are 1-D numpy float arrays or sequences of
        floats, each either empty/None or as long as ``names`` (rad, rad/s, effort unit).
        """
        self._write(
            topic,
            JOINT_STATE,
            log_time_ns,
            stamp_ns,
            cdr.encode_joint_state(stamp_ns, frame_id, names, position, velocity, effort),
        )

    def write_compressed_image(
        self,
        topic: str,
        stamp_ns: int,
        log_time_ns: int,
        frame_id: str,
        fmt: str,
        data: cdr.Buffer,
        *,
        sequence: int | None = None,
    ) -> None:
        """Write a ``sensor_msgs/msg/CompressedImage``.

        ``sequence`` (the camera's own frame number) becomes the MCAP message sequence, so a
        reader can see device-side frame gaps; by default the channel's running count.

        ``fmt`` is ``schemas.JPEG_FORMAT`` ("jpeg") for colour and
        ``schemas.DEPTH_PNG_FORMAT`` ("16UC1; png compressed") for 16-bit depth PNG.
        ``data`` is any contiguous bytes-like object (bytes, or the uint8 array from
        ``cv2.imencode``).
        """
        self._write(
            topic,
            COMPRESSED_IMAGE,
            log_time_ns,
            stamp_ns,
            cdr.encode_compressed_image(stamp_ns, frame_id, fmt, data),
            sequence,
        )

    def write_camera_info(
        self,
        topic: str,
        stamp_ns: int,
        log_time_ns: int,
        frame_id: str,
        width: int,
        height: int,
        k: cdr.FloatArray | Sequence[Sequence[float]],
        d: cdr.FloatArray = (),
        distortion_model: str = "plumb_bob",
        p: cdr.FloatArray | Sequence[Sequence[float]] | None = None,
        r: cdr.FloatArray | Sequence[Sequence[float]] | None = None,
        *,
        sequence: int | None = None,
    ) -> None:
        """Write a ``sensor_msgs/msg/CameraInfo`` (``sequence`` as for images).

        ``k`` is the 3x3 intrinsic matrix (nested, flat 9, or a numpy array), ``d`` the
        distortion coefficients for ``distortion_model``, ``p`` the 3x4 projection matrix
        (default ``[K | 0]``), ``r`` the 3x3 rectification matrix (default identity).
        """
        k_flat = cdr.flatten_matrix(k)
        if p is None:
            kk = list(k_flat)
            if len(kk) != 9:
                raise cdr.CdrEncodeError(f"k needs exactly 9 values, got {len(kk)}")
            p = [*kk[0:3], 0.0, *kk[3:6], 0.0, *kk[6:9], 0.0]
        if r is None:
            r = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        self._write(
            topic,
            CAMERA_INFO,
            log_time_ns,
            stamp_ns,
            cdr.encode_camera_info(
                stamp_ns, frame_id, width, height, k_flat, d, distortion_model, p, r
            ),
            sequence,
        )

    def write_diagnostics(
        self,
        topic: str,
        stamp_ns: int,
        log_time_ns: int,
        statuses: Sequence[cdr.DiagnosticStatus],
        *,
        frame_id: str = "",
    ) -> None:
        """Write a ``diagnostic_msgs/msg/DiagnosticArray``.

        Each status is a :class:`~teleop.episode.cdr.DiagnosticStatus`: level 0 OK, 1 WARN,
        2 ERROR, 3 STALE (``schemas.DiagnosticLevel``); values a str→str mapping.
        """
        self._write(
            topic,
            DIAGNOSTIC_ARRAY,
            log_time_ns,
            stamp_ns,
            cdr.encode_diagnostic_array(stamp_ns, frame_id, statuses),
        )

    def write_event(
        self, stamp_ns: int, log_time_ns: int, kind: str, detail: str = "", *, frame_id: str = ""
    ) -> None:
        """Write a ``teleop_msgs/msg/EpisodeEvent`` on ``/episode/events``.

        ``kind`` names what happened (start, stop, mark, fault, …); ``detail`` is free text.
        """
        self._write(
            EVENTS_TOPIC,
            EPISODE_EVENT,
            log_time_ns,
            stamp_ns,
            cdr.encode_episode_event(stamp_ns, frame_id, kind, detail),
        )

    # -- durability and lifecycle -------------------------------------------------------

    def flush_to_disk(self) -> None:
        """Close the chunk in progress, write it and its indexes, flush and fsync the file.

        Afterwards every message written so far is in a complete chunk on stable storage.
        Call it about once a second. Each call ends a chunk, so calling it much more often
        costs compression ratio and index size.
        """
        self._require_open()
        # Public mcap API: finalizes the open chunk (if it holds messages), writes it with
        # its message indexes, and flushes the Python buffer. Records registered but not yet
        # followed by a message stay buffered; they are useless without messages anyway.
        self._mcap.flush()
        self._sync_file()

    def finish(self) -> Path:
        """Write the summary, fsync, and rename ``.partial`` to the final ``.mcap`` name.

        Returns:
            The final path.

        Raises:
            EpisodeWriteError: the writer is not open, or the final name appeared meanwhile
                (the ``.partial`` is then kept, complete, for a person to sort out).
            OSError: writing failed; the ``.partial`` is kept for ``teleop recover``.
        """
        self._require_open()
        try:
            self._mcap.finish()
            self._sync_file()
            self._final_size = self._file.tell()
            self._file.close()
        except BaseException:
            self._close_file_quietly()
            self._state = WriterState.ABORTED
            raise
        # Checked again here: os.rename silently replaces an existing file on POSIX, and a
        # closed episode must never be overwritten.
        if self._path.exists():
            self._state = WriterState.ABORTED
            raise EpisodeWriteError(
                f"{self._path}: appeared while recording; the complete episode is kept as "
                f"{self._partial}"
            )
        try:
            os.rename(self._partial, self._path)
        except OSError:
            self._state = WriterState.ABORTED  # the complete file stays as .partial
            raise
        self._state = WriterState.FINISHED
        fsync_dir(self._path.parent)
        log.info("episode written: %s (%d bytes)", self._path, self._final_size)
        return self._path

    def abort(self) -> Path:
        """Stop without a summary and keep ``<path>.partial`` for ``teleop recover``.

        Writes out the chunk in progress first (best effort: if the disk is what failed, that
        may fail too, and is only logged). Safe to call more than once, and after a failed
        :meth:`finish`.

        Returns:
            The ``.partial`` path.
        """
        if self._state is not WriterState.OPEN:
            return self._partial
        self._state = WriterState.ABORTED
        try:
            self._mcap.flush()
            self._sync_file()
        except Exception as exc:
            # The caller reports the failure that led here; this detail is for --debug.
            log.debug("%s: could not write the last chunk on abort: %s", self._partial, exc)
        self._final_size = self._tell_quietly()
        self._close_file_quietly()
        log.info("episode aborted; partial file kept: %s", self._partial)
        return self._partial

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    # -- internals --------------------------------------------------------------------------

    def _write(
        self,
        topic: str,
        type_name: str,
        log_time_ns: int,
        publish_time_ns: int,
        data: bytes | bytearray,
        sequence: int | None = None,
    ) -> None:
        if self._state is not WriterState.OPEN:
            self._require_open()
        ch = self._channels.get(topic)
        if ch is None or ch.type_name != type_name:
            ch = self._channel(topic, type_name)
        log_time_ns = _ns(log_time_ns, "log_time_ns")
        publish_time_ns = _ns(publish_time_ns, "stamp_ns")
        # MCAP sequence is uint32 per channel; it lets a reader spot gaps without timestamps.
        ch.sequence = (ch.sequence + 1 if sequence is None else int(sequence)) & 0xFFFFFFFF
        self._mcap.add_message(
            channel_id=ch.id,
            log_time=log_time_ns,
            data=data,  # type: ignore[arg-type]  # mcap takes any bytes-like; no copy
            publish_time=publish_time_ns,
            sequence=ch.sequence,
        )
        ch.count += 1
        self._payload_bytes += len(data)
        if self._tap is not None:
            self._tap(topic, type_name, log_time_ns, data)

    def _channel(self, topic: str, type_name: str) -> _Channel:
        ch = self._channels.get(topic)
        if ch is not None:
            if ch.type_name != type_name:
                raise ValueError(
                    f"topic {topic!r} already carries {ch.type_name}, cannot write {type_name}"
                )
            return ch
        schema_id = self._schema_ids.get(type_name)
        if schema_id is None:
            schema_id = self._mcap.register_schema(
                name=type_name,
                encoding=SCHEMA_ENCODING,
                data=message_definition(type_name).encode(),
            )
            self._schema_ids[type_name] = schema_id
        channel_id = self._mcap.register_channel(
            topic=topic, message_encoding=MESSAGE_ENCODING, schema_id=schema_id, metadata={}
        )
        ch = self._channels[topic] = _Channel(channel_id, type_name)
        return ch

    def _require_open(self) -> None:
        if self._state is not WriterState.OPEN:
            raise EpisodeWriteError(f"{self._partial}: writer is {self._state.value}, not open")

    def _sync_file(self) -> None:
        self._file.flush()
        _fdatasync(self._file.fileno())

    def _tell_quietly(self) -> int:
        try:
            return self._file.tell()
        except (OSError, ValueError):
            return 0

    def _close_file_quietly(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            log.debug("%s: close failed: %s", self._partial, exc)
