"""How a virtual arm's servos sit in their joints: the truth a calibration must find.

``ideal`` mounting keeps leader and follower readings equal; ``seeded`` gives every servo an
offset and direction (and each joint its ends of travel) drawn from a seed, as a real build
has, which only a calibration recovers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rigs.dynamixel import control_table as ct
from rigs.spec import Arm

if TYPE_CHECKING:
    pass

# --- how the servos sit in their joints (the truth a calibration must find) -------------------

MountingKind = Literal["ideal", "seeded"]


@dataclass(frozen=True)
class JointTruth:
    """One joint of a virtual arm as built: mounting of its servo and its ends of travel.

    At joint angle 0 the motor shaft is at tick ``2048 + offset_ticks``; positive joint motion
    turns it by ``direction``. ``stop_min_rad``/``stop_max_rad`` (joint frame) are as far as
    the hand moves the joint in a calibration sweep.
    """

    name: str
    id: int
    offset_ticks: int
    direction: int
    stop_min_rad: float
    stop_max_rad: float

    def reading_rad(self, joint_rad: float) -> float:
        """Present Position in radians (0 at tick 2048), within one turn, at ``joint_rad``."""
        rad = (self.offset_ticks + self.direction * joint_rad / ct.RAD_PER_TICK) * ct.RAD_PER_TICK
        return math.pi - (math.pi - rad) % (2.0 * math.pi)  # into (-pi, pi]


@dataclass(frozen=True)
class ArmTruth:
    """A virtual arm as built: per joint mounting and travel, gripper open/closed (joint frame)."""

    arm: str
    joints: tuple[JointTruth, ...]
    gripper: str | None = None
    gripper_open_rad: float | None = None
    gripper_closed_rad: float | None = None

    def joint(self, name: str) -> JointTruth:
        """The joint called ``name`` (KeyError if none)."""
        for j in self.joints:
            if j.name == name:
                return j
        raise KeyError(name)


# Far enough from the single-turn ends that a follower's goals never need a second turn.
_FOLLOWER_WRAP_MARGIN_TICKS = 40


def arm_truth(arm: Arm, mounting: MountingKind = "ideal", seed: int = 0) -> ArmTruth:
    """How the servos of ``arm`` are mounted and how far its joints travel.

    ``ideal``: every servo at the centre tick at joint angle 0, turning with the joint; travel
    to the rig file's limits; leader and follower grippers alike. ``seeded`` (from ``seed`` and
    the arm's name): offsets of up to ~0.6 rad, one joint turned the other way round (and others
    at random), on a leader one joint whose single-turn reading wraps from 4095 to 0 inside its
    travel, ends of travel a little inside the limits and grippers with their own open/closed
    angles. A follower's travel never crosses the wrap, as its Position Control Mode could not
    follow across it.
    """
    names = [j.name for j in arm.joints]
    gi = names.index(arm.gripper) if arm.gripper is not None else None
    if mounting == "ideal":
        joints = tuple(
            JointTruth(j.name, j.id, 0, 1, float(j.min_rad), float(j.max_rad)) for j in arm.joints
        )
        grip = arm.joints[gi] if gi is not None else None
        span = grip.max_rad - grip.min_rad if grip is not None else 0.0
        return ArmTruth(
            arm.name,
            joints,
            arm.gripper,
            grip.min_rad + 0.9 * span if grip is not None else None,
            grip.min_rad + 0.08 * span if grip is not None else None,
        )
    if mounting != "seeded":
        raise ValueError(f"mounting must be 'ideal' or 'seeded', not {mounting!r}")
    rng = random.Random(f"teleop-mounting/{seed}/{arm.name}")
    body = [i for i in range(len(names)) if i != gi]
    flipped = rng.choice(body)
    wraps = rng.choice([i for i in body if i != flipped]) if arm.role == "leader" else None
    out = []
    for i, j in enumerate(arm.joints):
        stop_min = j.min_rad + rng.uniform(0.0, 0.08)
        stop_max = j.max_rad - rng.uniform(0.0, 0.08)
        direction = -1 if i == flipped or rng.random() < (0.5 if i == gi else 0.25) else 1
        if i == wraps:
            # Joint angle 0 sits just below tick 4096 (or just above tick 0), so the reading
            # wraps a few tenths of a radian into the sweep.
            offset = rng.choice((1, -1)) * (ct.CENTER_TICKS - rng.randint(60, 250))
        elif arm.role == "follower":
            reach = max(abs(stop_min), abs(stop_max)) / ct.RAD_PER_TICK
            bound = int(ct.CENTER_TICKS - _FOLLOWER_WRAP_MARGIN_TICKS - reach)
            bound = max(0, min(200, bound))
            offset = rng.randint(-bound, bound)
        else:
            offset = rng.randint(-400, 400)
        out.append(JointTruth(j.name, j.id, offset, direction, stop_min, stop_max))
    open_rad = closed_rad = None
    if gi is not None:
        lo, hi = out[gi].stop_min_rad, out[gi].stop_max_rad
        closed_rad = lo + (hi - lo) * rng.uniform(0.03, 0.12)
        open_rad = lo + (hi - lo) * rng.uniform(0.82, 0.95)
    return ArmTruth(arm.name, tuple(out), arm.gripper, open_rad, closed_rad)
