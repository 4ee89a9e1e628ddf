"""``teleop recover``: rebuild a complete, indexed episode from a truncated one.

A crash (kill -9, power loss, a full disk) leaves ``episode_NNNN.mcap.partial``: a valid
MCAP prefix whose last record may be cut off and which has no summary. The episode writer
closes a chunk and fsyncs about once a second, so every complete chunk on disk is intact.
Recovery streams the prefix record by record, keeps every schema, channel, message, metadata
record and attachment up to the first damaged record, and writes them into a new file with
all indexes, plus a ``recovery`` metadata record saying what happened. The input is never
modified.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from mcap.exceptions import McapError
from mcap.records import Attachment, Channel, Chunk, Header, Message, Metadata, Schema
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk
from mcap.writer import CompressionType, IndexType
from mcap.writer import Writer as McapWriter

from teleop import __version__
from teleop.errors import TeleopError

try:  # zstandard errors are not McapErrors; a chunk cut inside its compressed data raises them
    from zstandard import ZstdError
except ImportError:  # pragma: no cover - zstandard comes with mcap's zstd support
    ZstdError = ValueError  # type: ignore[assignment,misc]

PARTIAL_SUFFIX = ".partial"
_DAMAGE = (McapError, struct.error, EOFError, ValueError, ZstdError, CRCValidationError)


class RecoveryError(TeleopError):
    """The file cannot be recovered (not MCAP at all, or the output already exists)."""


@dataclass(frozen=True)
class RecoveryReport:
    source: Path
    output: Path
    messages: int
    chunks_kept: int
    chunks_damaged: int
    metadata: tuple[str, ...]
    attachments: tuple[str, ...]
    first_log_time_ns: int | None
    last_log_time_ns: int | None
    stopped_at: str  # why reading ended: "end of file", or the damage found

    @property
    def duration_s(self) -> float:
        if self.first_log_time_ns is None or self.last_log_time_ns is None:
            return 0.0
        return (self.last_log_time_ns - self.first_log_time_ns) / 1e9


def default_output(source: Path) -> Path:
    """``x.mcap.partial`` → ``x.mcap``; anything else → ``x.recovered.mcap``."""
    name = source.name
    if name.endswith(".mcap" + PARTIAL_SUFFIX):
        return source.with_name(name.removesuffix(PARTIAL_SUFFIX))
    return source.with_name(name.removesuffix(".mcap") + ".recovered.mcap")


def recover(source: Path, output: Path | None = None) -> RecoveryReport:
    """Write everything readable from ``source`` into ``output`` (default: see default_output)."""
    source = Path(source)
    output = Path(output) if output is not None else default_output(source)
    if not source.is_file():
        raise RecoveryError(f"{source}: no such file")
    if output.exists():
        raise RecoveryError(f"{output} already exists; pass another output path or move it aside")
    tmp = output.with_name(f".{output.name}.recovering")
    with open(source, "rb") as f:
        magic = f.read(8)
    if magic != b"\x89MCAP0\r\n":
        raise RecoveryError(f"{source}: not an MCAP file (bad magic); nothing to recover")

    schemas: dict[int, int] = {}  # old schema id -> new
    channels: dict[int, int] = {}
    pending_channels: dict[int, Channel] = {}
    metadata_names: list[str] = []
    attachment_names: list[str] = []
    messages = kept = damaged = 0
    first = last = None
    stopped_at = "end of file"
    with open(source, "rb") as f, open(tmp, "wb") as out:
        writer = McapWriter(
            out,
            chunk_size=4 * 1024 * 1024,
            compression=CompressionType.ZSTD,
            index_types=IndexType.ALL,
            use_chunking=True,
            use_statistics=True,
            use_summary_offsets=True,
            enable_crcs=True,
        )
        started = False

        def start(profile: str, library: str) -> None:
            nonlocal started
            if not started:
                writer.start(
                    profile=profile, library=f"{library} (recovered by teleop {__version__})"
                )
                started = True

        def handle(rec: object) -> None:
            nonlocal messages, first, last
            if isinstance(rec, Schema):
                start("ros2", "unknown")
                schemas[rec.id] = writer.register_schema(rec.name, rec.encoding, rec.data)
            elif isinstance(rec, Channel):
                pending_channels[rec.id] = rec
            elif isinstance(rec, Message):
                ch = channels.get(rec.channel_id)
                if ch is None:
                    c = pending_channels.get(rec.channel_id)
                    if c is None:
                        return  # a message whose channel record was lost: cannot be decoded
                    ch = writer.register_channel(
                        c.topic, c.message_encoding, schemas.get(c.schema_id, 0), c.metadata
                    )
                    channels[rec.channel_id] = ch
                writer.add_message(ch, rec.log_time, rec.data, rec.publish_time, rec.sequence)
                messages += 1
                first = rec.log_time if first is None else min(first, rec.log_time)
                last = rec.log_time if last is None else max(last, rec.log_time)
            elif isinstance(rec, Metadata):
                start("ros2", "unknown")
                writer.add_metadata(rec.name, rec.metadata)
                metadata_names.append(rec.name)
            elif isinstance(rec, Attachment):
                start("ros2", "unknown")
                writer.add_attachment(
                    rec.create_time, rec.log_time, rec.name, rec.media_type, rec.data
                )
                attachment_names.append(rec.name)

        reader = StreamReader(f, emit_chunks=True, record_size_limit=1 << 30)
        try:
            for rec in reader.records:
                if isinstance(rec, Header):
                    start(rec.profile, rec.library)
                elif isinstance(rec, Chunk):
                    try:
                        inner = breakup_chunk(rec, validate_crc=True)
                    except _DAMAGE as exc:
                        damaged += 1
                        stopped_at = f"damaged chunk ({type(exc).__name__})"
                        continue
                    kept += 1
                    for r in inner:
                        handle(r)
                else:
                    handle(rec)
        except _DAMAGE as exc:
            stopped_at = f"truncated or damaged record at the end ({type(exc).__name__})"
        start("ros2", "unknown")
        writer.add_metadata(
            "recovery",
            {
                "recovered_from": source.name,
                "recovered_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "software_version": __version__,
                "messages": str(messages),
                "chunks_kept": str(kept),
                "chunks_damaged": str(damaged),
                "stopped_at": stopped_at,
            },
        )
        writer.finish()
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, output)
    dir_fd = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return RecoveryReport(
        source, output, messages, kept, damaged, tuple(metadata_names), tuple(attachment_names),
        first, last, stopped_at,
    )  # fmt: skip
