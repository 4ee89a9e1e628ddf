"""Checks before recording, as pure functions: data in, a list of problems out.

Each :class:`Problem` names the arm or camera (and joint), the measured value, the threshold
it broke and the fix in one line, so the same list serves ``teleop doctor``, the record start
and a GUI. Nothing here touches a device or the disk; callers gather the readings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from calibration.mapping import JointMapping
from calibration.records import ArmCalibration, CameraCalibration, IntrinsicsLike
from calibration.store import StoredRecord, recalibrate_command
from rigs.dynamixel import control_table as ct
from rigs.dynamixel.bus import MotorInfo
from rigs.spec import RigSpec

Severity = Literal["fail", "warn"]

DEFAULT_MAX_AGE_DAYS = 7.0
DEFAULT_POSE_DELTA_RAD = 0.8  # GELLO refuses to start above this


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where, what was measured against which limit, and the fix."""

    check: str
    severity: Severity
    subject: str
    joint: str | None
    measured: str
    threshold: str
    fix: str

    @property
    def where(self) -> str:
        return f"{self.subject}.{self.joint}" if self.joint else self.subject

    def __str__(self) -> str:
        limit = f" (limit {self.threshold})" if self.threshold else ""
        return f"{self.where}: {self.check}: {self.measured}{limit}; {self.fix}"


def _fail(check: str, subject: str, measured: str, fix: str, **kw: str | None) -> Problem:
    return Problem(
        check, "fail", subject, kw.get("joint"), measured, kw.get("threshold") or "", fix
    )


def missing_records(
    spec: RigSpec,
    active: Mapping[str, StoredRecord],
    *,
    cameras_required: bool = False,
) -> list[Problem]:
    """Arms (and cameras) without an active record. A camera's is a warning unless required."""
    out = []
    for arm in spec.arms:
        r = active.get(arm.name)
        if r is None or r.kind != "arm":
            out.append(
                _fail(
                    "calibration record",
                    arm.name,
                    "none",
                    f"run `{recalibrate_command(spec.id, 'arm', arm.name)}`",
                )
            )
    for cam in spec.cameras:
        r = active.get(cam.name)
        if r is None or r.kind != "camera":
            out.append(
                Problem(
                    "calibration record",
                    "fail" if cameras_required else "warn",
                    cam.name,
                    None,
                    "none",
                    "",
                    f"run `{recalibrate_command(spec.id, 'camera', cam.name)}`",
                )
            )
    return out


def record_mismatches(
    spec: RigSpec,
    active: Mapping[str, StoredRecord],
    *,
    motors: Mapping[str, Sequence[MotorInfo]] | None = None,
    camera_serials: Mapping[str, str] | None = None,
    camera_intrinsics: Mapping[str, IntrinsicsLike] | None = None,
) -> list[Problem]:
    """Records that do not fit the rig: joints, roles, motor ids/models, camera serials/sizes.

    ``motors`` (per arm, what answered at connect) and ``camera_serials``/``camera_intrinsics``
    (per opened camera) are compared when given; the rig file always is.
    """
    out: list[Problem] = []
    for arm in spec.arms:
        r = active.get(arm.name)
        if r is None or not isinstance(r.record.calibration, ArmCalibration):
            continue
        cal = r.record.calibration
        fix = f"run `{recalibrate_command(spec.id, 'arm', arm.name)}`"
        if cal.joint_names != arm.joint_names:
            out.append(
                _fail(
                    "record joints",
                    arm.name,
                    f"record {r.id} has {cal.joint_names}",
                    fix,
                    threshold=f"rig file: {arm.joint_names}",
                )
            )
            continue
        if cal.role != arm.role or cal.follows != arm.follows:
            out.append(
                _fail(
                    "record role",
                    arm.name,
                    f"record {r.id} is a {cal.role} following {cal.follows}",
                    fix,
                    threshold=f"rig file: {arm.role} following {arm.follows}",
                )
            )
        expected: dict[int, tuple[str, str]] = {}
        for j in arm.joints:
            expected[j.id] = (j.name, j.model)
            if j.shadow_id is not None:
                expected[j.shadow_id] = (j.name, j.model)
        recorded = {m.id: (m.joint, m.model) for m in cal.motors}
        for mid in sorted(set(expected) | set(recorded)):
            want, got = expected.get(mid), recorded.get(mid)
            if want != got:
                out.append(
                    _fail(
                        "record motors",
                        arm.name,
                        f"record {r.id}: motor {mid} is {got[1] + ' on ' + got[0] if got else 'absent'}",
                        fix,
                        joint=(want or got or (None,))[0],
                        threshold=f"rig file: {want[1] + ' on ' + want[0] if want else 'no motor ' + str(mid)}",
                    )
                )
        live = (motors or {}).get(arm.name)
        if live:
            by_id = {m.id: m for m in cal.motors}
            for m in live:
                rec = by_id.get(m.id)
                if rec is None or rec.model != m.model:
                    continue  # a model change is caught above or by the ping check
                if rec.firmware != m.firmware:
                    out.append(
                        Problem(
                            "motor firmware",
                            "warn",
                            arm.name,
                            m.joint,
                            f"motor {m.id} runs firmware {m.firmware}",
                            f"record {r.id}: {rec.firmware}",
                            f"a motor was replaced or updated: {fix}",
                        )
                    )
    for cam in spec.cameras:
        r = active.get(cam.name)
        if r is None or not isinstance(r.record.calibration, CameraCalibration):
            continue
        cal_c = r.record.calibration
        fix = f"run `{recalibrate_command(spec.id, 'camera', cam.name)}`"
        if cal_c.driver != cam.driver:
            out.append(
                _fail(
                    "record camera",
                    cam.name,
                    f"record {r.id} is for a {cal_c.driver} camera",
                    fix,
                    threshold=f"rig file: {cam.driver}",
                )
            )
        wanted_serial = (camera_serials or {}).get(cam.name) or cam.serial
        if wanted_serial and cal_c.serial and wanted_serial != cal_c.serial:
            out.append(
                _fail(
                    "camera serial",
                    cam.name,
                    f"record {r.id} is for serial {cal_c.serial}",
                    fix,
                    threshold=f"camera: {wanted_serial}",
                )
            )
        size = (cal_c.intrinsics.width, cal_c.intrinsics.height)
        live_i = (camera_intrinsics or {}).get(cam.name)
        want_size = (live_i.width, live_i.height) if live_i is not None else (cam.width, cam.height)
        if size != want_size:
            out.append(
                _fail(
                    "camera resolution",
                    cam.name,
                    f"record {r.id} is for {size[0]}x{size[1]}",
                    fix,
                    threshold=f"{want_size[0]}x{want_size[1]}",
                )
            )
    return out


def stale_records(
    active: Mapping[str, StoredRecord],
    *,
    now: dt.datetime,
    max_age_days: float = DEFAULT_MAX_AGE_DAYS,
) -> list[Problem]:
    """Records older than ``max_age_days`` (and records dated in the future)."""
    out = []
    for target, r in active.items():
        age_days = (now - r.record.created).total_seconds() / 86400.0
        fix = f"run `{recalibrate_command(r.record.rig_id, r.kind, target)}`"
        if age_days > max_age_days:
            out.append(
                _fail(
                    "calibration age",
                    target,
                    f"record {r.id} is {age_days:.1f} days old",
                    fix,
                    threshold=f"{max_age_days:g} days",
                )
            )
        elif age_days < -1.0 / 24.0:
            out.append(
                _fail(
                    "calibration age",
                    target,
                    f"record {r.id} is dated {-age_days * 24:.1f} h in the future",
                    f"fix the clock that made it (or this computer's), then {fix}",
                    threshold="now",
                )
            )
    return out


def pose_deltas(
    spec: RigSpec,
    mappings: Mapping[str, JointMapping],
    positions: Mapping[str, np.ndarray],
    *,
    threshold_rad: float = DEFAULT_POSE_DELTA_RAD,
) -> list[Problem]:
    """Followers whose pose is far from where their leader would send them.

    ``positions``: bus angles per arm read now. The delta is the mapped leader goal minus the
    follower's angle, per joint: what the follower would have to jump at the first cycle.
    """
    out = []
    for follower in spec.followers:
        m = mappings.get(follower.name)
        if m is None or m.leader not in positions or follower.name not in positions:
            continue
        goal = m.map(np.asarray(positions[m.leader], dtype=float))
        delta = goal - np.asarray(positions[follower.name], dtype=float)
        for k, joint in enumerate(follower.joint_names):
            if abs(delta[k]) > threshold_rad:
                out.append(
                    _fail(
                        "pose delta",
                        follower.name,
                        f"{delta[k]:+.2f} rad from {m.leader}",
                        f"move {m.leader}'s {joint} until it matches {follower.name}'s, then "
                        "start again",
                        joint=joint,
                        threshold=f"{threshold_rad:.2f} rad",
                    )
                )
    return out


def follower_wraps(spec: RigSpec, mappings: Mapping[str, JointMapping]) -> list[Problem]:
    """Follower joints whose calibrated range needs goals beyond one servo turn.

    In Position Control Mode a goal must lie within ticks 0..4095; a range that crosses the
    wrap cannot be followed without the servo swinging the long way round.
    """
    out = []
    lo_ok = ct.ticks_to_rad(0)
    hi_ok = ct.ticks_to_rad(ct.TICKS_PER_REV - 1)
    for follower in spec.followers:
        m = mappings.get(follower.name)
        if m is None or m.goal_lower_rad is None or m.goal_upper_rad is None:
            continue
        for k, joint in enumerate(follower.joint_names):
            lo, hi = float(m.goal_lower_rad[k]), float(m.goal_upper_rad[k])
            if lo < lo_ok or hi > hi_ok:
                out.append(
                    _fail(
                        "follower wrap",
                        follower.name,
                        f"goals {lo:+.2f}..{hi:+.2f} rad",
                        "re-seat the servo horn (or set its Homing Offset) so the joint's range "
                        "lies within one turn, then recalibrate",
                        joint=joint,
                        threshold=f"{lo_ok:+.2f}..{hi_ok:+.2f} rad",
                    )
                )
    return out


def disk_space(
    path: str, free_bytes: int, *, min_free_gb: float, warn_free_gb: float
) -> list[Problem]:
    """Too little free space in the data root (FAIL below ``min_free_gb``, WARN below warn)."""
    free_gb = free_bytes / 1e9
    if free_gb < min_free_gb:
        severity: Severity = "fail"
        limit = min_free_gb
    elif free_gb < warn_free_gb:
        severity, limit = "warn", warn_free_gb
    else:
        return []
    return [
        Problem(
            "disk space",
            severity,
            path,
            None,
            f"{free_gb:.1f} GB free",
            f"{limit:g} GB",
            "free space or pass --data-dir on a larger disk",
        )
    ]


def latency_timer(arm: str, port: str, timer_ms: int | None) -> list[Problem]:
    """An FTDI adapter whose USB latency timer is above 1 ms (it caps the control rate)."""
    if timer_ms is None or timer_ms <= 1:
        return []
    return [
        Problem(
            "latency timer",
            "warn",
            arm,
            None,
            f"{port}: {timer_ms} ms",
            "1 ms",
            "set it to 1 ms with a udev rule (README, Hardware)",
        )
    ]


__all__ = [
    "DEFAULT_MAX_AGE_DAYS",
    "DEFAULT_POSE_DELTA_RAD",
    "Problem",
    "disk_space",
    "follower_wraps",
    "latency_timer",
    "missing_records",
    "pose_deltas",
    "record_mismatches",
    "stale_records",
]
