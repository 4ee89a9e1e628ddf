"""Leader→follower joint mapping.

Until calibration records exist (a later step), the mapping is the identity: a follower joint
is sent to the angle its leader's joint reads. The control loop only sees this interface, so
calibrated offsets, directions and gripper normalisation replace it without touching the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JointMapping:
    """Maps one leader's joint angles to its follower's goal angles: goal = sign*leader + offset."""

    leader: str
    follower: str
    offset_rad: np.ndarray
    direction: np.ndarray
    record_id: str = "identity"

    @classmethod
    def identity(cls, leader: str, follower: str, n_joints: int) -> JointMapping:
        return cls(leader, follower, np.zeros(n_joints), np.ones(n_joints))

    def map(self, leader_rad: np.ndarray) -> np.ndarray:
        """Follower goal angles (radians) for these leader angles."""
        return self.direction * leader_rad + self.offset_rad
