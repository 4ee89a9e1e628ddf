"""A recorded trajectory as the control loop's command source (``teleop replay``).

Three phases, each a milestone with the cycle that began it:

- ``approach``: from where the followers stand at the first cycle, a straight line in joint
  space to the trajectory's first command, timed so that no joint moves faster than
  ``approach_speed_rad_s``;
- ``replay``: the recorded commands at their recorded timing (scaled by ``speed``), read at
  each cycle's start time. The rig's control rate need not be the recording's: the command
  at a cycle is interpolated between the two recorded ones around it, so a recorded cycle that
  jittered across a tick is neither skipped nor sent twice;
- ``hold``: the last recorded command, for as long as the loop runs.

The object is built in the app and pickled to the control process with the ``go`` message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from teleop.control.loop import ArmSample

APPROACH, REPLAY, HOLD = "approach", "replay", "hold"


class RecordedTrajectory:
    """Follower commands recorded at ``times_s`` (seconds from the first), replayed in time.

    ``commands_rad``: per follower name, an array of shape ``(len(times_s), n_joints)`` in bus
    radians, as the control loop wrote them when recording.
    """

    uses_leaders = False

    def __init__(
        self,
        times_s: np.ndarray,
        commands_rad: Mapping[str, np.ndarray],
        *,
        period_s: float,
        speed: float = 1.0,
        approach_speed_rad_s: float = 0.3,
    ):
        times = np.asarray(times_s, dtype=float)
        if times.ndim != 1 or len(times) == 0 or np.any(np.diff(times) < 0):
            raise ValueError("times_s must be a non-empty, non-decreasing 1-D array")
        if speed <= 0 or approach_speed_rad_s <= 0 or period_s <= 0:
            raise ValueError("speed, approach_speed_rad_s and period_s must be above 0")
        self.times_s = times - times[0]
        self.commands_rad = {k: np.asarray(v, dtype=float) for k, v in commands_rad.items()}
        for name, c in self.commands_rad.items():
            if c.ndim != 2 or c.shape[0] != len(times):
                raise ValueError(f"{name}: one row of commands per time is needed")
        self.period_s = period_s
        self.speed = speed
        self.approach_speed_rad_s = approach_speed_rad_s
        self._milestones: dict[str, int] = {}
        self._approach_from: dict[str, np.ndarray] = {}
        self._approach_cycles = 0
        self._replay_start_ns = 0

    @property
    def duration_s(self) -> float:
        """Recorded seconds from the first command to the last (before ``speed``)."""
        return float(self.times_s[-1])

    def milestones(self) -> dict[str, int]:
        """``approach``, ``replay``, ``hold`` as they are reached, with their first cycle."""
        return dict(self._milestones)

    def targets(
        self, cycle: int, start_ns: int, arms: Mapping[str, ArmSample]
    ) -> dict[str, np.ndarray]:
        """This cycle's targets: approach, then the recorded commands, then the last one."""
        if APPROACH not in self._milestones:
            self._plan_approach(cycle, arms)
        k = cycle - self._milestones[APPROACH] + 1
        if k <= self._approach_cycles:
            fraction = k / self._approach_cycles
            first = {name: c[0] for name, c in self.commands_rad.items()}
            return {
                name: start + (first[name] - start) * fraction
                for name, start in self._approach_from.items()
            }
        if REPLAY not in self._milestones:
            self._milestones[REPLAY] = cycle
            self._replay_start_ns = start_ns
        if HOLD not in self._milestones:
            t_s = (start_ns - self._replay_start_ns) / 1e9 * self.speed
            if t_s <= self.times_s[-1]:
                return self._at(t_s)
            self._milestones[HOLD] = cycle
        return {name: c[-1].copy() for name, c in self.commands_rad.items()}

    def _plan_approach(self, cycle: int, arms: Mapping[str, ArmSample]) -> None:
        self._milestones[APPROACH] = cycle
        self._approach_from = {
            name: arms[name].reading.position_rad.copy() for name in self.commands_rad
        }
        distance_rad = max(
            float(np.max(np.abs(c[0] - self._approach_from[name])))
            for name, c in self.commands_rad.items()
        )
        # Whole cycles, rounded up: every step is at most the speed limit times the period.
        self._approach_cycles = math.ceil(
            distance_rad / (self.approach_speed_rad_s * self.period_s) - 1e-9
        )

    def _at(self, t_s: float) -> dict[str, np.ndarray]:
        times = self.times_s
        i = int(np.searchsorted(times, t_s, side="right"))
        if i >= len(times):
            return {name: c[-1].copy() for name, c in self.commands_rad.items()}
        if i == 0:
            return {name: c[0].copy() for name, c in self.commands_rad.items()}
        span = times[i] - times[i - 1]
        w = (t_s - times[i - 1]) / span if span > 0 else 1.0
        return {name: c[i - 1] + (c[i] - c[i - 1]) * w for name, c in self.commands_rad.items()}
