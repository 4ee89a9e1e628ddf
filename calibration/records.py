"""Calibration records: immutable, versioned data with a sha256 over their canonical JSON.

A record describes one arm (per joint: offset, direction, range of motion; the gripper's open
and closed positions; the motors it was measured on) or one camera (intrinsics, distortion,
serial). Who calibrated, when and on which rig are part of it. The record *body* is what is
hashed: its canonical JSON is sorted keys, no insignificant whitespace, UTF-8, so the same
record always gives the same bytes and the same sha256.

Angles. A Dynamixel reading in radians (0 at tick 2048, as :mod:`rigs.dynamixel.bus` reports
it) is a *bus angle*. The calibrated *joint angle* of a joint is::

    joint = reference_rad + direction * wrap(bus - offset_rad)

where ``wrap`` brings an angle into (-pi, pi]. Because only the difference to the offset is
wrapped, a reading that counted whole turns (Present Position with torque off) and the same
position read after a power cycle (brought back within one turn) give the same joint angle:
no multi-turn surprise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rigs.errors import UserError

FORMAT: Literal["teleop-calibration/1"] = "teleop-calibration/1"


class CalibrationError(UserError, RuntimeError):
    """A calibration problem the user can fix; the message is one line saying what and how."""


class CalibrationRecordError(CalibrationError):
    """A record file that cannot be used (unreadable, not JSON, wrong fields)."""


class CalibrationIntegrityError(CalibrationRecordError):
    """A record file whose content no longer matches its sha256 (altered after writing)."""


class CalibrationMissingError(CalibrationError):
    """No (usable) calibration record for an arm or camera that needs one."""


def wrap_rad(x: Any) -> Any:
    """Angle(s) into (-pi, pi]; works on floats and numpy arrays.

    Angles already in range come back bit-for-bit unchanged (the identity mapping is exact).
    """
    wrapped = math.pi - (math.pi - x) % (2.0 * math.pi)
    if isinstance(x, np.ndarray):
        return np.where((x > -math.pi) & (x <= math.pi), x, wrapped)
    return x if -math.pi < x <= math.pi else wrapped


def canonical_json(data: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no insignificant whitespace, UTF-8, no NaN."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_utc(t: dt.datetime) -> str:
    """ISO 8601 UTC with microseconds and a Z, e.g. 2025-01-02T03:04:05.678901Z."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MotorRecord(_Frozen):
    """One motor as it answered at calibration (``DynamixelBus.motors``)."""

    id: int = Field(ge=0, le=252)
    joint: str
    model: str
    model_number: int
    firmware: int
    shadow_of: int | None = None


class JointCalibration(_Frozen):
    """One joint: where the reference pose reads, which way it turns, how far it went.

    ``offset_rad`` is the bus angle at the reference pose, brought within one turn
    ((-pi, pi]); ``offset_ticks`` the raw Present Position it came from. ``reference_rad`` is
    the joint angle the reference pose defines. ``min_rad``/``max_rad`` is the range of motion
    seen in the sweep, in joint angles.
    """

    name: str
    offset_rad: float = Field(gt=-math.pi - 1e-9, le=math.pi + 1e-9)
    offset_ticks: int
    direction: Literal[1, -1]
    reference_rad: float = 0.0
    min_rad: float
    max_rad: float

    @model_validator(mode="after")
    def _check(self) -> JointCalibration:
        if self.min_rad > self.max_rad:
            raise ValueError(f"joint {self.name}: min_rad {self.min_rad} above max_rad")
        return self

    def to_joint(self, bus_rad: Any) -> Any:
        """Joint angle(s) for bus angle(s), whatever turn the reading counted."""
        return self.reference_rad + self.direction * wrap_rad(bus_rad - self.offset_rad)

    def to_bus(self, joint_rad: Any) -> Any:
        """The bus angle (near the offset, not wrapped) at which the joint is at ``joint_rad``."""
        return self.offset_rad + self.direction * (joint_rad - self.reference_rad)


class GripperCalibration(_Frozen):
    """A gripper's fully open and fully closed bus angles, near its offset.

    The leader→follower mapping sends the leader's closed..open onto the follower's
    closed..open linearly (:func:`calibration.mapping.mappings_for`).
    """

    joint: str
    open_rad: float
    closed_rad: float

    @model_validator(mode="after")
    def _check(self) -> GripperCalibration:
        if abs(self.open_rad - self.closed_rad) < 1e-3:
            raise ValueError(f"gripper {self.joint}: open and closed are the same angle")
        return self


class ArmCalibration(_Frozen):
    """The calibration of one arm."""

    kind: Literal["arm"] = "arm"
    arm: str
    role: Literal["leader", "follower"]
    follows: str | None = None
    port: str
    adapter_serial: str | None = None
    motors: list[MotorRecord]
    joints: list[JointCalibration] = Field(min_length=1)
    gripper: GripperCalibration | None = None

    @property
    def target(self) -> str:
        return self.arm

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    def joint(self, name: str) -> JointCalibration:
        for j in self.joints:
            if j.name == name:
                return j
        raise KeyError(name)

    def to_joint(self, bus_rad: Any) -> Any:
        """Joint angles for one reading of the whole arm (bus angles in joint order)."""
        x = np.asarray(bus_rad, dtype=float)
        return np.array([j.to_joint(v) for j, v in zip(self.joints, x, strict=True)])


class IntrinsicsLike(Protocol):
    """What :class:`rigs.cameras.base.Intrinsics` offers (any object with these fields)."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fx(self) -> float: ...
    @property
    def fy(self) -> float: ...
    @property
    def cx(self) -> float: ...
    @property
    def cy(self) -> float: ...
    @property
    def distortion_model(self) -> str: ...
    @property
    def coeffs(self) -> Any: ...


class CameraIntrinsics(_Frozen):
    """Pinhole intrinsics and distortion, as CameraInfo carries them."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str
    coeffs: list[float]

    @classmethod
    def from_intrinsics(cls, obj: IntrinsicsLike) -> CameraIntrinsics:
        """From a camera driver's ``intrinsics()`` (or anything with the same fields)."""
        return cls(
            width=int(obj.width),
            height=int(obj.height),
            fx=float(obj.fx),
            fy=float(obj.fy),
            cx=float(obj.cx),
            cy=float(obj.cy),
            distortion_model=str(obj.distortion_model),
            coeffs=[float(c) for c in obj.coeffs],
        )


class CameraCalibration(_Frozen):
    """The calibration of one camera: the device it was read from and its intrinsics."""

    kind: Literal["camera"] = "camera"
    camera: str
    driver: str
    serial: str | None = None
    model: str = ""
    firmware: str = ""
    intrinsics: CameraIntrinsics

    @property
    def target(self) -> str:
        return self.camera


Calibration = Annotated[ArmCalibration | CameraCalibration, Field(discriminator="kind")]


class CalibrationRecord(_Frozen):
    """One calibration record body: what is hashed, stored and attached to episodes."""

    format: Literal["teleop-calibration/1"] = FORMAT
    rig_id: str = Field(min_length=1)
    operator: str = Field(min_length=1)
    created_utc: str = Field(description="ISO 8601 UTC, e.g. 2025-01-02T03:04:05.678901Z")
    software_version: str = ""
    notes: str = ""
    calibration: Calibration

    @model_validator(mode="after")
    def _check(self) -> CalibrationRecord:
        try:
            parse_utc(self.created_utc)
        except ValueError:
            raise ValueError(
                f"created_utc {self.created_utc!r} is not like 2025-01-02T03:04:05.678901Z"
            ) from None
        return self

    @property
    def kind(self) -> str:
        return self.calibration.kind

    @property
    def target(self) -> str:
        """The arm or camera the record is for."""
        return self.calibration.target

    @property
    def created(self) -> dt.datetime:
        return parse_utc(self.created_utc)

    def body(self) -> dict[str, Any]:
        """The record as plain JSON data (what is hashed)."""
        return self.model_dump(mode="json")

    def canonical_bytes(self) -> bytes:
        """Canonical JSON of the body."""
        return canonical_json(self.body())

    def sha256(self) -> str:
        return sha256_hex(self.canonical_bytes())

    def record_id(self) -> str:
        """``<utc>-<sha8>``: sorts by time, names the content."""
        stamp = self.created.strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{stamp}-{self.sha256()[:8]}"
