"""What must hold before followers start to follow: calibration and the start pose.

:func:`evaluate` runs at every record start, in ``teleop doctor`` and in the operator app's
checks: every arm has an active calibration
record that matches the motors that answered, is young enough, and no follower would have to
jump more than ``max_pose_delta_rad`` on the first cycle. Problems are refused in one line
naming the arm, joint, measured value and the fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.checks import (
    Problem,
    follower_wraps,
    missing_records,
    pose_deltas,
    record_mismatches,
    stale_records,
)
from calibration.mapping import JointMapping, mappings_for
from calibration.records import CalibrationError
from calibration.store import StoredRecord, active_records
from rigs.dynamixel.bus import MotorInfo
from rigs.spec import RigSpec
from teleop.errors import TeleopError
from teleop.recording.policy import DEFAULT_POLICY, RecordingPolicy


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


@dataclass(frozen=True)
class Preflight:
    """What the pre-flight evaluation found: every problem (failures and warnings) and the
    mappings the followers would follow with (None when an arm's record failed)."""

    problems: list[Problem]
    mappings: dict[str, JointMapping] | None

    @property
    def failures(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "fail"]


def evaluate(
    spec: RigSpec,
    active: Mapping[str, StoredRecord],
    *,
    motors: Mapping[str, list[MotorInfo]],
    positions: Mapping[str, np.ndarray],
    policy: RecordingPolicy = DEFAULT_POLICY,
    camera_serials: Mapping[str, str] | None = None,
    camera_intrinsics: Mapping[str, Any] | None = None,
    cameras_required: bool = False,
    now: dt.datetime | None = None,
) -> Preflight:
    """The one pre-flight evaluation of a rig's calibration and start pose.

    ``teleop doctor`` and the operator app's checks (with the cameras' serials and
    intrinsics) and every record start (:class:`~teleop.recording.recorder.Recorder`) call
    it, so they agree: records present (unless ``policy.allow_uncalibrated``: then identity
    mappings), matching the motors that answered, younger than the policy's age; followers'
    ranges within one turn; every follower within ``policy.max_pose_delta_rad`` of where its
    leader sends it.
    """
    recorded = all(a.name in active and active[a.name].kind == "arm" for a in spec.arms)
    if not recorded and policy.allow_uncalibrated:
        identity = uncalibrated(spec).mappings
        deltas = pose_deltas(spec, identity, positions, threshold_rad=policy.max_pose_delta_rad)
        return Preflight(deltas, identity)
    problems = missing_records(spec, active, cameras_required=cameras_required)
    problems += record_mismatches(
        spec,
        active,
        motors=motors,
        camera_serials=camera_serials or {},
        camera_intrinsics=camera_intrinsics or {},
    )
    problems += stale_records(
        active, now=now or dt.datetime.now(dt.UTC), max_age_days=policy.max_calibration_age_days
    )
    arm_names = {a.name for a in spec.arms}
    if any(p.severity == "fail" and p.subject in arm_names for p in problems):
        return Preflight(problems, None)
    try:
        mappings = mappings_for(spec, active)
    except CalibrationError as exc:
        problems.append(
            Problem(
                "calibration mapping", "fail", spec.id, None, str(exc), "", "recalibrate the rig"
            )
        )
        return Preflight(problems, None)
    problems += follower_wraps(spec, mappings)
    problems += pose_deltas(spec, mappings, positions, threshold_rad=policy.max_pose_delta_rad)
    return Preflight(problems, mappings)
