"""The virtual servo chain: first on its own with a simulated clock (physics, firmware rules),
then through the real dynamixel_sdk against a launched VirtualRig, as the app's driver uses it.
"""

from __future__ import annotations

import os
import signal
import struct
import time
from collections.abc import Iterator
from multiprocessing import shared_memory

import dynamixel_sdk as sdk
import numpy as np
import pytest

from rigs.dynamixel import control_table as ct
from rigs.dynamixel import protocol as p
from rigs.spec import load_rig
from rigs.virtual.launcher import VirtualRig
from rigs.virtual.servo import VirtualServo
from rigs.virtual.servo_chain import VirtualChain, chain_from_arm

SPEC = load_rig("sim-bimanual").spec
FOLLOWER_IDS = [j.id for j in SPEC.arm("left_follower").joints]  # primaries: 1 2 4 6 7 8 9
ALL_IDS = sorted(FOLLOWER_IDS + [3, 5])


# --- the chain on its own, with a simulated clock ------------------------------------------


class SimBus:
    """A chain driven with explicit times, so physics is checked without sleeping."""

    def __init__(self, chain: VirtualChain, t: float = 1000.0) -> None:
        self.chain = chain
        self.t = t

    def advance(self, seconds: float, step_s: float = 0.002) -> None:
        end = self.t + seconds
        while self.t < end - 1e-12:
            self.t = min(end, self.t + step_s)
            self.chain.step(self.t)

    def send(self, dxl_id: int, instruction: int, params: bytes = b"") -> list[p.Packet]:
        out = self.chain.handle(p.build_instruction(dxl_id, instruction, params), self.t)
        return p.PacketParser().feed(out)

    def write(self, dxl_id: int, address: int, fmt: str, value: int) -> int:
        (status,) = self.send(dxl_id, p.WRITE, struct.pack("<H" + fmt, address, value))
        return status.error

    def read(self, dxl_id: int, address: int, fmt: str) -> tuple[int, int]:
        (status,) = self.send(dxl_id, p.READ, struct.pack("<HH", address, struct.calcsize(fmt)))
        return status.error, struct.unpack("<" + fmt, status.data)[0]


def follower_bus(t: float = 1000.0) -> SimBus:
    return SimBus(chain_from_arm(SPEC.arm("left_follower"), now=t), t)


def test_followers_track_goal_with_lag_and_a_speed_limit():
    bus = follower_bus()
    assert bus.write(1, ct.TORQUE_ENABLE, "B", 1) == 0
    # A small step is a first-order lag: about 63 % after one time constant.
    assert bus.write(1, ct.GOAL_POSITION, "i", 2048 + 40) == 0
    servo = bus.chain.servo(1)
    bus.advance(servo.time_constant_s)
    assert 20 <= bus.read(1, ct.PRESENT_POSITION, "i")[1] - 2048 <= 30
    bus.advance(0.5)
    assert bus.read(1, ct.PRESENT_POSITION, "i")[1] == 2048 + 40
    # A big step is capped by the motor's speed (XM540-W270: about 30 rpm).
    assert bus.write(1, ct.GOAL_POSITION, "i", 2048 + 40 + 1500) == 0
    bus.advance(0.2)
    _, moved = bus.read(1, ct.PRESENT_POSITION, "i")
    _, velocity = bus.read(1, ct.PRESENT_VELOCITY, "i")
    vmax_ticks = 128 * ct.VELOCITY_UNIT_RPM * 4096 / 60
    assert 0 < moved - 2088 <= vmax_ticks * 0.2 + 1
    assert 0 < velocity <= 128
    assert bus.read(1, ct.MOVING, "B")[1] == 1
    assert bus.read(1, ct.PRESENT_CURRENT, "h")[1] > 0  # pulling towards the goal
    bus.advance(2.0)
    assert bus.read(1, ct.PRESENT_POSITION, "i")[1] == 2048 + 1540
    assert bus.read(1, ct.MOVING, "B")[1] == 0


def test_torque_off_does_not_drive():
    bus = follower_bus()
    assert bus.write(2, ct.GOAL_POSITION, "i", 3000) == 0
    bus.advance(1.0)
    assert bus.read(2, ct.PRESENT_POSITION, "i")[1] == 2048


def test_shadow_mirrors_its_primary_and_hears_its_id():
    bus = follower_bus()
    # Torque on for id 2 also reaches its shadow 3 (Secondary ID = 2), which stays silent.
    replies = bus.send(2, p.WRITE, struct.pack("<HB", ct.TORQUE_ENABLE, 1))
    assert [r.id for r in replies] == [2]
    assert bus.read(3, ct.TORQUE_ENABLE, "B")[1] == 1
    assert bus.read(3, ct.SECONDARY_ID, "B")[1] == 2
    bus.write(2, ct.GOAL_POSITION, "i", 2300)
    bus.advance(1.0)
    assert (
        bus.read(3, ct.PRESENT_POSITION, "i")[1] == bus.read(2, ct.PRESENT_POSITION, "i")[1] == 2300
    )


def test_gripper_closing_on_an_object_stalls_at_the_current_limit():
    bus = follower_bus()
    gripper = bus.chain.servo(9)  # XM430-W350
    assert bus.write(9, ct.OPERATING_MODE, "B", int(ct.OperatingMode.CURRENT_BASED_POSITION)) == 0
    assert bus.write(9, ct.CURRENT_LIMIT, "H", 300) == 0
    assert bus.write(9, ct.TORQUE_ENABLE, "B", 1) == 0
    gripper.block_below_rad = 0.2
    bus.write(9, ct.GOAL_POSITION, "i", ct.rad_to_ticks(0.6))
    bus.advance(1.0)
    bus.write(9, ct.GOAL_POSITION, "i", ct.rad_to_ticks(-0.4))  # squeeze hard
    bus.advance(5.0)
    _, pos = bus.read(9, ct.PRESENT_POSITION, "i")
    _, current = bus.read(9, ct.PRESENT_CURRENT, "h")
    assert abs(ct.ticks_to_rad(pos) - 0.2) < 0.01  # the object stops it
    assert -300 <= current <= -250  # pressing with all the current it is allowed
    assert bus.read(9, ct.HARDWARE_ERROR_STATUS, "B")[1] == 0  # mode 5 does not overload
    gripper.block_below_rad = None  # object taken away: it closes
    bus.advance(1.0)
    assert abs(ct.ticks_to_rad(bus.read(9, ct.PRESENT_POSITION, "i")[1]) + 0.4) < 0.01


def test_stalling_in_position_mode_overloads_and_drops_torque():
    bus = follower_bus()
    bus.chain.servo(9).block_below_rad = 0.2
    bus.write(9, ct.TORQUE_ENABLE, "B", 1)
    bus.write(9, ct.GOAL_POSITION, "i", ct.rad_to_ticks(-0.4))
    bus.advance(4.0)
    (status,) = bus.send(9, p.READ, struct.pack("<HH", ct.HARDWARE_ERROR_STATUS, 1))
    assert status.error == p.ERR_ALERT
    assert status.data[0] == ct.HardwareError.OVERLOAD
    assert bus.read(9, ct.TORQUE_ENABLE, "B")[1] == 0


def test_firmware_access_rules():
    bus = follower_bus()
    assert bus.write(1, ct.PRESENT_POSITION, "i", 5) == p.ERR_ACCESS  # read-only
    assert bus.write(1, ct.MODEL_NUMBER, "H", 5) == p.ERR_ACCESS
    assert bus.write(1, ct.TORQUE_ENABLE, "B", 2) == p.ERR_DATA_RANGE
    assert bus.write(1, ct.GOAL_POSITION, "i", 5000) == p.ERR_DATA_LIMIT  # beyond Max Position
    assert bus.write(1, ct.OPERATING_MODE, "B", 2) == p.ERR_DATA_RANGE
    assert bus.write(1, ct.CURRENT_LIMIT, "H", 300) == 0
    # Torque on locks the EEPROM, and the value stays as it was.
    assert bus.write(1, ct.TORQUE_ENABLE, "B", 1) == 0
    assert bus.write(1, ct.CURRENT_LIMIT, "H", 200) == p.ERR_ACCESS
    assert bus.read(1, ct.CURRENT_LIMIT, "H") == (0, 300)
    # An XL430 has no current sensor, so no current-based position mode.
    leader = SimBus(chain_from_arm(SPEC.arm("left_leader")))
    assert (
        leader.write(9, ct.OPERATING_MODE, "B", int(ct.OperatingMode.CURRENT_BASED_POSITION))
        == p.ERR_DATA_RANGE
    )
    (status,) = leader.send(9, 0x77)  # unknown instruction
    assert status.error == p.ERR_INSTRUCTION
    (status,) = leader.send(9, p.READ, b"\x84\x00")  # too short
    assert status.error == p.ERR_DATA_LENGTH


def test_reg_write_waits_for_action_and_status_return_level_is_honoured():
    bus = follower_bus()
    (status,) = bus.send(4, p.REG_WRITE, struct.pack("<HB", ct.LED, 1))
    assert status.error == 0
    assert bus.read(4, ct.REGISTERED_INSTRUCTION, "B")[1] == 1
    assert bus.read(4, ct.LED, "B")[1] == 0
    assert bus.send(p.BROADCAST_ID, p.ACTION) == []  # a broadcast gets no reply
    assert bus.read(4, ct.LED, "B")[1] == 1
    # Status return level 1: reads are answered, writes are not.
    bus.send(4, p.WRITE, struct.pack("<HB", ct.STATUS_RETURN_LEVEL, 1))
    assert bus.send(4, p.WRITE, struct.pack("<HB", ct.LED, 0)) == []
    assert bus.read(4, ct.LED, "B") == (0, 0)


def test_changing_an_id_takes_effect_at_once():
    bus = follower_bus()
    assert bus.write(6, ct.ID, "B", 20) == 0
    assert bus.send(6, p.PING) == []
    (status,) = bus.send(20, p.PING)
    assert struct.unpack("<HB", status.data) == (1120, 52)


def test_bus_watchdog_stops_a_servo_when_the_host_goes_quiet():
    bus = follower_bus()
    bus.write(1, ct.TORQUE_ENABLE, "B", 1)
    bus.write(1, 98, "b", 5)  # 5 x 20 ms
    bus.write(1, ct.GOAL_POSITION, "i", 3000)
    bus.advance(0.3)  # no packets for 300 ms
    assert bus.read(1, 98, "b")[1] == -1
    _, present = bus.read(1, ct.PRESENT_POSITION, "i")
    assert present < 3000 and bus.read(1, ct.GOAL_POSITION, "i")[1] == present
    assert bus.write(1, ct.GOAL_POSITION, "i", 2500) == p.ERR_DATA_RANGE
    assert bus.write(1, 98, "b", 0) == 0  # clearing the watchdog accepts goals again
    assert bus.write(1, ct.GOAL_POSITION, "i", 2500) == 0


def test_bulk_write_and_partial_packets_and_garbage():
    bus = follower_bus()
    params = struct.pack("<BHHB", 1, ct.LED, 1, 1) + struct.pack(
        "<BHHi", 2, ct.GOAL_POSITION, 4, 2100
    )
    assert bus.send(p.BROADCAST_ID, p.BULK_WRITE, params) == []
    assert bus.read(1, ct.LED, "B")[1] == 1
    assert bus.read(2, ct.GOAL_POSITION, "i")[1] == 2100
    # Noise before a packet, and a packet split in two, are both handled.
    ping = p.build_instruction(1, p.PING)
    assert bus.chain.handle(b"\x00\xff\x17" + ping[:6], bus.t) == b""
    (status,) = p.PacketParser().feed(bus.chain.handle(ping[6:], bus.t))
    assert status.id == 1
    # A packet whose second half never comes is dropped, as the firmware times it out.
    assert bus.chain.handle(ping[:6], bus.t) == b""
    bus.t += 1.0
    (status,) = p.PacketParser().feed(bus.chain.handle(ping, bus.t))
    assert status.id == 1


def test_leader_follows_its_external_source():
    bus = SimBus(chain_from_arm(SPEC.arm("left_leader"), now=1000.0))
    angles = np.linspace(-0.3, 0.3, 7)
    bus.chain.set_external_source(
        [j.id for j in SPEC.arm("left_leader").joints], lambda now: angles
    )
    bus.advance(0.01)
    reply = bus.send(p.BROADCAST_ID, p.SYNC_READ, struct.pack("<HH", 132, 4) + bytes(ALL_IDS))
    got = {r.id: ct.ticks_to_rad(struct.unpack("<i", r.data)[0]) for r in reply}
    assert np.allclose([got[i] for i in FOLLOWER_IDS], angles, atol=ct.RAD_PER_TICK)
    assert got[3] == got[2] and got[5] == got[4]  # shadows
    assert bus.read(1, ct.TORQUE_ENABLE, "B")[1] == 0


def test_servo_defaults_look_like_an_x_series_servo():
    s = VirtualServo(7, "XM430-W350", now=0.0)
    table = s.table
    assert struct.unpack_from("<H", table, ct.MODEL_NUMBER)[0] == 1020
    assert table[ct.FIRMWARE_VERSION] == 52
    assert table[ct.ID] == 7 and table[ct.BAUD_RATE] == 3  # 1 Mbps
    assert table[ct.OPERATING_MODE] == ct.OperatingMode.POSITION
    assert struct.unpack_from("<H", table, ct.CURRENT_LIMIT)[0] == 1193
    assert struct.unpack_from("<i", table, ct.MAX_POSITION_LIMIT)[0] == 4095
    assert table[ct.TORQUE_ENABLE] == 0 and table[ct.STATUS_RETURN_LEVEL] == 2
    assert struct.unpack_from("<H", table, ct.PRESENT_INPUT_VOLTAGE)[0] == 120
    assert 25 <= table[ct.PRESENT_TEMPERATURE] <= 40


# --- through dynamixel_sdk against the served rig ------------------------------------------


class Port(sdk.PortHandler):
    """A 1 ms-latency adapter's timeout, plus slack so a busy test machine does not flake."""

    slack_ms = 100.0

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 (SDK name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * packet_length + self.slack_ms


PH = sdk.PacketHandler(2.0)


@pytest.fixture(scope="module")
def rig() -> Iterator[VirtualRig]:
    with VirtualRig(SPEC, seed=3, mounting="ideal") as r:
        yield r


@pytest.fixture(scope="module")
def ports(rig: VirtualRig) -> Iterator[dict[str, Port]]:
    opened = {}
    for name, path in rig.ports.items():
        port = Port(path)
        assert port.openPort()
        opened[name] = port
    yield opened
    for port in opened.values():
        port.closePort()


def ok(result: int, error: int = 0) -> None:
    assert result == sdk.COMM_SUCCESS, PH.getTxRxResult(result)
    assert error & 0x7F == 0, PH.getRxPacketError(error)


def sync_read_state(port: Port, ids: list[int]) -> dict[int, tuple[int, int, int]]:
    reader = sdk.GroupSyncRead(port, PH, ct.STATE_BLOCK_START, ct.STATE_BLOCK_LENGTH)
    for i in ids:
        reader.addParam(i)
    ok(reader.txRxPacket())
    return {i: struct.unpack("<hii", bytes(reader.data_dict[i])) for i in ids}


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_ping_reports_models_firmware_and_shadows(rig: VirtualRig, ports: dict[str, Port]):
    model, result, error = PH.ping(ports["left_follower"], 1)
    ok(result, error)
    assert model == ct.MODELS["XM540-W270"].number
    model, result, error = PH.ping(ports["left_leader"], 9)
    ok(result, error)
    assert model == ct.MODELS["XL430-W250"].number
    found, result = PH.broadcastPing(ports["right_follower"])
    ok(result)
    assert sorted(found) == ALL_IDS
    assert found[9] == [ct.MODELS["XM430-W350"].number, 52]
    _, result, _ = PH.ping(ports["left_follower"], 42)  # nobody has id 42
    assert result == sdk.COMM_RX_TIMEOUT


def test_read_write_and_eeprom_lock(rig: VirtualRig, ports: dict[str, Port]):
    port = ports["right_leader"]
    ok(*PH.write1ByteTxRx(port, 6, ct.LED, 1))
    value, result, error = PH.read1ByteTxRx(port, 6, ct.LED)
    ok(result, error)
    assert value == 1
    # Homing offset -1 then moving threshold 253 puts FF FF FD in the table: the status
    # packet is stuffed and the SDK must unstuff it.
    ok(*PH.write4ByteTxRx(port, 6, ct.HOMING_OFFSET, 0xFFFFFFFF))
    ok(*PH.write4ByteTxRx(port, 6, ct.MOVING_THRESHOLD, 253))
    data, result, error = PH.readTxRx(port, 6, ct.HOMING_OFFSET, 8)
    ok(result, error)
    assert struct.unpack("<iI", bytes(data)) == (-1, 253)
    ok(*PH.write4ByteTxRx(port, 6, ct.HOMING_OFFSET, 0))
    ok(*PH.write4ByteTxRx(port, 6, ct.MOVING_THRESHOLD, 10))

    ok(*PH.write1ByteTxRx(port, 6, ct.TORQUE_ENABLE, 1))
    result, error = PH.write1ByteTxRx(
        port, 6, ct.OPERATING_MODE, int(ct.OperatingMode.EXTENDED_POSITION)
    )
    assert result == sdk.COMM_SUCCESS and error == p.ERR_ACCESS  # EEPROM locked
    assert PH.read1ByteTxRx(port, 6, ct.OPERATING_MODE)[0] == ct.OperatingMode.POSITION
    ok(*PH.write1ByteTxRx(port, 6, ct.TORQUE_ENABLE, 0))
    ok(*PH.write1ByteTxRx(port, 6, ct.OPERATING_MODE, int(ct.OperatingMode.EXTENDED_POSITION)))
    ok(*PH.write1ByteTxRx(port, 6, ct.OPERATING_MODE, int(ct.OperatingMode.POSITION)))
    ok(*PH.write1ByteTxRx(port, 6, ct.LED, 0))


def test_sync_read_of_the_state_block_matches_the_world(rig: VirtualRig, ports: dict[str, Port]):
    assert rig.world is not None
    state = sync_read_state(ports["left_leader"], FOLLOWER_IDS)
    truth = rig.world.read("left_leader")
    positions = np.array([ct.ticks_to_rad(state[i][2]) for i in FOLLOWER_IDS])
    # The operator moves the leader by hand (< 2 rad/s); the read and the world sample are
    # a few milliseconds apart.
    assert np.allclose(positions, truth, atol=0.05)
    for i in FOLLOWER_IDS:
        current, velocity, _ = state[i]
        assert abs(velocity) < 2.0 / ct.RAD_S_PER_VELOCITY_UNIT
        assert abs(current) < 50  # torque off: no drive current
    # The leader moves over time (the scripted operator is at work).
    first = positions
    assert wait_for(
        lambda: (
            np.abs(
                np.array(
                    [
                        ct.ticks_to_rad(v[2])
                        for v in sync_read_state(ports["left_leader"], FOLLOWER_IDS).values()
                    ]
                )
                - first
            ).max()
            > 0.05
        )
    )


def test_fast_sync_read_and_bulk_read(rig: VirtualRig, ports: dict[str, Port]):
    port = ports["right_follower"]
    reader = sdk.GroupSyncRead(port, PH, ct.PRESENT_POSITION, 4)
    for i in FOLLOWER_IDS:
        reader.addParam(i)
    ok(reader.fastSyncRead())
    fast = {i: reader.getData(i, ct.PRESENT_POSITION, 4) for i in FOLLOWER_IDS}
    slow = {i: v[2] for i, v in sync_read_state(port, FOLLOWER_IDS).items()}
    assert fast == slow  # torque off: nothing moves

    bulk = sdk.GroupBulkRead(port, PH)
    assert bulk.addParam(1, ct.PRESENT_POSITION, 4)
    assert bulk.addParam(9, ct.MODEL_NUMBER, 2)
    assert bulk.addParam(5, ct.SECONDARY_ID, 1)
    ok(bulk.txRxPacket())
    assert bulk.getData(1, ct.PRESENT_POSITION, 4) == slow[1]
    assert bulk.getData(9, ct.MODEL_NUMBER, 2) == ct.MODELS["XM430-W350"].number
    assert bulk.getData(5, ct.SECONDARY_ID, 1) == 4
    ok(bulk.fastBulkRead())
    assert bulk.getData(1, ct.PRESENT_POSITION, 4) == slow[1]
    assert bulk.getData(9, ct.MODEL_NUMBER, 2) == ct.MODELS["XM430-W350"].number


def test_sync_write_moves_the_follower_to_the_goal(rig: VirtualRig, ports: dict[str, Port]):
    port = ports["left_follower"]
    start = sync_read_state(port, FOLLOWER_IDS)
    for i in ALL_IDS:
        ok(*PH.write1ByteTxRx(port, i, ct.TORQUE_ENABLE, 1))
    goals = {i: start[i][2] + (150 if k % 2 else -150) for k, i in enumerate(FOLLOWER_IDS)}
    writer = sdk.GroupSyncWrite(port, PH, ct.GOAL_POSITION, 4)
    for i, g in goals.items():
        writer.addParam(i, list(struct.pack("<i", g)))
    ok(writer.txPacket())

    def arrived() -> bool:
        state = sync_read_state(port, FOLLOWER_IDS)
        return all(abs(state[i][2] - goals[i]) <= 1 for i in FOLLOWER_IDS)

    assert wait_for(arrived)
    # The world truth the cameras draw agrees, and the shadows moved with their primaries.
    assert rig.world is not None
    truth = rig.world.read("left_follower")
    assert np.allclose(
        truth, [ct.ticks_to_rad(goals[i]) for i in FOLLOWER_IDS], atol=2 * ct.RAD_PER_TICK
    )
    assert (
        PH.read4ByteTxRx(port, 3, ct.PRESENT_POSITION)[0]
        == PH.read4ByteTxRx(port, 2, ct.PRESENT_POSITION)[0]
    )
    for i in ALL_IDS:
        ok(*PH.write1ByteTxRx(port, i, ct.TORQUE_ENABLE, 0))
    writes = rig.torque_writes("left_follower")
    assert [w.value for w in writes[1][-2:]] == [1, 0]
    assert writes[1][-1].t_ns <= time.monotonic_ns()  # same clock as the app's
    # Shadow 3 heard both its own id and its primary's (Secondary ID).
    assert [w.value for w in writes[3][-4:]] == [1, 1, 0, 0]


def test_hardware_error_alert_and_reboot(rig: VirtualRig, ports: dict[str, Port]):
    port = ports["right_follower"]
    ok(*PH.write1ByteTxRx(port, 7, ct.TORQUE_ENABLE, 1))
    rig.inject_hardware_error("right_follower", 7, ct.HardwareError.OVERHEATING)
    value, result, error = PH.read1ByteTxRx(port, 7, ct.HARDWARE_ERROR_STATUS)
    assert result == sdk.COMM_SUCCESS
    assert error & p.ERR_ALERT and value == ct.HardwareError.OVERHEATING
    assert PH.read1ByteTxRx(port, 7, ct.TORQUE_ENABLE)[0] == 0  # shut down
    # Torque cannot come back until a reboot.
    PH.write1ByteTxRx(port, 7, ct.TORQUE_ENABLE, 1)
    assert PH.read1ByteTxRx(port, 7, ct.TORQUE_ENABLE)[0] == 0
    # Other motors' status packets carry no alert.
    assert PH.read1ByteTxRx(port, 6, ct.TORQUE_ENABLE)[2] == 0

    result, error = PH.reboot(port, 7)
    assert result == sdk.COMM_SUCCESS
    assert wait_for(lambda: PH.ping(port, 7)[1] == sdk.COMM_SUCCESS)
    value, result, error = PH.read1ByteTxRx(port, 7, ct.HARDWARE_ERROR_STATUS)
    ok(result, error)
    assert value == 0 and error == 0
    ok(*PH.write1ByteTxRx(port, 7, ct.TORQUE_ENABLE, 1))
    assert PH.read1ByteTxRx(port, 7, ct.TORQUE_ENABLE)[0] == 1
    ok(*PH.write1ByteTxRx(port, 7, ct.TORQUE_ENABLE, 0))


def test_silent_motor_and_silent_bus_time_out(rig: VirtualRig, ports: dict[str, Port]):
    port = ports["right_leader"]
    rig.inject_motor_silent("right_leader", 4)
    try:
        assert PH.ping(port, 4)[1] == sdk.COMM_RX_TIMEOUT
        reader = sdk.GroupSyncRead(port, PH, ct.STATE_BLOCK_START, ct.STATE_BLOCK_LENGTH)
        for i in FOLLOWER_IDS:
            reader.addParam(i)
        assert reader.txRxPacket() != sdk.COMM_SUCCESS
        ok(*PH.ping(port, 6)[1:])  # the others still answer
    finally:
        rig.inject_motor_silent("right_leader", 4, silent=False)
    sync_read_state(port, FOLLOWER_IDS)

    rig.inject_bus_silent("right_leader")
    try:
        assert PH.ping(port, 1)[1] == sdk.COMM_RX_TIMEOUT
    finally:
        rig.clear_faults("right_leader")
    ok(*PH.ping(port, 1)[1:])


def test_latency_delays_replies(rig: VirtualRig, ports: dict[str, Port]):
    port = ports["left_leader"]
    rig.inject_latency("left_leader", 0.4)  # longer than the port's timeout
    try:
        assert PH.ping(port, 1)[1] == sdk.COMM_RX_TIMEOUT
        # The late reply does land (0.4 s on; later on a loaded machine), before the next
        # request clears the port.
        deadline = time.monotonic() + 30
        while port.ser.in_waiting == 0:
            assert time.monotonic() < deadline, "the delayed reply never came"
            time.sleep(0.01)
        patient = Port(rig.ports["left_leader"])
        patient.slack_ms = 2000.0
        patient.ser = port.ser  # same open port, longer timeout
        patient.is_open = True
        patient.tx_time_per_byte = port.tx_time_per_byte
        ok(*PH.ping(patient, 1)[1:])
    finally:
        rig.inject_latency("left_leader", 0.0)
    ok(*PH.ping(port, 1)[1:])


def test_a_client_may_close_and_reopen_the_port(rig: VirtualRig):
    for _ in range(2):
        port = Port(rig.ports["right_follower"])
        assert port.openPort()
        ok(*PH.ping(port, 2)[1:])
        port.closePort()
    assert rig.is_alive


def test_close_cleans_up_even_after_the_process_died():
    rig = VirtualRig(SPEC, seed=0, mounting="ideal").start()
    name, pid, path = rig.world_name, rig.pid, rig.ports["left_leader"]
    assert pid is not None and os.path.exists(path)
    os.kill(pid, signal.SIGKILL)  # the process we started dies
    assert wait_for(lambda: not rig.is_alive)
    rig.close()
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)
    assert not os.path.exists(path)
    rig.close()  # idempotent
