"""Leader→follower joint mapping, through the active calibration records.

The control loop calls ``mappings[follower].map(leader_reading)`` once per cycle and reads
``.leader``; everything calibration knows is folded into four arrays here, so the loop stays
one vectorised expression::

    goal = offset_rad + gain * wrap(leader - input_offset_rad)

For an ordinary joint ``input_offset_rad`` is the leader's offset (its bus angle at the
reference pose) and ``gain`` = follower direction × leader direction; for a gripper the
leader's closed..open range is scaled onto the follower's closed..open. Only the difference to
the leader's offset is wrapped into (-pi, pi], so a leader reading that counted whole turns
and the same position read after a power cycle map to the same goal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from calibration.records import (
    ArmCalibration,
    CalibrationError,
    CalibrationMissingError,
    CalibrationRecord,
    wrap_rad,
)
from calibration.store import StoredRecord, recalibrate_command
from rigs.spec import Arm, RigSpec


@dataclass(frozen=True, init=False, eq=False)
class JointMapping:
    """Maps one leader's joint angles (bus radians) to its follower's goal angles.

    ``goal = offset_rad + gain * wrap(leader - input_offset_rad)``. ``direction`` is accepted
    and readable as another name for ``gain`` (what it was called before grippers scaled).
    ``goal_lower_rad``/``goal_upper_rad`` (bus radians, or None) are the follower's calibrated
    range of motion, for clamps that should use it instead of the rig file's limits.
    """

    leader: str
    follower: str
    offset_rad: np.ndarray
    gain: np.ndarray
    input_offset_rad: np.ndarray
    record_id: str
    record_ids: tuple[str, ...]
    goal_lower_rad: np.ndarray | None
    goal_upper_rad: np.ndarray | None

    def __init__(
        self,
        leader: str,
        follower: str,
        offset_rad: np.ndarray | None = None,
        gain: np.ndarray | None = None,
        record_id: str = "identity",
        *,
        direction: np.ndarray | None = None,
        input_offset_rad: np.ndarray | None = None,
        record_ids: tuple[str, ...] = (),
        goal_lower_rad: np.ndarray | None = None,
        goal_upper_rad: np.ndarray | None = None,
    ) -> None:
        if gain is None:
            gain = direction
        if offset_rad is None or gain is None:
            raise TypeError("JointMapping needs offset_rad and gain (or direction)")
        offset = np.asarray(offset_rad, dtype=float)
        n = offset.shape[0]
        values = {
            "leader": leader,
            "follower": follower,
            "offset_rad": offset,
            "gain": np.asarray(gain, dtype=float),
            "input_offset_rad": (
                np.zeros(n) if input_offset_rad is None else np.asarray(input_offset_rad, float)
            ),
            "record_id": record_id,
            "record_ids": tuple(record_ids),
            "goal_lower_rad": None if goal_lower_rad is None else np.asarray(goal_lower_rad),
            "goal_upper_rad": None if goal_upper_rad is None else np.asarray(goal_upper_rad),
        }
        for k, v in values.items():
            object.__setattr__(self, k, v)
        if not (self.gain.shape == self.input_offset_rad.shape == (n,)):
            raise ValueError("offset_rad, gain and input_offset_rad must have one value per joint")

    @property
    def direction(self) -> np.ndarray:
        """Another name for :attr:`gain`."""
        return self.gain

    @classmethod
    def identity(cls, leader: str, follower: str, n_joints: int) -> JointMapping:
        """Goal = leader angle (no calibration)."""
        return cls(leader, follower, np.zeros(n_joints), np.ones(n_joints))

    def map(self, leader_rad: np.ndarray) -> np.ndarray:
        """Follower goal angles (radians) for these leader angles."""
        return self.offset_rad + self.gain * wrap_rad(leader_rad - self.input_offset_rad)

    def unmap(self, follower_rad: np.ndarray) -> np.ndarray:
        """The leader angles (near the leader's offsets) that map to these follower angles."""
        return self.input_offset_rad + (np.asarray(follower_rad) - self.offset_rad) / self.gain


RecordsArg = Iterable[StoredRecord | CalibrationRecord] | Mapping[str, StoredRecord]


def _by_target(records: RecordsArg) -> dict[str, tuple[str, ArmCalibration]]:
    items = records.values() if isinstance(records, Mapping) else records
    out: dict[str, tuple[str, ArmCalibration]] = {}
    for r in items:
        record = r.record if isinstance(r, StoredRecord) else r
        rid = r.id if isinstance(r, StoredRecord) else record.record_id()
        if isinstance(record.calibration, ArmCalibration):
            out[record.target] = (rid, record.calibration)
    return out


def _arm_record(
    spec: RigSpec, arm: Arm, found: dict[str, tuple[str, ArmCalibration]]
) -> tuple[str, ArmCalibration]:
    if arm.name not in found:
        raise CalibrationMissingError(
            f"arm {arm.name} of rig {spec.id} has no calibration record; run "
            f"`{recalibrate_command(spec.id, 'arm', arm.name)}`"
        )
    rid, cal = found[arm.name]
    if cal.joint_names != arm.joint_names:
        raise CalibrationError(
            f"calibration record {rid} for arm {arm.name} has joints {cal.joint_names}, the rig "
            f"file has {arm.joint_names}; run `{recalibrate_command(spec.id, 'arm', arm.name)}`"
        )
    if arm.gripper is not None and (cal.gripper is None or cal.gripper.joint != arm.gripper):
        raise CalibrationError(
            f"calibration record {rid} for arm {arm.name} has no gripper {arm.gripper!r}; run "
            f"`{recalibrate_command(spec.id, 'arm', arm.name)}`"
        )
    return rid, cal


def mapping_between(
    leader: ArmCalibration,
    follower: ArmCalibration,
    *,
    record_ids: tuple[str, str] = ("", ""),
) -> JointMapping:
    """The mapping from one calibrated leader to one calibrated follower (same joints)."""
    n = len(follower.joints)
    offset = np.empty(n)
    gain = np.empty(n)
    input_offset = np.empty(n)
    lower = np.empty(n)
    upper = np.empty(n)
    lg, fg = leader.gripper, follower.gripper
    for k, (lj, fj) in enumerate(zip(leader.joints, follower.joints, strict=True)):
        if lg is not None and fg is not None and fj.name == fg.joint == lg.joint:
            # Leader closed..open onto follower closed..open (both near their offsets, so
            # their differences are true angles, not wrapped ones).
            gain[k] = (fg.open_rad - fg.closed_rad) / (lg.open_rad - lg.closed_rad)
            input_offset[k] = lg.closed_rad
            offset[k] = fg.closed_rad
            ends = (fg.closed_rad, fg.open_rad)
        else:
            # joint = ref_L + d_L * wrap(x - off_L); goal = off_F + d_F * (joint - ref_F)
            gain[k] = fj.direction * lj.direction
            input_offset[k] = lj.offset_rad
            offset[k] = fj.offset_rad + fj.direction * (lj.reference_rad - fj.reference_rad)
            ends = (fj.to_bus(fj.min_rad), fj.to_bus(fj.max_rad))
        lower[k], upper[k] = min(ends), max(ends)
    return JointMapping(
        leader.arm,
        follower.arm,
        offset,
        gain,
        "+".join(record_ids),
        input_offset_rad=input_offset,
        record_ids=record_ids,
        goal_lower_rad=lower,
        goal_upper_rad=upper,
    )


def mappings_for(spec: RigSpec, records: RecordsArg) -> dict[str, JointMapping]:
    """Per follower name: its mapping from its leader through the active records.

    ``records``: the active records (e.g. :func:`calibration.store.active_records`, or the
    dict of :meth:`CalibrationStore.active`); when several are given for one arm the last one
    counts. Raises :class:`CalibrationMissingError` (an arm has no record) or
    :class:`CalibrationError` (a record does not fit the rig file).
    """
    found = _by_target(records)
    out: dict[str, JointMapping] = {}
    for follower in spec.followers:
        leader = spec.arm(follower.follows or "")
        lid, lcal = _arm_record(spec, leader, found)
        fid, fcal = _arm_record(spec, follower, found)
        out[follower.name] = mapping_between(lcal, fcal, record_ids=(lid, fid))
    return out
