"""Squeeze both leader grippers to start an episode (ALOHA's habit), per rig.

No Qt here: the record screen feeds :class:`SqueezeDetector` the leader angles of the newest
control sample on every tick (a snapshot read, never a device call) and starts the episode,
exactly as the Start key does, when it fires.

A gripper's opening is normalised through its calibration record: 0 at the leader's calibrated
closed angle, 1 at its open angle. Both grippers must read below ``closed_below`` for
``hold_s`` without a break. After firing, or when the screen becomes ready while the grippers
are already closed, both must be seen open again first, so grippers still squeezed at the end
of an episode do not start the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from calibration.records import ArmCalibration, wrap_rad
from calibration.store import StoredRecord
from rigs.spec import RigSpec

CLOSED_BELOW = 0.2  # normalised opening under which a gripper counts as squeezed


@dataclass(frozen=True)
class LeaderGripper:
    """Where one leader's gripper is in its joint list and its calibrated ends (bus rad)."""

    leader: str
    index: int
    closed_rad: float
    open_rad: float

    def opening(self, position_rad: np.ndarray) -> float:
        """0 = calibrated closed, 1 = calibrated open (may go a little beyond either)."""
        span = self.open_rad - self.closed_rad
        return float(wrap_rad(float(position_rad[self.index]) - self.closed_rad) / span)


def leader_grippers(spec: RigSpec, records: Iterable[StoredRecord]) -> list[LeaderGripper] | None:
    """Every leader's gripper from the active records; None if any leader lacks one."""
    cals: dict[str, ArmCalibration] = {}
    for r in records:
        if isinstance(r.record.calibration, ArmCalibration):
            cals[r.record.target] = r.record.calibration
    out = []
    for leader in spec.leaders:
        cal = cals.get(leader.name)
        if leader.gripper is None or cal is None or cal.gripper is None:
            return None
        out.append(
            LeaderGripper(
                leader.name,
                leader.joint_names.index(leader.gripper),
                cal.gripper.closed_rad,
                cal.gripper.open_rad,
            )
        )
    return out or None


class SqueezeDetector:
    """Fires once when every leader gripper has stayed closed for ``hold_s``."""

    def __init__(
        self,
        grippers: list[LeaderGripper],
        hold_s: float,
        *,
        closed_below: float = CLOSED_BELOW,
    ):
        self.grippers = grippers
        self.hold_s = hold_s
        self.closed_below = closed_below
        self._released = False  # both seen open since the last fire / not-ready time
        self._since: float | None = None
        self.openings: dict[str, float] = {}
        """The last opening seen of each leader gripper (what the operator's hands did)."""
        self.updates = 0
        """Samples fed so far."""

    def reset(self) -> None:
        """Not ready to start: forget any squeeze and wait for the grippers to open again."""
        self._released = False
        self._since = None

    def squeezed(self, positions: Mapping[str, np.ndarray]) -> bool | None:
        """True if every gripper reads closed; None if a leader is missing from the sample."""
        if any(g.leader not in positions for g in self.grippers):
            return None
        return all(g.opening(positions[g.leader]) < self.closed_below for g in self.grippers)

    @property
    def released(self) -> bool:
        """Every gripper has been seen open since the last start (a squeeze may now count)."""
        return self._released

    def held_for(self, now: float) -> float:
        """Seconds the current squeeze has lasted (0 when none counts)."""
        return 0.0 if self._since is None else max(0.0, now - self._since)

    def update(self, positions: Mapping[str, np.ndarray], now: float) -> bool:
        """Feed the leaders' angles at time ``now``; True once when the squeeze is long enough."""
        closed = self.squeezed(positions)
        if closed is None:
            return False
        self.updates += 1
        self.openings = {g.leader: g.opening(positions[g.leader]) for g in self.grippers}
        if not closed:
            self._released = True
            self._since = None
            return False
        if not self._released:
            return False
        if self._since is None:
            self._since = now
        if now - self._since >= self.hold_s:
            self.reset()
            return True
        return False
