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

import struct
import time
from dataclasses import dataclass
from pathlib import Path

from mcap.exceptions import McapError
from mcap.records import Chunk
from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk

from teleop import __version__
from teleop.episode.rewrite import EpisodeCopier, new_episode_file
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
    with open(source, "rb") as f:
        magic = f.read(8)
    if magic != b"\x89MCAP0\r\n":
        raise RecoveryError(f"{source}: not an MCAP file (bad magic); nothing to recover")

    kept = damaged = 0
    stopped_at = "end of file"
    with open(source, "rb") as f, new_episode_file(output) as out:
        copy = EpisodeCopier(out, f"recovered by teleop {__version__}")
        reader = StreamReader(f, emit_chunks=True, record_size_limit=1 << 30)
        try:
            for rec in reader.records:
                if isinstance(rec, Chunk):
                    try:
                        inner = breakup_chunk(rec, validate_crc=True)
                    except _DAMAGE as exc:
                        damaged += 1
                        stopped_at = f"damaged chunk ({type(exc).__name__})"
                        continue
                    kept += 1
                    for r in inner:
                        copy.add(r)
                else:
                    copy.add(rec)
        except _DAMAGE as exc:
            stopped_at = f"truncated or damaged record at the end ({type(exc).__name__})"
        copy.finish(
            "recovery",
            {
                "recovered_from": source.name,
                "recovered_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "software_version": __version__,
                "messages": str(copy.messages),
                "chunks_kept": str(kept),
                "chunks_damaged": str(damaged),
                "stopped_at": stopped_at,
            },
        )
    first, last = copy.first_log_time_ns, copy.last_log_time_ns
    messages, metadata_names, attachment_names = (
        copy.messages, copy.metadata_names, copy.attachment_names,
    )  # fmt: skip
    return RecoveryReport(
        source, output, messages, kept, damaged, tuple(metadata_names), tuple(attachment_names),
        first, last, stopped_at,
    )  # fmt: skip
