"""Safety clamps applied to every follower command before it is written."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.mapping import JointMapping
from rigs.spec import Arm, Safety


@dataclass
class Clamp:
    """Joint limits and a maximum step per cycle for one follower arm.

    The step limit is relative to the previous command, so a leader that jumps (or a first
    command far from where the follower stands) moves the follower at a bounded speed.
    """

    lower_rad: np.ndarray
    upper_rad: np.ndarray
    max_step_rad: float
    limit_hits: int = 0
    step_hits: int = 0

    @classmethod
    def for_arm(cls, arm: Arm, safety: Safety, mapping: JointMapping | None = None) -> Clamp:
        """Limits from the calibration when it has them (bus radians), else from the rig file.

        A calibrated follower's range of motion is measured in its own bus angles; the rig
        file's limits are only right for an arm whose servos read 0 rad at the joint's zero.
        """
        m = safety.joint_limit_margin_rad
        if (
            mapping is not None
            and mapping.goal_lower_rad is not None
            and mapping.goal_upper_rad is not None
        ):
            lo, hi = (
                np.asarray(mapping.goal_lower_rad, float),
                np.asarray(mapping.goal_upper_rad, float),
            )
            lower, upper = np.minimum(lo, hi) + m, np.maximum(lo, hi) - m
        else:
            lower = np.array([j.min_rad + m for j in arm.joints])
            upper = np.array([j.max_rad - m for j in arm.joints])
        return cls(lower, upper, safety.max_step_rad)

    def apply(self, target_rad: np.ndarray, previous_rad: np.ndarray) -> np.ndarray:
        """The command to write for ``target_rad`` given the last command written."""
        limited = np.clip(target_rad, self.lower_rad, self.upper_rad)
        if not np.array_equal(limited, target_rad):
            self.limit_hits += 1
        step = limited - previous_rad
        bounded = np.clip(step, -self.max_step_rad, self.max_step_rad)
        if not np.array_equal(bounded, step):
            self.step_hits += 1
        return previous_rad + bounded
