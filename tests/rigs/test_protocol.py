"""Protocol 2.0 codec: CRC and packets as the e-Manual and dynamixel_sdk have them, stuffing,
and a stream parser that survives garbage."""

from __future__ import annotations

import struct

import dynamixel_sdk as sdk
import pytest

from rigs.dynamixel import protocol as p

# Examples from the ROBOTIS e-Manual, Protocol 2.0 page.
PING_ID1 = bytes.fromhex("FF FF FD 00 01 03 00 01 19 4E")
READ_ID1_POSITION = bytes.fromhex("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")
PING_STATUS_XM430_W210 = bytes.fromhex("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D")


def test_crc_and_packets_match_the_emanual_examples():
    assert p.crc16(PING_ID1[:-2]) == 0x4E19
    assert p.build_instruction(1, p.PING) == PING_ID1
    assert p.build_instruction(1, p.READ, struct.pack("<HH", 132, 4)) == READ_ID1_POSITION
    status = p.parse_packet(PING_STATUS_XM430_W210)
    assert status.is_status and status.id == 1 and status.error == 0
    model, firmware = struct.unpack("<HB", status.data)
    assert (model, firmware) == (1030, 38)
    assert p.build_status(1, 0, status.data) == PING_STATUS_XM430_W210


def test_crc_agrees_with_the_sdk_on_every_byte_value():
    data = bytes(range(256)) * 3
    assert p.crc16(data) == sdk.Protocol2PacketHandler().updateCRC(0, list(data), len(data))
    # A running CRC continues where the previous chunk ended.
    assert p.crc16(data[300:], p.crc16(data[:300])) == p.crc16(data)


class _CapturePort:
    """Just enough of a PortHandler for the SDK to put one packet on the 'wire'."""

    def __init__(self) -> None:
        self.is_using = False
        self.sent = b""

    def clearPort(self) -> None:  # noqa: N802 (SDK name)
        pass

    def writePort(self, packet: list[int]) -> int:  # noqa: N802 (SDK name)
        self.sent = bytes(packet)
        return len(packet)

    def setPacketTimeout(self, length: int) -> None:  # noqa: N802 (SDK name)
        pass


def test_sdk_instruction_packets_are_byte_identical_to_ours():
    port = _CapturePort()
    ph = sdk.PacketHandler(2.0)
    ph.write4ByteTxOnly(port, 7, 116, 2048)
    assert port.sent == p.build_instruction(7, p.WRITE, struct.pack("<Hi", 116, 2048))
    ph.syncReadTx(port, 126, 10, [1, 2, 4], 3, False)
    assert port.sent == p.build_instruction(
        p.BROADCAST_ID, p.SYNC_READ, struct.pack("<HH", 126, 10) + bytes([1, 2, 4])
    )


def test_unstuffed_sdk_packets_still_parse():
    # dynamixel_sdk 4.1.0 (Python) never stuffs what it sends: addStuffing's longer packet is
    # dropped. Servos read the packet by its length, and so does our parser.
    port = _CapturePort()
    value = 0xFDFFFF00
    sdk.PacketHandler(2.0).write4ByteTxOnly(port, 7, 116, value)
    assert b"\xff\xff\xfd\x92" in port.sent  # FF FF FD inside the data, not stuffed
    (packet,) = p.PacketParser().feed(port.sent)
    assert packet.params == struct.pack("<HI", 116, value)
    # What a correct sender puts on the wire is stuffed, and parses to the same thing.
    ours = p.build_instruction(7, p.WRITE, struct.pack("<HI", 116, value))
    assert b"\xff\xff\xfd\xfd" in ours
    assert p.parse_packet(ours) == packet


@pytest.mark.parametrize(
    "field",
    [
        b"",
        b"\xff\xff\xfd",
        b"\xff\xff\xfd\xfd",
        b"\x01\xff\xff\xfd\x00\xff\xff\xfd\xff\xff\xfd",
        bytes(range(256)),
    ],
)
def test_stuffing_round_trips(field: bytes):
    stuffed = p.stuff(field)
    assert p.unstuff(stuffed) == field
    # After stuffing every FF FF FD is followed by FD, so no header can appear in the field.
    i = stuffed.find(b"\xff\xff\xfd")
    while i >= 0:
        assert stuffed[i + 3 : i + 4] == b"\xfd"
        i = stuffed.find(b"\xff\xff\xfd", i + 4)
    packet = p.build_status(3, p.ERR_ALERT, field)
    back = p.parse_packet(packet)
    assert (back.id, back.error, back.data) == (3, p.ERR_ALERT, field)


def test_parse_packet_rejects_corruption():
    bad = bytearray(PING_ID1)
    bad[-3] ^= 0x01
    with pytest.raises(p.ProtocolError):
        p.parse_packet(bytes(bad))
    with pytest.raises(p.ProtocolError):
        p.parse_packet(PING_ID1[:-1])


def test_parser_finds_packets_in_garbage_and_split_chunks():
    a = p.build_instruction(1, p.READ, struct.pack("<HH", 132, 4))
    b = p.build_status(2, 0, b"\xff\xff\xfd\x10")
    corrupt = bytearray(p.build_instruction(5, p.PING))
    corrupt[-1] ^= 0xFF
    # A false header whose length field is absurd, a corrupt packet, noise, then real packets.
    stream = (
        b"\x00\x13\xff\xff\xfd\x00\x09\xff\xff" + bytes(corrupt) + b"\xfe\xff" + a + b"\xff" + b
    )
    parser = p.PacketParser()
    got = []
    for i in range(len(stream)):  # one byte at a time: the worst case for a parser
        got += parser.feed(stream[i : i + 1])
    assert [(x.id, x.instruction) for x in got] == [(1, p.READ), (2, p.STATUS)]
    assert got[1].data == b"\xff\xff\xfd\x10"
    assert parser.crc_errors == 1
    assert parser.pending == 0

    # The same stream in one chunk gives the same packets.
    assert [x.params for x in p.PacketParser().feed(stream)] == [x.params for x in got]


def test_parser_keeps_a_partial_packet_until_it_completes():
    packet = p.build_instruction(4, p.WRITE, struct.pack("<HB", 64, 1))
    parser = p.PacketParser()
    assert parser.feed(packet[:5]) == []
    assert parser.pending == 5
    (done,) = parser.feed(packet[5:] + packet[:2])
    assert (done.id, done.params) == (4, struct.pack("<HB", 64, 1))
    assert parser.pending == 2  # the start of the next header is kept
    parser.reset()
    assert parser.pending == 0


def test_fast_status_is_what_the_sdk_expects():
    packet = p.build_fast_status(
        [(1, 0, b"\x01\x02\x03\x04"), (2, p.ERR_ALERT, b"\x05\x06\x07\x08")]
    )
    whole = p.parse_packet(packet)  # the last CRC covers the whole packet
    assert whole.id == p.BROADCAST_ID and whole.instruction == p.STATUS
    # Each device: error, id, data, crc.
    assert whole.params[:6] == b"\x00\x01\x01\x02\x03\x04"
    assert whole.params[8:14] == b"\x80\x02\x05\x06\x07\x08"


def test_describe_error():
    assert p.describe_error(0) == "ok"
    assert p.describe_error(p.ERR_ACCESS | p.ERR_ALERT) == "access error + hardware alert"
