"""Dynamixel X-series facts: control-table addresses, model numbers and unit conversions.

Addresses and units follow the ROBOTIS e-Manual for the X series (XL430, XC430, XM430,
XM540, XH430, XL330). Both the driver and the virtual servo chain import from here, so the
two can never disagree about where a register lives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

# --- EEPROM area -----------------------------------------------------------------------------
MODEL_NUMBER = 0  # 2 bytes
MODEL_INFORMATION = 2  # 4 bytes
FIRMWARE_VERSION = 6  # 1 byte
ID = 7  # 1 byte
BAUD_RATE = 8  # 1 byte
RETURN_DELAY_TIME = 9  # 1 byte
DRIVE_MODE = 10  # 1 byte
OPERATING_MODE = 11  # 1 byte
SECONDARY_ID = 12  # 1 byte
PROTOCOL_TYPE = 13  # 1 byte
HOMING_OFFSET = 20  # 4 bytes, signed
MOVING_THRESHOLD = 24  # 4 bytes
TEMPERATURE_LIMIT = 31  # 1 byte
MAX_VOLTAGE_LIMIT = 32  # 2 bytes
MIN_VOLTAGE_LIMIT = 34  # 2 bytes
PWM_LIMIT = 36  # 2 bytes
CURRENT_LIMIT = 38  # 2 bytes
VELOCITY_LIMIT = 44  # 4 bytes
MAX_POSITION_LIMIT = 48  # 4 bytes
MIN_POSITION_LIMIT = 52  # 4 bytes
SHUTDOWN = 63  # 1 byte
EEPROM_END = 64  # first RAM address; EEPROM writes need torque off

# --- RAM area --------------------------------------------------------------------------------
TORQUE_ENABLE = 64  # 1 byte
LED = 65  # 1 byte
STATUS_RETURN_LEVEL = 68  # 1 byte
REGISTERED_INSTRUCTION = 69  # 1 byte
HARDWARE_ERROR_STATUS = 70  # 1 byte
VELOCITY_I_GAIN = 76  # 2 bytes
VELOCITY_P_GAIN = 78  # 2 bytes
POSITION_D_GAIN = 80  # 2 bytes
POSITION_I_GAIN = 82  # 2 bytes
POSITION_P_GAIN = 84  # 2 bytes
GOAL_PWM = 100  # 2 bytes
GOAL_CURRENT = 102  # 2 bytes, signed
GOAL_VELOCITY = 104  # 4 bytes, signed
PROFILE_ACCELERATION = 108  # 4 bytes
PROFILE_VELOCITY = 112  # 4 bytes
GOAL_POSITION = 116  # 4 bytes, signed
REALTIME_TICK = 120  # 2 bytes
MOVING = 122  # 1 byte
MOVING_STATUS = 123  # 1 byte
PRESENT_PWM = 124  # 2 bytes, signed
PRESENT_CURRENT = 126  # 2 bytes, signed
PRESENT_VELOCITY = 128  # 4 bytes, signed
PRESENT_POSITION = 132  # 4 bytes, signed
VELOCITY_TRAJECTORY = 136  # 4 bytes
POSITION_TRAJECTORY = 140  # 4 bytes
PRESENT_INPUT_VOLTAGE = 144  # 2 bytes
PRESENT_TEMPERATURE = 146  # 1 byte
CONTROL_TABLE_SIZE = 147

# The block the control loop reads every cycle: current, velocity and position are adjacent,
# so one sync read of 10 bytes from 126 returns all three.
STATE_BLOCK_START = PRESENT_CURRENT
STATE_BLOCK_LENGTH = 10


class OperatingMode(IntEnum):
    """Values of register 11 (Operating Mode)."""

    CURRENT = 0
    VELOCITY = 1
    POSITION = 3
    EXTENDED_POSITION = 4
    CURRENT_BASED_POSITION = 5
    PWM = 16


class HardwareError(IntEnum):
    """Bits of register 70 (Hardware Error Status)."""

    INPUT_VOLTAGE = 0x01
    OVERHEATING = 0x04
    MOTOR_ENCODER = 0x08
    ELECTRICAL_SHOCK = 0x10
    OVERLOAD = 0x20


def describe_hardware_error(bits: int) -> str:
    """Human-readable list of the errors set in a Hardware Error Status value."""
    names = [e.name.lower().replace("_", " ") for e in HardwareError if bits & e.value]
    return ", ".join(names) if names else "none"


@dataclass(frozen=True)
class ModelInfo:
    """What the driver needs to know about one servo model."""

    name: str
    number: int
    has_current_sensor: bool
    current_unit_ma: float  # mA per Present Current unit (0 when there is no current sensor)
    default_current_limit: int  # register units


TICKS_PER_REV = 4096
CENTER_TICKS = 2048
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV
VELOCITY_UNIT_RPM = 0.229
RAD_S_PER_VELOCITY_UNIT = VELOCITY_UNIT_RPM * 2.0 * math.pi / 60.0

MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("XL330-M077", 1190, True, 1.0, 1750),
        ModelInfo("XL330-M288", 1200, True, 1.0, 1750),
        ModelInfo("XL430-W250", 1060, False, 0.0, 0),
        ModelInfo("XC430-W150", 1070, False, 0.0, 0),
        ModelInfo("XC430-W240", 1080, False, 0.0, 0),
        ModelInfo("XM430-W210", 1030, True, 2.69, 1193),
        ModelInfo("XM430-W350", 1020, True, 2.69, 1193),
        ModelInfo("XH430-W350", 1010, True, 2.69, 648),
        ModelInfo("XM540-W150", 1130, True, 2.69, 2047),
        ModelInfo("XM540-W270", 1120, True, 2.69, 2047),
    )
}
MODEL_BY_NUMBER: dict[int, ModelInfo] = {m.number: m for m in MODELS.values()}


def ticks_to_rad(ticks: int | float) -> float:
    """Present/Goal Position ticks to radians, 0 rad at the centre tick (2048)."""
    return (ticks - CENTER_TICKS) * RAD_PER_TICK


def rad_to_ticks(rad: float) -> int:
    """Radians to the nearest Goal Position tick, 0 rad at the centre tick (2048)."""
    return int(round(rad / RAD_PER_TICK)) + CENTER_TICKS
