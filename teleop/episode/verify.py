"""Is every byte of an episode as it was written? The file's own checksums say.

The writer records a CRC-32 of the whole data section (in DataEnd) and of each chunk's
uncompressed records (in the chunk). :func:`verify_episode` first compares the data-section
CRC, one sequential read with no decompression (a 20 s four-camera episode in well under a
second); only when that fails does it decompress chunk by chunk to say which chunk, and which
stretch of the recording, is damaged. Replay onto a robot, the catalog and every export call
it before they trust a file.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from mcap.records import Chunk
from mcap.stream_reader import StreamReader, breakup_chunk

from teleop.episode.reader import _DAMAGE, EpisodeReadError, _checked_reader, _open, _why

_FOOTER = struct.Struct("<BQQQI")  # opcode, length, summary_start, summary_offset_start, crc
_DATA_END = struct.Struct("<BQI")  # opcode, length, data_section_crc
_MAGIC = 8
_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Damage:
    """Where an episode file no longer matches its own checksums."""

    where: str
    """e.g. ``chunk 3 of 12 (2.0-2.5 s into the recording)``."""
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.why}"


def file_sha256(path: Path) -> str:
    """The sha256 of the file's bytes, as ``sha256sum`` prints it (session.json records it
    for every kept episode; bundles and imports compare against it)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def _data_section_crc(path: Path) -> tuple[int, int] | None:
    """(recorded CRC, data section length) from DataEnd; None when no CRC was recorded."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(size - _MAGIC - _FOOTER.size)
        _, _, summary_start, _, _ = _FOOTER.unpack(f.read(_FOOTER.size))
        end = summary_start if summary_start else size - _MAGIC - _FOOTER.size
        data_end = end - _DATA_END.size
        f.seek(data_end)
        opcode, _, crc = _DATA_END.unpack(f.read(_DATA_END.size))
    if opcode != 0x0F or crc == 0:
        return None
    return crc, data_end


def _crc_of_prefix(path: Path, length: int) -> int:
    crc = 0
    with open(path, "rb") as f:
        left = length
        while left:
            block = f.read(min(_BLOCK, left))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            left -= len(block)
    return crc


def _damaged_chunk(path: Path) -> Damage | None:
    """Decompress every chunk and check its CRC; the first damaged one."""
    with _open(path) as f:
        _, summary = _checked_reader(path, f)
        chunks = sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset)
        start = min((c.message_start_time for c in chunks), default=0)
        for k, index in enumerate(chunks, 1):
            where = (
                f"chunk {k} of {len(chunks)} ({(index.message_start_time - start) / 1e9:.1f}-"
                f"{(index.message_end_time - start) / 1e9:.1f} s into the recording)"
            )
            try:
                f.seek(index.chunk_start_offset)
                reader = StreamReader(f, skip_magic=True, emit_chunks=True, validate_crcs=True)
                record = next(reader.records)
                if not isinstance(record, Chunk):
                    return Damage(where, "the chunk index points at another record")
                breakup_chunk(record, validate_crc=True)
            except (*_DAMAGE, StopIteration) as exc:
                return Damage(where, _why(exc))
    return None


def verify_episode(path: Path) -> Damage | None:
    """None if the episode matches its checksums, else where and how it does not.

    Raises:
        EpisodeReadError: the file is not a complete episode at all (no summary: recover it).
    """
    path = Path(path)
    with _open(path) as f:
        _checked_reader(path, f)  # complete, indexed, a readable summary
    try:
        recorded = _data_section_crc(path)
    except (OSError, struct.error) as exc:
        raise EpisodeReadError(path, f"unreadable footer ({exc})") from exc
    if recorded is not None:
        crc, length = recorded
        if _crc_of_prefix(path, length) == crc:
            return None
    damage = _damaged_chunk(path)
    if damage is None and recorded is not None:
        return Damage("the data section", "its CRC does not match (outside the chunks)")
    return damage
