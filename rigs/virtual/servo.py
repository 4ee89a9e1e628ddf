"""One virtual Dynamixel X-series servo: its control table and a small physical model.

:class:`VirtualServo` is a 147-byte control table laid out as in the ROBOTIS e-Manual
(addresses from :mod:`rigs.dynamixel.control_table`), the access rules of the real firmware
(EEPROM locked while torque is on, read-only registers, value ranges) and a small physical
model: with torque on it tracks Goal Position through a first-order lag with a velocity
limit, draws current that grows with the tracking error (clipped at the current limit; in
current-based position mode at Goal Current, so a gripper closing on an object stalls gently),
and reports position, velocity, current, moving flags, realtime tick, voltage and temperature.
With torque off it does not drive. Leaders are moved from outside (the scripted operator);
shadow servos mirror their primary. It does no I/O: :mod:`rigs.virtual.servo_chain` answers
packets for a bus of them.
"""

from __future__ import annotations

import math
import random
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rigs.dynamixel import control_table as ct
from rigs.dynamixel import protocol as p

if TYPE_CHECKING:
    pass

# --- model facts the control table module does not carry -----------------------------------


@dataclass(frozen=True)
class _ModelLimits:
    velocity_limit: int  # register default, 0.229 rpm units (about the no-load speed)
    max_voltage: int  # 0.1 V
    min_voltage: int  # 0.1 V
    supply_voltage: int  # 0.1 V, what Present Input Voltage shows
    position_p_gain: int


_LIMITS: dict[str, _ModelLimits] = {
    "XL330-M077": _ModelLimits(1023, 70, 35, 50, 400),
    "XL330-M288": _ModelLimits(445, 70, 35, 50, 400),
    "XL430-W250": _ModelLimits(265, 140, 60, 120, 640),
    "XC430-W150": _ModelLimits(460, 140, 60, 120, 640),
    "XC430-W240": _ModelLimits(306, 140, 60, 120, 640),
    "XM430-W210": _ModelLimits(330, 160, 95, 120, 800),
    "XM430-W350": _ModelLimits(200, 160, 95, 120, 800),
    "XH430-W350": _ModelLimits(200, 160, 95, 120, 800),
    "XM540-W150": _ModelLimits(230, 160, 95, 120, 800),
    "XM540-W270": _ModelLimits(128, 160, 95, 120, 800),
}

BAUD_REGISTER: dict[int, int] = {
    9600: 0,
    57_600: 1,
    115_200: 2,
    1_000_000: 3,
    2_000_000: 4,
    3_000_000: 5,
    4_000_000: 6,
    4_500_000: 7,
}

BUS_WATCHDOG = 98  # 1 byte, signed: 1..127 x 20 ms; -1 once tripped
FEEDFORWARD_2ND_GAIN = 88
FEEDFORWARD_1ST_GAIN = 90
_DEFAULT_SHUTDOWN = int(
    ct.HardwareError.OVERHEATING | ct.HardwareError.ELECTRICAL_SHOCK | ct.HardwareError.OVERLOAD
)
_TICKS_S_PER_VELOCITY_UNIT = ct.VELOCITY_UNIT_RPM * ct.TICKS_PER_REV / 60.0
_POSITION_MODES = (
    ct.OperatingMode.POSITION,
    ct.OperatingMode.EXTENDED_POSITION,
    ct.OperatingMode.CURRENT_BASED_POSITION,
)
_STATE = struct.Struct("<HBBhhiiiiHB")  # addresses 120..146, refreshed by every physics step
# Goals a tripped bus watchdog refuses until it is cleared.
_GOAL_REGISTERS = frozenset(
    [*range(ct.GOAL_PWM, ct.GOAL_PWM + 2), *range(ct.GOAL_CURRENT, ct.GOAL_CURRENT + 2)]
    + [
        *range(ct.GOAL_VELOCITY, ct.GOAL_VELOCITY + 4),
        *range(ct.GOAL_POSITION, ct.GOAL_POSITION + 4),
    ]
)


@dataclass(frozen=True)
class _Reg:
    address: int
    size: int
    signed: bool
    writable: bool


def _registers(has_current: bool) -> list[_Reg]:
    regs = [
        _Reg(ct.MODEL_NUMBER, 2, False, False),
        _Reg(ct.MODEL_INFORMATION, 4, False, False),
        _Reg(ct.FIRMWARE_VERSION, 1, False, False),
        _Reg(ct.ID, 1, False, True),
        _Reg(ct.BAUD_RATE, 1, False, True),
        _Reg(ct.RETURN_DELAY_TIME, 1, False, True),
        _Reg(ct.DRIVE_MODE, 1, False, True),
        _Reg(ct.OPERATING_MODE, 1, False, True),
        _Reg(ct.SECONDARY_ID, 1, False, True),
        _Reg(ct.PROTOCOL_TYPE, 1, False, True),
        _Reg(ct.HOMING_OFFSET, 4, True, True),
        _Reg(ct.MOVING_THRESHOLD, 4, False, True),
        _Reg(ct.TEMPERATURE_LIMIT, 1, False, True),
        _Reg(ct.MAX_VOLTAGE_LIMIT, 2, False, True),
        _Reg(ct.MIN_VOLTAGE_LIMIT, 2, False, True),
        _Reg(ct.PWM_LIMIT, 2, False, True),
        _Reg(ct.VELOCITY_LIMIT, 4, False, True),
        _Reg(ct.MAX_POSITION_LIMIT, 4, False, True),
        _Reg(ct.MIN_POSITION_LIMIT, 4, False, True),
        _Reg(ct.SHUTDOWN, 1, False, True),
        _Reg(ct.TORQUE_ENABLE, 1, False, True),
        _Reg(ct.LED, 1, False, True),
        _Reg(ct.STATUS_RETURN_LEVEL, 1, False, True),
        _Reg(ct.REGISTERED_INSTRUCTION, 1, False, False),
        _Reg(ct.HARDWARE_ERROR_STATUS, 1, False, False),
        _Reg(ct.VELOCITY_I_GAIN, 2, False, True),
        _Reg(ct.VELOCITY_P_GAIN, 2, False, True),
        _Reg(ct.POSITION_D_GAIN, 2, False, True),
        _Reg(ct.POSITION_I_GAIN, 2, False, True),
        _Reg(ct.POSITION_P_GAIN, 2, False, True),
        _Reg(FEEDFORWARD_2ND_GAIN, 2, False, True),
        _Reg(FEEDFORWARD_1ST_GAIN, 2, False, True),
        _Reg(BUS_WATCHDOG, 1, True, True),
        _Reg(ct.GOAL_PWM, 2, True, True),
        _Reg(ct.GOAL_VELOCITY, 4, True, True),
        _Reg(ct.PROFILE_ACCELERATION, 4, False, True),
        _Reg(ct.PROFILE_VELOCITY, 4, False, True),
        _Reg(ct.GOAL_POSITION, 4, True, True),
        _Reg(ct.REALTIME_TICK, 2, False, False),
        _Reg(ct.MOVING, 1, False, False),
        _Reg(ct.MOVING_STATUS, 1, False, False),
        _Reg(ct.PRESENT_PWM, 2, True, False),
        _Reg(ct.PRESENT_CURRENT, 2, True, False),
        _Reg(ct.PRESENT_VELOCITY, 4, True, False),
        _Reg(ct.PRESENT_POSITION, 4, True, False),
        _Reg(ct.VELOCITY_TRAJECTORY, 4, True, False),
        _Reg(ct.POSITION_TRAJECTORY, 4, True, False),
        _Reg(ct.PRESENT_INPUT_VOLTAGE, 2, False, False),
        _Reg(ct.PRESENT_TEMPERATURE, 1, False, False),
    ]
    if has_current:
        # Models without a current sensor (XL430, XC430) have no Current Limit / Goal Current;
        # their address 126 is Present Load instead of Present Current.
        regs += [_Reg(ct.CURRENT_LIMIT, 2, False, True), _Reg(ct.GOAL_CURRENT, 2, True, True)]
    return regs


@dataclass(frozen=True)
class TorqueWrite:
    """One write of Torque Enable the servo received: when (monotonic ns) and which value."""

    t_ns: int
    value: int


@dataclass(frozen=True)
class ServoState:
    """A snapshot of one servo for tests and diagnostics."""

    id: int
    model: str
    torque: bool
    mode: int
    goal_ticks: int
    present_ticks: int
    present_current: int
    hardware_error: int
    torque_writes: int
    silent: bool


class VirtualServo:
    """One X-series servo: control table, access rules and physics.

    ``position_rad`` is the initial physical joint angle. ``mount_offset_ticks`` and
    ``mount_direction`` say how the servo sits in its joint: at joint angle 0 the motor shaft is
    at the centre tick (2048) plus the offset, and a positive joint motion turns the shaft by
    ``mount_direction``. The default (0, +1) makes joint angle and motor angle the same.
    ``time_constant_s`` is the first-order lag of position tracking. The physical state is held
    in raw encoder ticks (continuous over turns); registers are derived through the turn count,
    Homing Offset and the reverse bit of Drive Mode, as on the real servo. As the e-Manual
    describes, Present Position counts whole turns while powered and is brought back within one
    turn (0..4095) at power-on and reboot, when Operating Mode becomes Position Control, and
    when torque comes on in Position Control.
    """

    def __init__(
        self,
        dxl_id: int,
        model: str,
        *,
        baudrate: int = 1_000_000,
        firmware_version: int = 52,
        return_delay_time: int = 0,
        position_rad: float = 0.0,
        time_constant_s: float = 0.045,
        overload_after_s: float = 2.0,
        seed: int = 0,
        now: float | None = None,
        mount_offset_ticks: int = 0,
        mount_direction: int = 1,
    ) -> None:
        if model not in ct.MODELS:
            raise ValueError(f"unknown Dynamixel model {model!r}")
        if mount_direction not in (1, -1):
            raise ValueError(f"mount_direction must be +1 or -1, not {mount_direction!r}")
        self.mount_offset_ticks = int(mount_offset_ticks)
        self.mount_direction = int(mount_direction)
        self.model = ct.MODELS[model]
        self.limits = _LIMITS[model]
        self.time_constant_s = time_constant_s
        self.overload_after_s = overload_after_s
        self.table = bytearray(ct.CONTROL_TABLE_SIZE)
        writable = bytearray(ct.CONTROL_TABLE_SIZE)
        self._reg_at: list[_Reg | None] = [None] * ct.CONTROL_TABLE_SIZE
        for r in _registers(self.model.has_current_sensor):
            if r.writable:
                writable[r.address : r.address + r.size] = b"\x01" * r.size
            for a in range(r.address, r.address + r.size):
                self._reg_at[a] = r
        self._writable = bytes(writable)
        self._rng = random.Random(seed * 1000 + dxl_id)
        self._factory = (
            dxl_id,
            BAUD_REGISTER.get(baudrate, 3),
            firmware_version,
            return_delay_time,
        )
        self._init_eeprom(keep_id=False, keep_baud=False)
        # Physical state (motor frame, raw ticks) and bookkeeping.
        self.raw = self.joint_to_raw(position_rad)
        # Whole turns (in ticks) hidden from Present Position; set at power-on like the firmware.
        self._turn_base = 0
        self._turn_base = self._single_turn_base()
        self.vel_raw = 0.0  # ticks/s
        self.current = 0.0  # register units (mA-ish units or 0.1 % load)
        self.temperature = 30.0 + self._rng.random() * 3.0
        now = time.monotonic() if now is None else now
        self._t = now
        self._t0 = now
        self._stall_s = 0.0
        self._at_rest = False
        self._state_dirty = True
        self.last_comm = now
        self.boot_until = 0.0
        self.silent = False
        self.external_rad: float | None = None  # set: moved from outside (a leader by hand)
        self.block_below_rad: float | None = None  # set: an object stops closing below this
        self.mirror_of: VirtualServo | None = None  # set: a shadow servo
        self.torque_log: deque[TorqueWrite] = deque(maxlen=256)
        self.torque_write_count = 0
        self.identity_changed = False
        self._registered: tuple[int, bytes] | None = None
        self._init_ram()

    # -- defaults ---------------------------------------------------------------------------
    def _put(self, address: int, size: int, value: int, signed: bool = False) -> None:
        self.table[address : address + size] = value.to_bytes(size, "little", signed=signed)

    def _get(self, address: int, size: int, signed: bool = False) -> int:
        return int.from_bytes(self.table[address : address + size], "little", signed=signed)

    def _init_eeprom(self, *, keep_id: bool, keep_baud: bool) -> None:
        dxl_id, baud, firmware, delay = self._factory
        old_id, old_baud = self.table[ct.ID], self.table[ct.BAUD_RATE]
        self.table[0 : ct.EEPROM_END] = bytes(ct.EEPROM_END)
        m, lim = self.model, self.limits
        self._put(ct.MODEL_NUMBER, 2, m.number)
        self.table[ct.FIRMWARE_VERSION] = firmware
        self.table[ct.ID] = old_id if keep_id else dxl_id
        self.table[ct.BAUD_RATE] = old_baud if keep_baud else baud
        self.table[ct.RETURN_DELAY_TIME] = delay
        self.table[ct.OPERATING_MODE] = int(ct.OperatingMode.POSITION)
        self.table[ct.SECONDARY_ID] = 255
        self.table[ct.PROTOCOL_TYPE] = 2
        self._put(ct.MOVING_THRESHOLD, 4, 10)
        self.table[ct.TEMPERATURE_LIMIT] = 80
        self._put(ct.MAX_VOLTAGE_LIMIT, 2, lim.max_voltage)
        self._put(ct.MIN_VOLTAGE_LIMIT, 2, lim.min_voltage)
        self._put(ct.PWM_LIMIT, 2, 885)
        if m.has_current_sensor:
            self._put(ct.CURRENT_LIMIT, 2, m.default_current_limit)
        self._put(ct.VELOCITY_LIMIT, 4, lim.velocity_limit)
        self._put(ct.MAX_POSITION_LIMIT, 4, ct.TICKS_PER_REV - 1)
        self._put(ct.MIN_POSITION_LIMIT, 4, 0)
        self.table[ct.SHUTDOWN] = _DEFAULT_SHUTDOWN
        self.identity_changed = True

    def _init_ram(self) -> None:
        """RAM as after power-on or reboot: torque off, goal = where the servo is."""
        self.table[ct.EEPROM_END :] = bytes(ct.CONTROL_TABLE_SIZE - ct.EEPROM_END)
        self.table[ct.STATUS_RETURN_LEVEL] = 2
        self._put(ct.VELOCITY_I_GAIN, 2, 1920)
        self._put(ct.VELOCITY_P_GAIN, 2, 100)
        self._put(ct.POSITION_P_GAIN, 2, self.limits.position_p_gain)
        self._put(ct.GOAL_PWM, 2, self._get(ct.PWM_LIMIT, 2))
        if self.model.has_current_sensor:
            self._put(ct.GOAL_CURRENT, 2, self._get(ct.CURRENT_LIMIT, 2))
        self._registered = None
        self._at_rest = False
        self._refresh()
        self._put(ct.GOAL_POSITION, 4, self._raw_to_reg(self.raw), signed=True)
        self._refresh()
        self._write_state(self._t)

    def _refresh(self) -> None:
        """Cache the registers physics needs after anything wrote the table."""
        t = self.table
        self.id = t[ct.ID]
        self.secondary_id = t[ct.SECONDARY_ID]
        self.torque_on = t[ct.TORQUE_ENABLE] == 1
        self.mode = t[ct.OPERATING_MODE]
        self.hardware_error = t[ct.HARDWARE_ERROR_STATUS]
        self.status_return_level = t[ct.STATUS_RETURN_LEVEL]
        self.return_delay_s = t[ct.RETURN_DELAY_TIME] * 2e-6
        self._homing = self._get(ct.HOMING_OFFSET, 4, True)
        self._sign = -1.0 if t[ct.DRIVE_MODE] & 0x01 else 1.0
        self._goal_reg = self._get(ct.GOAL_POSITION, 4, True)
        self._goal_vel = self._get(ct.GOAL_VELOCITY, 4, True)
        vlim = self._get(ct.VELOCITY_LIMIT, 4)
        prof = self._get(ct.PROFILE_VELOCITY, 4)
        if prof:
            vlim = min(vlim, prof) if vlim else prof
        self._vmax_raw = max(vlim, 1) * _TICKS_S_PER_VELOCITY_UNIT
        if self.model.has_current_sensor:
            self._full_scale = float(self._get(ct.CURRENT_LIMIT, 2))
            goal_current = abs(self._get(ct.GOAL_CURRENT, 2, True))
            self._cap_mode5 = float(min(goal_current, self._full_scale))
        else:
            self._full_scale = 1000.0  # Present Load is in 0.1 % of the maximum torque
            self._cap_mode5 = 1000.0
        self._moving_threshold = self._get(ct.MOVING_THRESHOLD, 4)
        self._watchdog = self._get(BUS_WATCHDOG, 1, True)
        self._min_pos = self._get(ct.MIN_POSITION_LIMIT, 4)
        self._max_pos = self._get(ct.MAX_POSITION_LIMIT, 4)

    # -- frames -----------------------------------------------------------------------------
    def _raw_to_reg(self, raw: float) -> int:
        raw -= self._turn_base
        return int(round(self._sign * (raw - ct.CENTER_TICKS) + ct.CENTER_TICKS + self._homing))

    def _reg_to_raw(self, reg: int) -> float:
        return (
            self._sign * (reg - self._homing - ct.CENTER_TICKS) + ct.CENTER_TICKS + self._turn_base
        )

    def joint_to_raw(self, joint_rad: float) -> float:
        """Motor shaft position (raw ticks) for a physical joint angle, through the mounting."""
        return (
            ct.CENTER_TICKS
            + self.mount_offset_ticks
            + self.mount_direction * joint_rad / ct.RAD_PER_TICK
        )

    def raw_to_joint(self, raw: float) -> float:
        """Physical joint angle for a motor shaft position (raw ticks)."""
        return (
            self.mount_direction
            * (raw - ct.CENTER_TICKS - self.mount_offset_ticks)
            * ct.RAD_PER_TICK
        )

    def _single_turn_base(self) -> int:
        return math.floor(self.raw / ct.TICKS_PER_REV) * ct.TICKS_PER_REV

    def reset_turns(self) -> None:
        """Bring Present Position back within one turn (0..4095), keeping the goal in place.

        The shaft does not move; only the whole turns the register counted are forgotten.
        """
        base = self._single_turn_base()
        delta = base - self._turn_base
        if not delta:
            return
        self._turn_base = base
        # The goal names the same physical target in the new frame (no lurch by a turn).
        goal = self._get(ct.GOAL_POSITION, 4, True) - int(self._sign) * delta
        self._put(ct.GOAL_POSITION, 4, goal, signed=True)
        self._goal_reg = goal
        self._state_dirty = True
        self._at_rest = False

    @property
    def position_rad(self) -> float:
        """True physical joint angle (independent of mounting, turns, Homing Offset, Drive Mode)."""
        return self.raw_to_joint(self.raw)

    @property
    def present_ticks(self) -> int:
        """Present Position as the register reports it."""
        return int.from_bytes(self.read(ct.PRESENT_POSITION, 4)[1], "little", signed=True)

    @property
    def goal_ticks(self) -> int:
        """Goal Position as the register holds it."""
        return self._goal_reg

    def state(self) -> ServoState:
        """A snapshot for tests and diagnostics."""
        return ServoState(
            id=self.id,
            model=self.model.name,
            torque=self.torque_on,
            mode=self.mode,
            goal_ticks=self._goal_reg,
            present_ticks=self.present_ticks,
            present_current=int.from_bytes(
                self.read(ct.PRESENT_CURRENT, 2)[1], "little", signed=True
            ),
            hardware_error=self.hardware_error,
            torque_writes=self.torque_write_count,
            silent=self.silent,
        )

    # -- register access --------------------------------------------------------------------
    @property
    def status_error(self) -> int:
        """The alert bit for a status packet: set while Hardware Error Status is non-zero."""
        return p.ERR_ALERT if self.hardware_error else 0

    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """Read ``length`` bytes from ``address``: (error code, data)."""
        if length <= 0 or address < 0 or address + length > ct.CONTROL_TABLE_SIZE:
            return p.ERR_ACCESS, b""
        if self._state_dirty and address + length > ct.REALTIME_TICK:
            self._write_state(self._t)
        return 0, bytes(self.table[address : address + length])

    def check_write(self, address: int, data: bytes) -> int:
        """The error code a write would get (0 if it would be accepted)."""
        n = len(data)
        if address == ct.GOAL_POSITION and n == 4:
            # Fast path for the per-cycle goal write (same rules as the general path below).
            if self._watchdog < 0:
                return p.ERR_DATA_RANGE
            value = int.from_bytes(data, "little", signed=True)
            if self.mode == ct.OperatingMode.EXTENDED_POSITION:
                return 0 if abs(value) <= 1_048_575 else p.ERR_DATA_RANGE
            return 0 if self._min_pos <= value <= self._max_pos else p.ERR_DATA_LIMIT
        if n == 0 or address < 0 or address + n > ct.CONTROL_TABLE_SIZE:
            return p.ERR_ACCESS
        if 0 in self._writable[address : address + n]:
            return p.ERR_ACCESS  # read-only or undefined address
        if address < ct.EEPROM_END and self.torque_on:
            return p.ERR_ACCESS  # EEPROM is locked while torque is on
        # Validate every register the write touches (even partly), on a scratch copy.
        scratch = bytearray(self.table)
        scratch[address : address + n] = data
        seen: _Reg | None = None
        for reg in self._reg_at[address : address + n]:
            if reg is None or reg is seen:
                continue
            seen = reg
            a = reg.address
            value = int.from_bytes(scratch[a : a + reg.size], "little", signed=reg.signed)
            err = self._validate(a, value, scratch)
            if err:
                return err
        if self._watchdog < 0 and any(a in _GOAL_REGISTERS for a in range(address, address + n)):
            return p.ERR_DATA_RANGE  # goals are refused until the tripped watchdog is cleared
        return 0

    def _validate(self, address: int, value: int, t: bytearray) -> int:
        has_current = self.model.has_current_sensor
        if address == ct.ID:
            return 0 if value <= p.MAX_ID else p.ERR_DATA_RANGE
        if address == ct.BAUD_RATE:
            return 0 if value <= 7 else p.ERR_DATA_RANGE
        if address == ct.RETURN_DELAY_TIME:
            return 0 if value <= 254 else p.ERR_DATA_RANGE
        if address == ct.OPERATING_MODE:
            allowed = {1, 3, 4, 16} | ({0, 5} if has_current else set())
            return 0 if value in allowed else p.ERR_DATA_RANGE
        if address == ct.PROTOCOL_TYPE:
            return 0 if value in (1, 2) else p.ERR_DATA_RANGE
        if address in (ct.TORQUE_ENABLE, ct.LED):
            return 0 if value in (0, 1) else p.ERR_DATA_RANGE
        if address == ct.STATUS_RETURN_LEVEL:
            return 0 if value <= 2 else p.ERR_DATA_RANGE
        if address == ct.HOMING_OFFSET:
            return 0 if abs(value) <= 1_044_479 else p.ERR_DATA_RANGE
        if address in (ct.MAX_POSITION_LIMIT, ct.MIN_POSITION_LIMIT):
            return 0 if 0 <= value < ct.TICKS_PER_REV else p.ERR_DATA_RANGE
        if address == ct.VELOCITY_LIMIT:
            return 0 if value <= 1023 else p.ERR_DATA_RANGE
        if address == ct.PWM_LIMIT:
            return 0 if value <= 885 else p.ERR_DATA_RANGE
        if address == ct.CURRENT_LIMIT:
            return 0 if value <= self.model.default_current_limit else p.ERR_DATA_RANGE
        if address == BUS_WATCHDOG:
            return 0 if 0 <= value <= 127 else p.ERR_DATA_RANGE
        if address == ct.GOAL_POSITION:
            mode = t[ct.OPERATING_MODE]
            if mode == ct.OperatingMode.EXTENDED_POSITION:
                return 0 if abs(value) <= 1_048_575 else p.ERR_DATA_RANGE
            lo = int.from_bytes(t[ct.MIN_POSITION_LIMIT : ct.MIN_POSITION_LIMIT + 4], "little")
            hi = int.from_bytes(t[ct.MAX_POSITION_LIMIT : ct.MAX_POSITION_LIMIT + 4], "little")
            return 0 if lo <= value <= hi else p.ERR_DATA_LIMIT
        if address == ct.GOAL_VELOCITY:
            lim = int.from_bytes(t[ct.VELOCITY_LIMIT : ct.VELOCITY_LIMIT + 4], "little")
            return 0 if abs(value) <= lim else p.ERR_DATA_LIMIT
        if address == ct.GOAL_CURRENT:
            lim = int.from_bytes(t[ct.CURRENT_LIMIT : ct.CURRENT_LIMIT + 2], "little")
            return 0 if abs(value) <= lim else p.ERR_DATA_LIMIT
        if address == ct.GOAL_PWM:
            lim = int.from_bytes(t[ct.PWM_LIMIT : ct.PWM_LIMIT + 2], "little")
            return 0 if abs(value) <= lim else p.ERR_DATA_LIMIT
        if address in (ct.PROFILE_ACCELERATION, ct.PROFILE_VELOCITY):
            return 0 if 0 <= value <= 32767 else p.ERR_DATA_RANGE
        return 0

    def write(self, address: int, data: bytes) -> int:
        """Write ``data`` at ``address`` if the firmware would accept it; returns the error code."""
        err = self.check_write(address, data)
        if err:
            return err
        end = address + len(data)
        if address <= ct.TORQUE_ENABLE < end:
            value = data[ct.TORQUE_ENABLE - address]
            self.torque_write_count += 1
            self.torque_log.append(TorqueWrite(time.monotonic_ns(), value))
            if value and self.hardware_error:
                # A servo in shutdown keeps its torque off until it is rebooted.
                off = bytearray(data)
                off[ct.TORQUE_ENABLE - address] = 0
                data = bytes(off)
        was_on = self.torque_on
        self.table[address:end] = data
        self._at_rest = False
        if address == ct.GOAL_POSITION and end == ct.GOAL_POSITION + 4:
            # The per-cycle sync write: only the goal changed, skip the full refresh.
            self._goal_reg = int.from_bytes(data, "little", signed=True)
            return 0
        if address <= ct.ID < end or address <= ct.SECONDARY_ID < end:
            self.identity_changed = True
        self._refresh()
        if self.torque_on and not was_on:
            # Restart tracking from rest, so a stale velocity does not carry into the new goal.
            self.vel_raw = 0.0
            self._stall_s = 0.0
        position_mode = self.mode == ct.OperatingMode.POSITION
        if position_mode and (
            (self.torque_on and not was_on) or address <= ct.OPERATING_MODE < end
        ):
            self.reset_turns()
        return 0

    def register_write(self, address: int, data: bytes) -> int:
        """REG_WRITE: check now, apply on ACTION."""
        err = self.check_write(address, data)
        if err:
            return err
        self._registered = (address, bytes(data))
        self.table[ct.REGISTERED_INSTRUCTION] = 1
        return 0

    def action(self) -> int:
        """ACTION: apply the registered write, if any."""
        if self._registered is None:
            return 0
        address, data = self._registered
        self._registered = None
        self.table[ct.REGISTERED_INSTRUCTION] = 0
        return self.write(address, data)

    def reboot(self, now: float, boot_time_s: float) -> None:
        """REBOOT: RAM back to defaults (torque off, hardware error cleared), silent while booting.

        Like a power cycle, it forgets the whole turns Present Position had counted.
        """
        self._turn_base = self._single_turn_base()
        self._init_ram()
        self.vel_raw = 0.0
        self.current = 0.0
        self._stall_s = 0.0
        self.boot_until = now + boot_time_s
        self._t = now

    def factory_reset(self, option: int, now: float, boot_time_s: float) -> int:
        """FACTORY_RESET: 0xFF everything, 0x01 all but ID, 0x02 all but ID and baud rate."""
        if option not in (0x01, 0x02, 0xFF):
            return p.ERR_DATA_RANGE
        if self.torque_on:
            return p.ERR_ACCESS
        self._init_eeprom(keep_id=option in (0x01, 0x02), keep_baud=option == 0x02)
        self.reboot(now, boot_time_s)
        return 0

    def set_hardware_error(self, bits: int) -> None:
        """Raise Hardware Error Status bits; like the firmware's shutdown, torque goes off."""
        self.table[ct.HARDWARE_ERROR_STATUS] |= bits & 0xFF
        if bits:
            self.table[ct.TORQUE_ENABLE] = 0
        self._at_rest = False
        self._refresh()

    def touch(self, now: float) -> None:
        """An instruction for this servo arrived (feeds the bus watchdog)."""
        self.last_comm = now

    # -- physics ----------------------------------------------------------------------------
    def step(self, now: float) -> None:
        """Advance the physical model to ``now`` (monotonic seconds) and refresh 120..146."""
        dt = now - self._t
        if dt <= 0.0:
            return
        self._t = now
        old = self.raw
        tracking_error = 0.0
        drives = self.torque_on and not self.hardware_error
        mirror = self.mirror_of
        if not drives and mirror is None and self.external_rad is None:
            # Torque off and nobody moving it: only the realtime tick changes.
            if self._at_rest:
                self._state_dirty = True  # only for the realtime tick
                return
            self._at_rest = True
        else:
            self._at_rest = False
        if drives and self._watchdog > 0 and now - self.last_comm > self._watchdog * 0.020:
            # Bus watchdog: the host went quiet, so the servo stops where it is.
            self.table[BUS_WATCHDOG] = 0xFF
            self._put(ct.GOAL_POSITION, 4, self._raw_to_reg(self.raw), signed=True)
            self.table[ct.GOAL_VELOCITY : ct.GOAL_VELOCITY + 4] = bytes(4)
            self._refresh()
        if mirror is not None:
            # Rigidly coupled to its primary: same angle, and it shares the load.
            self.raw = mirror.raw
            self.vel_raw = mirror.vel_raw
            self.current = mirror.current if drives else 0.0
        elif self.external_rad is not None:
            self.raw = self.joint_to_raw(self.external_rad)
            self.vel_raw = (self.raw - old) / dt
            if drives and self.mode in _POSITION_MODES:
                tracking_error = self._reg_to_raw(self._goal_reg) - self.raw
        elif drives and self.mode in _POSITION_MODES:
            target = self._reg_to_raw(self._goal_reg)
            cap = self._cap_mode5 if self.mode == ct.OperatingMode.CURRENT_BASED_POSITION else 1.0
            if cap > 0.0:
                step = (target - old) * (1.0 - math.exp(-dt / self.time_constant_s))
                vmax = self._vmax_raw * dt
                step = max(-vmax, min(vmax, step))
                new = old + step
                block = self.block_below_rad
                if block is not None:
                    # The object stops the jaws in the joint's frame, whichever way it is mounted.
                    joint_new = self.raw_to_joint(new)
                    if joint_new < block:
                        stop = max(joint_new, min(self.raw_to_joint(old), block))
                        new = self.joint_to_raw(stop)
                self.raw = new
            self.vel_raw = (self.raw - old) / dt
            tracking_error = target - self.raw
        elif drives and self.mode == ct.OperatingMode.VELOCITY:
            target_v = self._sign * self._goal_vel * _TICKS_S_PER_VELOCITY_UNIT
            target_v = max(-self._vmax_raw, min(self._vmax_raw, target_v))
            self.vel_raw += (target_v - self.vel_raw) * (1.0 - math.exp(-dt / self.time_constant_s))
            self.raw += self.vel_raw * dt
        else:
            self.vel_raw = 0.0
        if mirror is None:
            self._update_current(drives, tracking_error, dt)
        # Registers 120..146 are packed when someone reads them, not on every step.
        self._state_dirty = True

    def _update_current(self, drives: bool, tracking_error: float, dt: float) -> None:
        full = self._full_scale
        if not drives:
            self.current = self._rng.uniform(-1.0, 1.0)
            self._stall_s = 0.0
            return
        # Roughly a P controller: full scale at about 120 ticks (10 degrees) of error, a
        # little friction while moving, and sensor noise.
        demand = full * tracking_error / 120.0 + 0.02 * full * _sign(self.vel_raw)
        demand += self._rng.uniform(-0.004, 0.004) * full
        cap = self._cap_mode5 if self.mode == ct.OperatingMode.CURRENT_BASED_POSITION else full
        self.current = max(-cap, min(cap, demand))
        if self.mode != ct.OperatingMode.CURRENT_BASED_POSITION and abs(demand) >= full:
            # Stalled at full current: the firmware's overload protection trips after a while.
            self._stall_s += dt
            if (
                self._stall_s > self.overload_after_s
                and self.table[ct.SHUTDOWN] & ct.HardwareError.OVERLOAD
            ):
                self.set_hardware_error(ct.HardwareError.OVERLOAD)
        else:
            self._stall_s = 0.0
        # Temperature drifts towards a load-dependent level over about a minute.
        load = (self.current / full) if full else 0.0
        self.temperature += (30.0 + 25.0 * load * load - self.temperature) * min(1.0, dt / 60.0)

    def _write_state(self, now: float) -> None:
        self._state_dirty = False
        sign = self._sign
        pos_reg = self._raw_to_reg(self.raw)
        vel_reg = int(round(sign * self.vel_raw / _TICKS_S_PER_VELOCITY_UNIT))
        cur_reg = int(round(sign * self.current))
        full = self._full_scale or 1.0
        pwm = int(round(885.0 * max(-1.0, min(1.0, cur_reg / full))))
        moving = 1 if abs(vel_reg) > self._moving_threshold else 0
        in_position = 1 if abs(self._goal_reg - pos_reg) <= max(self._moving_threshold, 2) else 0
        moving_status = in_position | (moving << 1)
        volts = self.limits.supply_voltage - int(round(3.0 * abs(cur_reg) / full))
        tick = int((now - self._t0) * 1000.0) % 32768
        goal_traj = self._goal_reg if self.torque_on else pos_reg
        _STATE.pack_into(
            self.table,
            ct.REALTIME_TICK,
            tick,
            moving,
            moving_status,
            pwm,
            max(-32768, min(32767, cur_reg)),
            vel_reg,
            pos_reg,
            vel_reg,
            goal_traj,
            max(0, volts),
            int(self.temperature),
        )


def _sign(x: float) -> float:
    return 1.0 if x > 1.0 else (-1.0 if x < -1.0 else 0.0)
