"""Read one MCAP chunk and split it into messages, straight from the bytes.

mcap's own ``breakup_chunk`` builds a Python record object through a small stream class for
every message; on a replay seek that parsing cost more than decompressing the chunk. The
layouts below are the MCAP spec's (Chunk record, Message record; little-endian).
"""

from __future__ import annotations

import struct
import zlib
from typing import IO

import lz4.frame
import zstandard
from mcap.exceptions import McapError
from mcap.opcode import Opcode

_RECORD = struct.Struct("<BQ")  # opcode, record length
# Chunk: message_start_time, message_end_time, uncompressed_size, uncompressed_crc
_CHUNK_HEAD = struct.Struct("<QQQI")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# Message: channel_id, sequence, log_time, publish_time, then the data to the record's end.
_MESSAGE_HEAD = struct.Struct("<HIQQ")

ChunkMessage = tuple[int, int, memoryview]
"""(channel id, log_time ns, message data)."""


def read_chunk(f: IO[bytes], offset: int, length: int) -> list[ChunkMessage]:
    """Read the Chunk record at ``offset`` (``length`` bytes, opcode included), check its
    CRC, decompress it and return its messages in file order.

    Raises:
        McapError: not a chunk, a bad CRC, or records that run past the chunk.
        zstandard.ZstdError, RuntimeError (lz4), struct.error: damaged compressed data.
    """
    f.seek(offset)
    raw = f.read(length)
    if len(raw) != length:
        raise McapError(f"chunk at {offset} is cut short ({len(raw)} of {length} bytes)")
    opcode, _ = _RECORD.unpack_from(raw, 0)
    if opcode != Opcode.CHUNK:
        raise McapError(f"chunk index points at opcode {opcode:#x}, not a chunk")
    pos = _RECORD.size
    _, _, uncompressed_size, crc = _CHUNK_HEAD.unpack_from(raw, pos)
    pos += _CHUNK_HEAD.size
    (name_len,) = _U32.unpack_from(raw, pos)
    compression = raw[pos + 4 : pos + 4 + name_len].decode("utf-8")
    pos += 4 + name_len
    (records_len,) = _U64.unpack_from(raw, pos)
    pos += 8
    compressed = memoryview(raw)[pos : pos + records_len]
    if compression == "zstd":
        data = zstandard.ZstdDecompressor().decompress(
            compressed, max_output_size=uncompressed_size
        )
    elif compression == "lz4":
        data = lz4.frame.decompress(compressed)
    elif compression == "":
        data = bytes(compressed)
    else:
        raise McapError(f"unsupported chunk compression {compression!r}")
    if len(data) != uncompressed_size:
        raise McapError(f"chunk decompressed to {len(data)} bytes, expected {uncompressed_size}")
    if crc and zlib.crc32(data) != crc:
        raise McapError("chunk CRC mismatch")
    return _messages(memoryview(data))


def _messages(view: memoryview) -> list[ChunkMessage]:
    out: list[ChunkMessage] = []
    pos, end = 0, len(view)
    message = Opcode.MESSAGE
    while pos < end:
        opcode, length = _RECORD.unpack_from(view, pos)
        body = pos + _RECORD.size
        pos = body + length
        if pos > end:
            raise McapError("a record runs past the end of its chunk")
        if opcode == message:
            channel_id, _, log_time, _ = _MESSAGE_HEAD.unpack_from(view, body)
            out.append((channel_id, log_time, view[body + _MESSAGE_HEAD.size : pos]))
    return out
