"""One Dynamixel bus (one serial adapter) driven through the official ``dynamixel_sdk``.

The control loop owns each bus: one thread, one sync read and at most one sync write per
cycle. Connecting pings every motor and checks its model, so a wrong or missing motor is found
before anything moves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dynamixel_sdk as sdk
import numpy as np
import serial

from rigs.dynamixel import control_table as ct
from rigs.errors import UserError
from rigs.spec import Arm, RigSpec

log = logging.getLogger(__name__)


class BusError(UserError, RuntimeError):
    """A bus or motor problem; the message names the bus, the motor and what to do."""


class MotorMissingError(BusError):
    """A motor named in the rig file did not answer a ping."""


class MotorModelError(BusError):
    """A motor answered with another model than the rig file names."""


class BusFault(BusError):
    """The bus stopped answering during operation (after retries)."""


class PortVanished(BusFault):
    """The bus's serial port failed with an OS error: the adapter was unplugged, its USB hub
    lost power, or (on the virtual rig) the servo process died."""


# What pyserial, termios and the OS raise on a port whose device has gone.
_PORT_GONE = (OSError, serial.SerialException, termios.error)


class MotorHardwareError(BusError):
    """A motor reports a hardware error (overload, overheating, electrical shock, encoder)."""

    def __init__(self, message: str, motor_id: int, bits: int):
        super().__init__(message)
        self.motor_id = motor_id
        self.bits = bits

    def __reduce__(self) -> tuple[type, tuple[str, int, int]]:
        # Pickled whole (the control process sends it to the app), not from args alone.
        return type(self), (str(self), self.motor_id, self.bits)


class _PortHandler(sdk.PortHandler):
    """The SDK's port handler with a packet timeout matched to the adapter's latency timer.

    The SDK assumes a 16 ms FTDI latency timer (a 34 ms timeout), far longer than a control
    cycle; with the timer at 1 ms a missing reply is known after a few milliseconds.
    """

    latency_ms: float = 1.0
    extra_ms: float = 0.0
    """More time for each reply (an emulated bus: see DynamixelBus ``emulated``)."""

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 (SDK name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = (
            self.tx_time_per_byte * packet_length + 2.0 * self.latency_ms + 2.0 + self.extra_ms
        )

    def getCurrentTime(self) -> float:  # noqa: N802 (SDK name)
        # Milliseconds on the monotonic clock: a wall-clock step must not fake a timeout.
        return time.monotonic_ns() / 1e6

    def readPort(self, length: int) -> bytes:  # noqa: N802 (SDK name)
        # The SDK polls a non-blocking port in a tight loop while it waits for a reply, which
        # burns a core and starves the other threads of the GIL. Wait in the kernel instead,
        # until bytes arrive or the packet timeout ends.
        fd = self.ser.fd
        remaining_s = (self.packet_timeout - self.getTimeSinceStart()) / 1000.0
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining_s))
        if not ready:
            return b""
        return os.read(fd, length)


@dataclass
class MotorInfo:
    """What a motor said about itself at connect."""

    id: int
    joint: str
    model: str
    model_number: int
    firmware: int
    shadow_of: int | None = None


@dataclass
class BusStats:
    """Counters the quality record and diagnostics report."""

    reads: int = 0
    writes: int = 0
    read_retries: int = 0
    failed_reads: int = 0
    failed_writes: int = 0
    hardware_errors: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class JointReading:
    """One sync read of a whole arm: radians, rad/s and current in mA (0 without a sensor)."""

    position_rad: np.ndarray
    velocity_rad_s: np.ndarray
    current_ma: np.ndarray
    ok: bool = True


def ftdi_latency_timer_ms(port: str) -> int | None:
    """The USB latency timer of an FTDI adapter behind ``port`` (None if not an FTDI tty)."""
    try:
        dev = Path(os.path.realpath(port)).name
    except OSError:
        return None
    sysfs = Path("/sys/bus/usb-serial/devices") / dev / "latency_timer"
    try:
        return int(sysfs.read_text().strip())
    except (OSError, ValueError):
        return None


class DynamixelBus:
    """One arm's bus: connect, configure, sync read the state block, sync write goals."""

    def __init__(
        self,
        arm: Arm,
        *,
        retries: int = 2,
        fault_after_failed_cycles: int = 2,
        emulated: bool = False,
    ):
        self.arm = arm
        self.name = arm.name
        # An emulated bus (the virtual rig's servo process) shares the CPU with the app: a
        # reply may come late, and a retry would then read the late reply as its own. It gets
        # one attempt with the time of all of them instead, so a failed read, and so a fault,
        # is declared after the same time as on a real bus.
        self.emulated = emulated
        self._extra_ms = 0.0
        if emulated:
            self._extra_ms = retries * (2.0 * _PortHandler.latency_ms + 2.0)
            retries = 0
        self.retries = retries
        self.fault_after_failed_cycles = fault_after_failed_cycles
        # Two failed cycles in a row (each already retried): at 50 Hz a silent follower bus is
        # a fault about 50 ms after it went quiet, leaving time to torque off within 100 ms,
        # while one lost cycle (a glitch) is ridden out.
        self.stats = BusStats()
        self.motors: list[MotorInfo] = []
        self.latency_timer_ms: int | None = None
        self._port: _PortHandler | None = None
        self._packet = sdk.PacketHandler(2.0)
        self._ids = [j.id for j in arm.joints]
        self._writer: sdk.GroupSyncWrite | None = None
        self._failed_cycles = 0
        self._last = JointReading(
            np.zeros(len(self._ids)), np.zeros(len(self._ids)), np.zeros(len(self._ids)), False
        )
        self._current_unit = np.array([ct.MODELS[j.model].current_unit_ma for j in arm.joints])

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._port is not None

    def connect(self) -> list[MotorInfo]:
        """Open the port and ping every motor, checking its model. Returns what answered."""
        port = self.arm.port
        if not os.path.exists(port):
            raise BusError(
                f"bus {self.name}: port {port} does not exist; plug in the adapter or fix "
                f"'port' for arm {self.name} in the rig file"
            )
        handler = _PortHandler(port)
        handler.extra_ms = self._extra_ms
        self.latency_timer_ms = ftdi_latency_timer_ms(port)
        if self.latency_timer_ms is not None:
            handler.latency_ms = float(self.latency_timer_ms)
            if self.latency_timer_ms > 1:
                log.warning(
                    "bus %s: USB latency timer of %s is %d ms, which caps the control rate; "
                    "set it to 1 ms (see README, Hardware)",
                    self.name,
                    port,
                    self.latency_timer_ms,
                )
        try:
            opened = handler.openPort()
        except Exception as exc:  # pyserial raises SerialException/OSError with details
            raise BusError(
                f"bus {self.name}: cannot open {port} ({exc}); check permissions (dialout group)"
            ) from None
        if not opened or not handler.setBaudRate(self.arm.baudrate):
            raise BusError(f"bus {self.name}: cannot set {self.arm.baudrate} baud on {port}")
        self._port = handler
        try:
            self.motors = self._ping_all()
        except BusError:
            self.disconnect()
            raise
        self._reader = sdk.GroupSyncRead(
            handler, self._packet, ct.STATE_BLOCK_START, ct.STATE_BLOCK_LENGTH
        )
        for i in self._ids:
            self._reader.addParam(i)
        self._writer = sdk.GroupSyncWrite(handler, self._packet, ct.GOAL_POSITION, 4)
        return self.motors

    def _ping_all(self) -> list[MotorInfo]:
        found: list[MotorInfo] = []
        for joint in self.arm.joints:
            for mid, shadow_of in ((joint.id, None), (joint.shadow_id, joint.id)):
                if mid is None:
                    continue
                number = self._ping(mid)
                expected = ct.MODELS[joint.model]
                if number is None:
                    raise MotorMissingError(
                        f"bus {self.name} ({self.arm.port}): motor id {mid} ({joint.name}, "
                        f"expected {joint.model}) does not answer; check its cable, power and id"
                    )
                if number != expected.number:
                    got = ct.MODEL_BY_NUMBER.get(number)
                    raise MotorModelError(
                        f"bus {self.name}: motor id {mid} ({joint.name}) is a "
                        f"{got.name if got else f'model number {number}'}, expected {joint.model}; "
                        "fix the rig file or the motor"
                    )
                firmware = self.read_u8(mid, ct.FIRMWARE_VERSION)
                found.append(MotorInfo(mid, joint.name, joint.model, number, firmware, shadow_of))
        return found

    def _ping(self, motor_id: int) -> int | None:
        assert self._port is not None
        for _ in range(self.retries + 1):
            number, result, _err = self._packet.ping(self._port, motor_id)
            if result == sdk.COMM_SUCCESS:
                return int(number)
        return None

    def disconnect(self) -> None:
        """Close the port (torque is left as it is: a follower keeps holding)."""
        if self._port is not None:
            try:
                with contextlib.suppress(*_PORT_GONE):  # a vanished port closes as it can
                    self._port.closePort()
            finally:
                self._port = None

    def __enter__(self) -> DynamixelBus:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- single-register access (setup only, never in the loop) -----------------------------
    def _check(self, what: str, motor_id: int, result: int, error: int) -> None:
        if result != sdk.COMM_SUCCESS:
            raise BusError(
                f"bus {self.name}: {what} motor {motor_id} failed: {self._packet.getTxRxResult(result)}"
            )
        if error & 0x7F:
            raise BusError(
                f"bus {self.name}: {what} motor {motor_id} refused: {self._packet.getRxPacketError(error)}"
            )

    def _transact(self, what: str, motor_id: int, call: Callable[[], tuple]) -> tuple:
        """One set-up transaction, retried on a lost or garbled reply (not on a refusal)."""
        assert self._port is not None, "connect() first"
        for _ in range(self.retries + 1):
            out = call()
            result, error = out[-2], out[-1]
            if result == sdk.COMM_SUCCESS:
                break
        self._check(what, motor_id, result, error)
        return out

    def read_u8(self, motor_id: int, address: int) -> int:
        value, _, _ = self._transact(
            f"reading address {address} of", motor_id,
            lambda: self._packet.read1ByteTxRx(self._port, motor_id, address),
        )  # fmt: skip
        return int(value)

    def write_u8(self, motor_id: int, address: int, value: int) -> None:
        self._transact(
            f"writing address {address} of", motor_id,
            lambda: self._packet.write1ByteTxRx(self._port, motor_id, address, value),
        )  # fmt: skip

    def write_u16(self, motor_id: int, address: int, value: int) -> None:
        self._transact(
            f"writing address {address} of", motor_id,
            lambda: self._packet.write2ByteTxRx(self._port, motor_id, address, value),
        )  # fmt: skip

    def hardware_error(self, motor_id: int) -> int:
        """Hardware Error Status (register 70) of one motor."""
        return self.read_u8(motor_id, ct.HARDWARE_ERROR_STATUS)

    def all_ids(self) -> list[int]:
        return [m.id for m in self.motors]

    # -- modes ------------------------------------------------------------------------------
    def set_torque(self, enabled: bool) -> None:
        """Torque on or off for every motor of the arm, shadows included."""
        for mid in self.all_ids():
            self.write_u8(mid, ct.TORQUE_ENABLE, 1 if enabled else 0)

    def torque_off_now(self) -> bool:
        """Torque off every motor in one SYNC_WRITE (no replies to wait for): the fault path.

        Works while some motors are silent, and takes one packet's time on the wire.
        """
        assert self._port is not None, "connect() first"
        group = sdk.GroupSyncWrite(self._port, self._packet, ct.TORQUE_ENABLE, 1)
        for mid in self.all_ids() or self._ids:
            group.addParam(mid, [0])
        try:
            return group.txPacket() == sdk.COMM_SUCCESS
        except _PORT_GONE as exc:
            raise self._vanished(exc) from exc

    def _vanished(self, exc: BaseException) -> PortVanished:
        if isinstance(exc, OSError) and exc.strerror:
            why = exc.strerror
        elif isinstance(exc, termios.error) and len(exc.args) == 2:
            why = str(exc.args[1])
        else:
            why = str(exc) or type(exc).__name__
        return PortVanished(
            f"bus {self.name} ({self.arm.port}) vanished ({why}): the adapter was unplugged "
            "or lost power; check its USB cable and hub, then start again"
        )

    def configure_leader(self) -> None:
        """Leaders are moved by hand: torque off."""
        self.set_torque(False)

    def configure_follower(self) -> None:
        """Followers hold position; the gripper runs current-based position with a limit."""
        self.set_torque(False)  # operating mode and current limit live in EEPROM
        for joint in self.arm.joints:
            ids = [joint.id] + ([joint.shadow_id] if joint.shadow_id is not None else [])
            gripper = joint.name == self.arm.gripper and ct.MODELS[joint.model].has_current_sensor
            mode = ct.OperatingMode.CURRENT_BASED_POSITION if gripper else ct.OperatingMode.POSITION
            for mid in ids:
                self.write_u8(mid, ct.OPERATING_MODE, int(mode))
                if gripper:
                    self.write_u16(mid, ct.CURRENT_LIMIT, self.arm.gripper_current_limit)
        # Start from where the arm is, so enabling torque does not jump.
        reading = self.read_state()
        if reading.ok:
            self.write_goals(reading.position_rad)
        self.set_torque(True)

    # -- the per-cycle path -----------------------------------------------------------------
    def read_state(self) -> JointReading:
        """One sync read of current, velocity and position for every joint.

        A failed read is retried; if every retry fails the last good reading comes back with
        ``ok=False``; after ``fault_after_failed_cycles`` failed cycles in a row, BusFault.
        """
        assert self._port is not None, "connect() first"
        self.stats.reads += 1
        rows: list[tuple[int, int, int]] = []
        alerts: list[int] = []
        result = sdk.COMM_TX_FAIL
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.read_retries += 1
            try:
                result, rows, alerts = self._sync_read()
            except _PORT_GONE as exc:
                raise self._vanished(exc) from exc
            if result == sdk.COMM_SUCCESS:
                break
        if alerts:
            self._raise_hardware_error(alerts)
        if result != sdk.COMM_SUCCESS:
            self.stats.failed_reads += 1
            self._failed_cycles += 1
            if self._failed_cycles >= self.fault_after_failed_cycles:
                raise BusFault(
                    f"bus {self.name} ({self.arm.port}) stopped answering "
                    f"({self._packet.getTxRxResult(result)}, {self._failed_cycles} cycles); "
                    "check power and cable"
                )
            return JointReading(
                self._last.position_rad, self._last.velocity_rad_s, self._last.current_ma, False
            )
        self._failed_cycles = 0
        cur, vel, pos = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
        reading = JointReading(
            (pos - ct.CENTER_TICKS) * ct.RAD_PER_TICK,
            vel * ct.RAD_S_PER_VELOCITY_UNIT,
            cur * self._current_unit,
        )
        self._last = reading
        return reading

    def _sync_read(self) -> tuple[int, list[tuple[int, int, int]], list[int]]:
        """One SYNC_READ of the state block; (result, rows of (current, velocity, position), alerts).

        The SDK's GroupSyncRead drops each status packet's error byte; reading the replies with
        the SDK's own readRx keeps it, so a motor raising its hardware-error alert bit is seen
        in the same transaction, at no extra cost.
        """
        port, ph = self._port, self._packet
        length = ct.STATE_BLOCK_LENGTH
        result = ph.syncReadTx(port, ct.STATE_BLOCK_START, length, self._ids, len(self._ids), False)
        if result != sdk.COMM_SUCCESS:
            return result, [], []
        rows: list[tuple[int, int, int]] = []
        alerts: list[int] = []
        for mid in self._ids:
            data, result, error = ph.readRx(port, mid, length)
            if result != sdk.COMM_SUCCESS:
                return result, [], alerts
            if error & 0x80:
                alerts.append(mid)
            rows.append(struct.unpack_from("<hii", bytes(data)))
        return result, rows, alerts

    def _raise_hardware_error(self, alerts: list[int]) -> None:
        joints = {j.id: j.name for j in self.arm.joints}
        mid = alerts[0]
        try:
            bits = self.hardware_error(mid)
        except BusError:
            bits = 0
        self.stats.hardware_errors[mid] = bits
        raise MotorHardwareError(
            f"bus {self.name}: motor {mid} ({joints.get(mid, '?')}) reports a hardware error: "
            f"{ct.describe_hardware_error(bits) if bits else 'alert bit set'}; "
            "check the load and temperature, then power-cycle or reboot the motor",
            mid,
            bits,
        )

    def write_goals(self, goal_rad: np.ndarray) -> bool:
        """One sync write of Goal Position for every primary motor. False if it failed."""
        assert self._writer is not None, "connect() first"
        ticks = np.rint(np.asarray(goal_rad) / ct.RAD_PER_TICK).astype(np.int64) + ct.CENTER_TICKS
        self._writer.clearParam()
        for mid, t in zip(self._ids, ticks, strict=True):
            self._writer.addParam(mid, list(struct.pack("<i", int(t))))
        self.stats.writes += 1
        try:
            ok = self._writer.txPacket() == sdk.COMM_SUCCESS
        except _PORT_GONE as exc:
            raise self._vanished(exc) from exc
        if not ok:
            self.stats.failed_writes += 1
        return ok

    def hardware_info(self) -> dict[str, str]:
        """Provenance: adapter port and each motor's id, model and firmware."""
        info = {"port": self.arm.port, "baudrate": str(self.arm.baudrate)}
        if self.latency_timer_ms is not None:
            info["latency_timer_ms"] = str(self.latency_timer_ms)
        serial = _adapter_serial(self.arm.port)
        if serial:
            info["adapter_serial"] = serial
        for m in self.motors:
            info[f"motor_{m.id}"] = f"{m.joint} {m.model} fw{m.firmware}" + (
                f" shadow of {m.shadow_of}" if m.shadow_of is not None else ""
            )
        return info


def _adapter_serial(port: str) -> str | None:
    """The USB serial number of the adapter, read from the /dev/serial/by-id name if used."""
    name = Path(port).name
    if "/dev/serial/by-id/" in port and name.startswith("usb-"):
        return name.removeprefix("usb-").rsplit("-if", 1)[0]
    return None


def open_buses(spec: RigSpec, ports: dict[str, str]) -> dict[str, DynamixelBus]:
    """Connect every arm of ``spec`` (ports overridden by ``ports``) and set its modes.

    The buses of a ``virtual`` rig are emulated (see :class:`DynamixelBus`).

    Leaders torque-off, followers holding where they stand. On any error the buses already
    opened are closed again before it propagates.
    """
    buses: dict[str, DynamixelBus] = {}
    try:
        for arm in spec.arms:
            if arm.name in ports:
                arm = arm.model_copy(update={"port": ports[arm.name]})
            bus = DynamixelBus(arm, emulated=spec.virtual)
            bus.connect()
            buses[arm.name] = bus
        for arm in spec.leaders:
            buses[arm.name].configure_leader()
        for arm in spec.followers:
            buses[arm.name].configure_follower()
    except BaseException:
        for b in buses.values():
            b.disconnect()
        raise
    return buses
