"""Read episode files: a cheap summary from the indexes, and decoded messages.

:func:`summarize` reads only the header, the summary section, the metadata records and two
small message-index records per topic; it never decompresses a chunk, so it is fast on
multi-gigabyte episodes. :func:`iter_messages` decodes with ``mcap_ros2`` from the schemas
embedded in the file.

Anything that is not a complete episode file (truncated, no summary, not MCAP at all) raises
:class:`EpisodeReadError` with a one-line message naming the file and the fix.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import SeekingReader
from mcap.records import Attachment, ChunkIndex, MessageIndex
from mcap.stream_reader import StreamReader
from mcap.summary import Summary
from mcap_ros2.decoder import DecoderFactory
from zstandard import ZstdError

from teleop.episode.schemas import legacy_definition
from teleop.errors import TeleopError

_MAGIC = b"\x89MCAP0\r\n"
# Errors the mcap reader raises on damaged input besides McapError: short reads surface as
# struct.error, bad lengths as ValueError/MemoryError, bad UTF-8 as UnicodeDecodeError.
# OSError/OverflowError come from seeking to a corrupted offset.
_DAMAGE = (
    McapError,
    struct.error,
    ValueError,
    UnicodeDecodeError,
    EOFError,
    MemoryError,
    OverflowError,
    IndexError,
    KeyError,
    OSError,
    ZstdError,  # a damaged zstd chunk fails to decompress before its CRC can be checked
)
# Footer record: opcode u8, record length u64 (=20), summary_start u64,
# summary_offset_start u64, summary_crc u32; then the closing magic.
_FOOTER = struct.Struct("<BQQQI")


class EpisodeReadError(TeleopError):
    """The file is not a complete, readable episode. The message is one line with the fix."""

    def __init__(self, path: Path, reason: str, *, recoverable: bool = True):
        self.path = path
        # One line, always: the CLI prints it as is, and some mcap errors span lines.
        self.reason = reason = " ".join(reason.split())
        hint = f"; run `teleop recover {path}`" if recoverable else ""
        super().__init__(f"{path}: {reason}{hint}")


@dataclass(frozen=True)
class TopicSummary:
    """One topic (MCAP channel) of an episode."""

    topic: str
    message_type: str
    """ROS type, e.g. ``sensor_msgs/msg/JointState``."""
    message_count: int
    first_log_time_ns: int | None
    """log_time of the topic's first message (None when it has none)."""
    last_log_time_ns: int | None

    @property
    def rate_hz(self) -> float | None:
        """Mean message rate between the topic's first and last message, if it has two."""
        if self.first_log_time_ns is None or self.last_log_time_ns is None:
            return None
        span_ns = self.last_log_time_ns - self.first_log_time_ns
        if self.message_count < 2 or span_ns <= 0:
            return None
        return (self.message_count - 1) * 1e9 / span_ns


@dataclass(frozen=True)
class AttachmentInfo:
    """An attachment's index entry (the data itself is read by :func:`read_attachment`)."""

    name: str
    media_type: str
    size_bytes: int
    log_time_ns: int
    create_time_ns: int


@dataclass(frozen=True)
class EpisodeSummary:
    """What an episode file holds, from its summary section and indexes."""

    path: Path
    profile: str
    library: str
    file_size_bytes: int
    message_count: int
    start_ns: int
    """Earliest message log_time (UTC ns); 0 when there are no messages."""
    end_ns: int
    """Latest message log_time (UTC ns); 0 when there are no messages."""
    topics: dict[str, TopicSummary]
    """By topic name, sorted."""
    metadata: dict[str, dict[str, str]]
    """Metadata records by name (``provenance``, ``quality``, …). If a name repeats, the
    last record wins."""
    attachments: tuple[AttachmentInfo, ...]
    chunk_count: int
    compression: tuple[str, ...]
    """Distinct chunk compressions used (``("zstd",)`` normally)."""
    schemas: dict[str, str] = field(repr=False)
    """Message type → the ``ros2msg`` definition embedded in the file."""

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last message log_time."""
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def attachment_names(self) -> list[str]:
        """Names of all attachments, in file order."""
        return [a.name for a in self.attachments]

    @property
    def legacy_schemas(self) -> list[str]:
        """Message types whose definitions are in the form teleop 0.1 wrote (``MSG:
        pkg/msg/Name`` blocks), which Foxglove cannot parse: ``teleop repair`` fixes them."""
        return sorted(name for name, text in self.schemas.items() if legacy_definition(text))


@dataclass(frozen=True)
class EpisodeMessage:
    """One decoded message."""

    topic: str
    message_type: str
    log_time_ns: int
    publish_time_ns: int
    sequence: int
    message: Any
    """The decoded ROS message (``mcap_ros2`` object: attributes named as in the .msg)."""


def summarize(path: Path) -> EpisodeSummary:
    """Summarize an episode from its summary section and indexes (no chunk is read).

    Raises:
        EpisodeReadError: the file is missing, not MCAP, truncated, or has no summary.
    """
    path = Path(path)
    with _open(path) as f:
        reader, summary = _checked_reader(path, f)
        try:
            header = reader.get_header()
            stats = summary.statistics
            assert stats is not None  # _checked_reader guarantees it
            bounds = _channel_time_bounds(f, summary.chunk_indexes)
            topics: dict[str, TopicSummary] = {}
            for channel in sorted(summary.channels.values(), key=lambda c: c.topic):
                schema = summary.schemas.get(channel.schema_id)
                first, last = bounds.get(channel.id, (None, None))
                topics[channel.topic] = TopicSummary(
                    topic=channel.topic,
                    message_type=schema.name if schema else "",
                    message_count=stats.channel_message_counts.get(channel.id, 0),
                    first_log_time_ns=first,
                    last_log_time_ns=last,
                )
            metadata = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
        except _DAMAGE as exc:
            raise EpisodeReadError(path, f"damaged index or summary ({_why(exc)})") from exc
        attachments = tuple(
            AttachmentInfo(
                name=a.name,
                media_type=a.media_type,
                size_bytes=a.data_size,
                log_time_ns=a.log_time,
                create_time_ns=a.create_time,
            )
            for a in summary.attachment_indexes
        )
        return EpisodeSummary(
            path=path,
            profile=header.profile,
            library=header.library,
            file_size_bytes=path.stat().st_size,
            message_count=stats.message_count,
            start_ns=stats.message_start_time,
            end_ns=stats.message_end_time,
            topics=topics,
            metadata=metadata,
            attachments=attachments,
            chunk_count=len(summary.chunk_indexes),
            compression=tuple(sorted({c.compression for c in summary.chunk_indexes})),
            schemas={s.name: s.data.decode("utf-8", "replace") for s in summary.schemas.values()},
        )


def iter_messages(
    path: Path,
    topics: Iterable[str] | None = None,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> Generator[EpisodeMessage, None, None]:
    """Yield decoded messages in log_time order, optionally only some topics / a time range.

    ``start_ns`` is inclusive, ``end_ns`` exclusive (UTC ns, compared with log_time). The
    file is checked when this is called, so a bad file fails here, not at the first ``next``.

    Raises:
        EpisodeReadError: the file is not a complete episode, or a chunk is damaged.
    """
    path = Path(path)
    with _open(path) as f:
        _checked_reader(path, f)
    return _iter_messages(path, None if topics is None else list(topics), start_ns, end_ns)


def _iter_messages(
    path: Path, topics: list[str] | None, start_ns: int | None, end_ns: int | None
) -> Generator[EpisodeMessage, None, None]:
    with _open(path) as f:
        reader, _ = _checked_reader(path, f, decoder_factories=[DecoderFactory()])
        try:
            for schema, channel, message, decoded in reader.iter_decoded_messages(
                topics=topics,
                starting_at=start_ns,
                ending_before=end_ns,
                log_time_order=True,
            ):
                yield EpisodeMessage(
                    topic=channel.topic,
                    message_type=schema.name if schema else "",
                    log_time_ns=message.log_time,
                    publish_time_ns=message.publish_time,
                    sequence=message.sequence,
                    message=decoded,
                )
        except _DAMAGE as exc:
            raise EpisodeReadError(path, f"cannot read messages ({_why(exc)})") from exc


def read_attachment(path: Path, name: str) -> bytes:
    """Return the data of the first attachment called ``name``.

    Raises:
        KeyError: there is no such attachment.
        EpisodeReadError: the file is not a complete episode.
    """
    path = Path(path)
    with _open(path) as f:
        _, summary = _checked_reader(path, f)
        for index in summary.attachment_indexes:
            if index.name == name:
                try:
                    f.seek(index.offset)
                    record = next(StreamReader(f, skip_magic=True).records)
                except _DAMAGE as exc:
                    raise EpisodeReadError(
                        path, f"damaged attachment {name!r} ({_why(exc)})"
                    ) from exc
                if not isinstance(record, Attachment):
                    raise EpisodeReadError(path, f"attachment index of {name!r} points elsewhere")
                return bytes(record.data)
    raise KeyError(f"{path}: no attachment named {name!r}")


def open_checked(path: Path) -> tuple[IO[bytes], SeekingReader, Summary]:
    """Open ``path`` for random access after checking it is a complete, indexed episode.

    For readers that keep the file open and seek into it (replay): the summary, chunk
    indexes and message-index offsets come back, nothing else is read. The caller closes
    the returned file.

    Raises:
        EpisodeReadError: the file is missing, not MCAP, truncated, or has no summary.
    """
    path = Path(path)
    f = _open(path)
    try:
        reader, summary = _checked_reader(path, f)
    except BaseException:
        f.close()
        raise
    return f, reader, summary


# -- internals -------------------------------------------------------------------------------


def _open(path: Path) -> IO[bytes]:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise EpisodeReadError(path, "no such file", recoverable=False) from None
    except OSError as exc:
        raise EpisodeReadError(path, f"cannot open: {exc.strerror}", recoverable=False) from exc
    if stat.S_ISDIR(mode):
        raise EpisodeReadError(path, "is a directory, not an episode file", recoverable=False)
    if not stat.S_ISREG(mode):
        # A FIFO or a device would block or never end: only regular files are episodes.
        raise EpisodeReadError(path, "is not a regular file", recoverable=False)
    try:
        return open(path, "rb")  # noqa: SIM115 - returned to a with-statement
    except FileNotFoundError:
        raise EpisodeReadError(path, "no such file", recoverable=False) from None
    except IsADirectoryError:
        raise EpisodeReadError(
            path, "is a directory, not an episode file", recoverable=False
        ) from None
    except OSError as exc:
        raise EpisodeReadError(path, f"cannot open: {exc.strerror}", recoverable=False) from exc


def _checked_reader(
    path: Path, f: IO[bytes], decoder_factories: list[DecoderFactory] | None = None
) -> tuple[SeekingReader, Summary]:
    """A SeekingReader on ``f`` after checking the file is a complete, indexed MCAP.

    Checked up front because mcap's reader silently falls back to a linear scan when the
    summary is missing, which would hide a truncated file.
    """
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    if size == 0:
        raise EpisodeReadError(path, "is empty")
    if f.read(len(_MAGIC)) != _MAGIC:
        raise EpisodeReadError(path, "is not an MCAP file (bad magic)")
    f.seek(max(0, size - len(_MAGIC)))
    if size < 2 * len(_MAGIC) or f.read(len(_MAGIC)) != _MAGIC:
        raise EpisodeReadError(path, "is truncated (no footer: the recording did not finish)")
    _check_summary_crc(path, f, size)
    f.seek(0)
    try:
        # Every chunk's CRC is checked as it is read: a flipped bit is an error, never a
        # silently different message.
        reader = SeekingReader(f, validate_crcs=True, decoder_factories=decoder_factories or ())
        summary = reader.get_summary()
    except _DAMAGE as exc:
        raise EpisodeReadError(path, f"has a damaged footer or summary ({_why(exc)})") from exc
    if summary is None:
        raise EpisodeReadError(path, "has no summary section")
    if summary.statistics is None:
        raise EpisodeReadError(path, "has no statistics record in its summary")
    if summary.statistics.message_count and not summary.chunk_indexes:
        raise EpisodeReadError(path, "has no chunk indexes")
    return reader, summary


def _check_summary_crc(path: Path, f: IO[bytes], size: int) -> None:
    """Verify the footer's CRC over the summary section (mcap's reader does not).

    The summary is small (schemas, channels, statistics, one index entry per chunk), so
    reading it whole is cheap, and it catches corruption that would otherwise parse into
    wrong counts or offsets.
    """
    footer_start = size - len(_MAGIC) - _FOOTER.size
    if footer_start < len(_MAGIC):
        raise EpisodeReadError(path, "is truncated (too short for a footer)")
    f.seek(footer_start)
    opcode, length, summary_start, _, summary_crc = _FOOTER.unpack(f.read(_FOOTER.size))
    if opcode != Opcode.FOOTER or length != _FOOTER.size - 9:
        raise EpisodeReadError(path, "is truncated or damaged (no valid footer record)")
    if summary_start == 0:
        raise EpisodeReadError(path, "has no summary section")
    if not len(_MAGIC) <= summary_start <= footer_start:
        raise EpisodeReadError(path, "has a damaged footer (summary offset out of range)")
    if summary_crc == 0:  # the writer chose not to compute one
        return
    f.seek(summary_start)
    covered = f.read(footer_start - summary_start) + f.read(_FOOTER.size - 4)
    if zlib.crc32(covered) != summary_crc:
        raise EpisodeReadError(path, "has a damaged summary section (CRC mismatch)")


def _why(exc: BaseException) -> str:
    # Several mcap exceptions (EndOfFile) carry no message; the class name is the message.
    return str(exc) or type(exc).__name__


def _channel_time_bounds(
    f: IO[bytes], chunk_indexes: list[ChunkIndex]
) -> dict[int, tuple[int, int]]:
    """First and last log_time per channel id, from message indexes.

    Reads the message index of each channel's first and last chunk only (a few hundred bytes
    each), not the chunks themselves. Exact when a channel's log times do not go backwards
    across chunks, which holds for a recorder writing in arrival order.
    """
    first: dict[int, ChunkIndex] = {}
    last: dict[int, ChunkIndex] = {}
    for chunk in sorted(chunk_indexes, key=lambda c: c.chunk_start_offset):
        for channel_id in chunk.message_index_offsets:
            first.setdefault(channel_id, chunk)
            last[channel_id] = chunk
    bounds: dict[int, tuple[int, int]] = {}
    for channel_id, chunk in first.items():
        head = _message_index_times(f, chunk.message_index_offsets[channel_id])
        tail = (
            head
            if last[channel_id] is chunk
            else _message_index_times(f, last[channel_id].message_index_offsets[channel_id])
        )
        if head and tail:
            bounds[channel_id] = (min(head), max(tail))
    return bounds


def _message_index_times(f: IO[bytes], offset: int) -> list[int]:
    f.seek(offset)
    record = next(StreamReader(f, skip_magic=True).records)
    if not isinstance(record, MessageIndex):
        raise McapError(
            f"expected a message index at offset {offset}, found {type(record).__name__}"
        )
    return [log_time for log_time, _ in record.records]
