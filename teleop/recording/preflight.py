"""What must hold before followers start to follow: calibration and the start pose.

Run at every record start (and by ``teleop doctor``): every arm has an active calibration
record that matches the motors that answered, is young enough, and no follower would have to
jump more than ``max_pose_delta_rad`` on the first cycle. Problems are refused in one line
naming the arm, joint, measured value and the fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.checks import (
    DEFAULT_MAX_AGE_DAYS,
    DEFAULT_POSE_DELTA_RAD,
    Problem,
    pose_deltas,
    record_mismatches,
    stale_records,
)
from calibration.mapping import JointMapping, mappings_for
from calibration.store import StoredRecord, active_records
from rigs.dynamixel.bus import MotorInfo
from rigs.spec import RigSpec
from teleop.errors import TeleopError


class PreflightError(TeleopError):
    """Recording refused: the message names the first problem and counts the others."""

    def __init__(self, problems: list[Problem]):
        more = f" (and {len(problems) - 1} more: run `teleop doctor`)" if len(problems) > 1 else ""
        super().__init__(f"cannot start: {problems[0]}{more}")
        self.problems = problems


@dataclass(frozen=True)
class Calibration:
    """The mappings the control loop will use and the records they come from."""

    mappings: dict[str, JointMapping]
    records: tuple[StoredRecord, ...]

    @property
    def calibrated(self) -> bool:
        return bool(self.records)


def uncalibrated(spec: RigSpec) -> Calibration:
    """Identity mappings: followers copy the leaders' raw angles (episodes are flagged)."""
    identity = {
        f.name: JointMapping.identity(f.follows or "", f.name, len(f.joints))
        for f in spec.followers
    }
    return Calibration(identity, ())


def load_calibration(
    spec: RigSpec, data_root: Path, *, allow_uncalibrated: bool = False
) -> Calibration:
    """Active records and mappings; a missing arm record raises unless ``allow_uncalibrated``."""
    records = tuple(active_records(data_root, spec, require_arms=not allow_uncalibrated))
    arm_records = [r for r in records if r.kind == "arm"]
    if len(arm_records) == len(spec.arms):
        return Calibration(mappings_for(spec, records), records)
    identity = {
        f.name: JointMapping.identity(f.follows or "", f.name, len(f.joints))
        for f in spec.followers
    }
    return Calibration(identity, ())


def start_problems(
    spec: RigSpec,
    calibration: Calibration,
    *,
    motors: Mapping[str, list[MotorInfo]],
    positions: Mapping[str, np.ndarray],
    max_age_days: float = DEFAULT_MAX_AGE_DAYS,
    max_pose_delta_rad: float = DEFAULT_POSE_DELTA_RAD,
    now: dt.datetime | None = None,
) -> list[Problem]:
    """Failures that must stop a recording from starting (warnings are left out)."""
    problems: list[Problem] = []
    if calibration.calibrated:
        active = {r.target: r for r in calibration.records}
        problems += record_mismatches(spec, active, motors=motors)
        problems += stale_records(
            active, now=now or dt.datetime.now(dt.UTC), max_age_days=max_age_days
        )
    problems += pose_deltas(spec, calibration.mappings, positions, threshold_rad=max_pose_delta_rad)
    return [p for p in problems if p.severity == "fail"]
