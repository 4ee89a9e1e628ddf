"""Dynamixel Protocol 2.0 packet codec: CRC, byte stuffing, building and parsing packets.

Pure functions and one stream parser, no I/O, so the virtual servo chain and any tool that
inspects bus traffic share one implementation. Packet layout (ROBOTIS e-Manual, Protocol 2.0)::

    FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAM... | CRC_L CRC_H

``LEN`` counts the instruction byte, the (stuffed) parameters and the two CRC bytes. A status
packet is an instruction packet whose instruction is ``STATUS`` (0x55) and whose first
parameter is the error byte. Byte stuffing inserts an extra ``FD`` after every ``FF FF FD``
inside the instruction+parameter field so the header cannot appear there; the CRC covers the
stuffed bytes from the first header byte up to the last parameter.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = b"\xff\xff\xfd\x00"
_STUFF_FROM = b"\xff\xff\xfd"
_STUFF_TO = b"\xff\xff\xfd\xfd"

BROADCAST_ID = 0xFE
MAX_ID = 0xFC  # 252, the largest id a device can have

# Instructions
PING = 0x01
READ = 0x02
WRITE = 0x03
REG_WRITE = 0x04
ACTION = 0x05
FACTORY_RESET = 0x06
REBOOT = 0x08
CLEAR = 0x10
STATUS = 0x55
SYNC_READ = 0x82
SYNC_WRITE = 0x83
FAST_SYNC_READ = 0x8A
BULK_READ = 0x92
BULK_WRITE = 0x93
FAST_BULK_READ = 0x9A

# Status error byte: a code in the low 7 bits, plus the alert bit when Hardware Error Status
# (register 70) is non-zero.
ERR_NONE = 0
ERR_RESULT_FAIL = 1
ERR_INSTRUCTION = 2
ERR_CRC = 3
ERR_DATA_RANGE = 4
ERR_DATA_LENGTH = 5
ERR_DATA_LIMIT = 6
ERR_ACCESS = 7
ERR_ALERT = 0x80

# The SDK refuses status packets longer than this (RXPACKET_MAX_LEN); a length field above it
# can only be garbage, so the parser treats it as a false header.
MAX_LENGTH_FIELD = 1024
_MIN_PACKET = 10  # header(4) id(1) len(2) inst(1) crc(2)

_ERROR_NAMES = {
    ERR_RESULT_FAIL: "result fail",
    ERR_INSTRUCTION: "instruction error",
    ERR_CRC: "CRC error",
    ERR_DATA_RANGE: "data range error",
    ERR_DATA_LENGTH: "data length error",
    ERR_DATA_LIMIT: "data limit error",
    ERR_ACCESS: "access error",
}


class ProtocolError(ValueError):
    """Bytes that are not a valid Protocol 2.0 packet (bad header, length or CRC)."""


def _make_crc_table() -> tuple[int, ...]:
    # CRC-16 with polynomial 0x8005 (x^16 + x^15 + x^2 + 1), MSB first, initial value 0.
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


CRC_TABLE: tuple[int, ...] = _make_crc_table()


def crc16(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-16 of ``data`` as Protocol 2.0 computes it; pass ``crc`` to continue a running CRC."""
    table = CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


def stuff(field: bytes) -> bytes:
    """Byte-stuff an instruction+parameter field: ``FF FF FD`` becomes ``FF FF FD FD``."""
    # The pattern cannot overlap itself, so a non-overlapping replace equals a byte scan.
    return field.replace(_STUFF_FROM, _STUFF_TO) if _STUFF_FROM in field else field


def unstuff(field: bytes) -> bytes:
    """Undo :func:`stuff`: ``FF FF FD FD`` becomes ``FF FF FD``."""
    return field.replace(_STUFF_TO, _STUFF_FROM) if _STUFF_TO in field else field


def _frame(dxl_id: int, body: bytes) -> bytes:
    """Header, id, length and CRC around an already stuffed instruction+parameter field."""
    head = HEADER + struct.pack("<BH", dxl_id, len(body) + 2) + body
    return head + crc16(head).to_bytes(2, "little")


def build_instruction(dxl_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A complete, stuffed and CRC-terminated instruction packet."""
    if not 0 <= dxl_id <= BROADCAST_ID:
        raise ValueError(f"Dynamixel id {dxl_id} out of range 0..254")
    return _frame(dxl_id, stuff(bytes((instruction,)) + bytes(params)))


def build_status(dxl_id: int, error: int = ERR_NONE, params: bytes = b"") -> bytes:
    """A complete status packet (instruction 0x55) carrying ``error`` and ``params``."""
    return _frame(dxl_id, stuff(bytes((STATUS, error)) + bytes(params)))


def build_fast_status(entries: Sequence[tuple[int, int, bytes]]) -> bytes:
    """The single status packet a Fast Sync/Bulk Read returns.

    ``entries`` are ``(id, error, data)`` in the order requested. The packet has id 0xFE, and
    after the instruction byte each device contributes ``error, id, data, crc``; every crc is
    the running CRC of the packet so far, so the last one is the CRC of the whole packet. Not
    byte-stuffed: dynamixel_sdk does not unstuff fast responses.
    """
    length = 1 + sum(len(data) + 4 for _, _, data in entries)  # inst + segments
    out = bytearray(HEADER)
    out += struct.pack("<BHB", BROADCAST_ID, length, STATUS)
    crc = crc16(out)
    for dxl_id, error, data in entries:
        seg = bytes((error, dxl_id)) + bytes(data)
        out += seg
        crc = crc16(seg, crc)
        out += crc.to_bytes(2, "little")
        # The next device continues the CRC over the bytes it saw, crc included.
        crc = crc16(out[-2:], crc)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded packet; ``params`` are already unstuffed.

    For a status packet (``instruction == STATUS``) use :attr:`error` and :attr:`data`.
    """

    id: int
    instruction: int
    params: bytes

    @property
    def is_status(self) -> bool:
        """Whether this is a status packet (a reply from a device)."""
        return self.instruction == STATUS

    @property
    def error(self) -> int:
        """Error byte of a status packet (0 for an instruction packet)."""
        return self.params[0] if self.is_status and self.params else 0

    @property
    def data(self) -> bytes:
        """Parameters of a status packet after the error byte."""
        return self.params[1:] if self.is_status else self.params


def parse_packet(raw: bytes) -> Packet:
    """Decode exactly one complete packet, checking header, length and CRC."""
    if len(raw) < _MIN_PACKET or raw[:4] != HEADER:
        raise ProtocolError(f"not a Protocol 2.0 packet: {raw[:8].hex(' ')}")
    length = raw[5] | (raw[6] << 8)
    if length < 3 or len(raw) != 7 + length:
        raise ProtocolError(f"length field {length} does not match {len(raw)} bytes")
    crc = raw[-2] | (raw[-1] << 8)
    if crc16(raw[:-2]) != crc:
        raise ProtocolError("CRC mismatch")
    field = unstuff(bytes(raw[7:-2]))
    return Packet(raw[4], field[0], field[1:])


def describe_error(error: int) -> str:
    """Human-readable text for a status error byte, e.g. ``access error + hardware alert``."""
    parts = []
    code = error & 0x7F
    if code:
        parts.append(_ERROR_NAMES.get(code, f"unknown error {code}"))
    if error & ERR_ALERT:
        parts.append("hardware alert")
    return " + ".join(parts) if parts else "ok"


class PacketParser:
    """Turns an arbitrary stream of byte chunks into complete, CRC-checked packets.

    Garbage between packets, false headers and packets with a bad CRC are skipped: after a
    failure the search restarts one byte past the rejected header, so a real packet that
    started inside the rejected bytes is still found. Counters say what was discarded.
    """

    def __init__(self, max_length_field: int = MAX_LENGTH_FIELD) -> None:
        self._buf = bytearray()
        self._max_len = max_length_field
        self.crc_errors = 0
        self.discarded_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a packet."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial packet (a servo does this when a packet times out)."""
        self.discarded_bytes += len(self._buf)
        self._buf.clear()

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Packet]:
        """Add bytes; return every packet completed by them, in order."""
        buf = self._buf
        buf += chunk
        out: list[Packet] = []
        while True:
            start = buf.find(HEADER)
            if start < 0:
                # Keep a tail that may be the beginning of a header split across chunks.
                keep = 0
                for k in (3, 2, 1):
                    if len(buf) >= k and buf[-k:] == HEADER[:k]:
                        keep = k
                        break
                self.discarded_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return out
            if start:
                self.discarded_bytes += start
                del buf[:start]
            if len(buf) < 7:
                return out
            length = buf[5] | (buf[6] << 8)
            if length < 3 or length > self._max_len:
                self._skip_header()
                continue
            total = 7 + length
            if len(buf) < total:
                return out
            crc = buf[total - 2] | (buf[total - 1] << 8)
            if crc16(buf[: total - 2]) != crc:
                self.crc_errors += 1
                self._skip_header()
                continue
            field = unstuff(bytes(buf[7 : total - 2]))
            out.append(Packet(buf[4], field[0], field[1:]))
            del buf[:total]

    def _skip_header(self) -> None:
        self.discarded_bytes += 1
        del self._buf[:1]
