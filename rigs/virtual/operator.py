"""A scripted, seeded human operator moving one leader arm of the virtual rig.

The operator repeats a pick-and-place task: reach, close the gripper, lift, carry and place,
release, return, rest. Every cycle draws its poses and timings from a generator seeded by
``(seed, side, cycle)``, so the same seed always gives the same motion, consecutive cycles
differ, and the two arms of a bimanual rig move differently. Poses are joined by minimum-jerk
segments (zero velocity and acceleration at each keyframe) whose durations keep the peak joint
speed under ``max_speed_rad_s``; a faint tremor makes the hands look human. Angles are a pure
function of time, so any process can ask for any instant.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rigs.spec import Arm

Side = Literal["left", "right"]

# Peak speed of a minimum-jerk segment is 1.875 x (distance / duration).
_MIN_JERK_PEAK = 1.875
_HOLD_PHASES = frozenset({"close", "lift", "place", "release"})


@dataclass(frozen=True)
class _Segment:
    start_s: float
    end_s: float
    q0: np.ndarray
    q1: np.ndarray
    phase: str
    cycle: int
    object_rad: float | None  # gripper angle at which the held object stops closing


def _min_jerk(tau: float) -> float:
    return tau * tau * tau * (10.0 + tau * (-15.0 + 6.0 * tau))


class ScriptedOperator:
    """Leader joint angles (radians, inside the spec's joint limits) as a function of time.

    ``arm_spec`` gives joint names and limits (joints named ``waist``, ``shoulder``,
    ``elbow``, ``forearm_roll``, ``wrist_angle``, ``wrist_rotate`` and the arm's gripper get
    task-like motions, any other joint a plausible one). ``side`` mirrors the reach towards the
    middle of the table. ``t_s`` is seconds since the operator started.
    """

    def __init__(
        self,
        arm_spec: Arm,
        seed: int,
        side: Side | str,
        *,
        max_speed_rad_s: float = 1.0,
        gripper_speed_rad_s: float = 1.5,
        tremor_rad: float = 0.006,
    ) -> None:
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', not {side!r}")
        self.arm = arm_spec
        self.seed = int(seed)
        self.side = side
        self.max_speed_rad_s = float(max_speed_rad_s)
        self.names = [j.name for j in arm_spec.joints]
        self.lo = np.array([j.min_rad for j in arm_spec.joints])
        self.hi = np.array([j.max_rad for j in arm_spec.joints])
        span = self.hi - self.lo
        # Keyframes stay this far inside the limits, which leaves room for the tremor.
        self._margin = np.minimum(0.08, 0.1 * span)
        self._lo_in = self.lo + self._margin
        self._hi_in = self.hi - self._margin
        self._gripper = self.names.index(arm_spec.gripper) if arm_spec.gripper else None
        # A hand opens and closes a gripper faster than it swings the arm.
        self._speed_cap = np.full(len(self.names), self.max_speed_rad_s)
        if self._gripper is not None:
            self._speed_cap[self._gripper] = float(gripper_speed_rad_s)
        self._toward_middle = -1.0 if side == "left" else 1.0
        side_code = 0 if side == "left" else 1
        self._side_code = side_code
        rng = np.random.default_rng([self.seed, side_code, 1_000_003])
        n = len(self.names)
        # Tremor: two slow sinusoids per joint, far below the task motion in speed.
        self._tremor_amp = tremor_rad * rng.uniform(0.4, 1.0, (2, n))
        self._tremor_hz = rng.uniform(0.3, 1.4, (2, n))
        self._tremor_phase = rng.uniform(0.0, 2.0 * math.pi, (2, n))
        self.home_rad = self._clip(self._pose(rng, "home"))
        self._segments: list[_Segment] = []
        self._starts: list[float] = []
        first_rest = float(rng.uniform(0.3, 1.5)) + 0.6 * side_code
        self._append(first_rest, self.home_rad, self.home_rad, "rest", -1, None)
        self._cycles = 0

    # -- poses ------------------------------------------------------------------------------
    def _clip(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self._lo_in, self._hi_in)

    def _frac(self, i: int, f: float) -> float:
        return float(self.lo[i] + f * (self.hi[i] - self.lo[i]))

    def _pose(
        self, rng: np.random.Generator, kind: str, base: np.ndarray | None = None
    ) -> np.ndarray:
        """One keyframe. ``base`` is the pose the new one is derived from (lift, place)."""
        q = np.empty(len(self.names)) if base is None else base.copy()
        u = rng.uniform
        m = self._toward_middle
        for i, name in enumerate(self.names):
            if i == self._gripper:
                q[i] = self._frac(i, 0.72 + u(-0.05, 0.05))  # open
                continue
            if kind == "home":
                q[i] = {
                    "waist": 0.0,
                    "shoulder": -0.9,
                    "elbow": 0.9,
                    "forearm_roll": 0.0,
                    "wrist_angle": 0.4,
                    "wrist_rotate": 0.0,
                }.get(name, self._frac(i, 0.5))
            elif kind == "reach":
                q[i] = {
                    "waist": m * u(0.1, 0.55),
                    "shoulder": u(-0.15, 0.35),
                    "elbow": u(-0.25, 0.3),
                    "forearm_roll": u(-0.3, 0.3),
                    "wrist_angle": u(0.35, 0.95),
                    "wrist_rotate": u(-0.6, 0.6),
                }.get(name, self._frac(i, u(0.3, 0.7)))
            elif kind == "lift":
                q[i] += {
                    "shoulder": -u(0.25, 0.45),
                    "elbow": -u(0.05, 0.2),
                    "wrist_angle": u(0.0, 0.2),
                }.get(name, 0.0)
            elif kind == "place":
                q[i] += {
                    "waist": m * u(-0.45, 0.35),
                    "shoulder": u(0.2, 0.45),
                    "elbow": u(-0.1, 0.15),
                    "forearm_roll": u(-0.2, 0.2),
                    "wrist_rotate": u(-0.4, 0.4),
                }.get(name, u(-0.1, 0.1))
        return self._clip(q)

    def _with_gripper(self, q: np.ndarray, f: float) -> np.ndarray:
        if self._gripper is None:
            return q
        q = q.copy()
        q[self._gripper] = float(
            np.clip(
                self._frac(self._gripper, f), self._lo_in[self._gripper], self._hi_in[self._gripper]
            )
        )
        return q

    # -- the script -------------------------------------------------------------------------
    def _append(
        self,
        min_duration_s: float,
        q0: np.ndarray,
        q1: np.ndarray,
        phase: str,
        cycle: int,
        object_rad: float | None,
    ) -> None:
        # Long enough that the peak speed of the minimum-jerk move stays under the cap.
        needed = float(np.max(np.abs(q1 - q0) / self._speed_cap)) * _MIN_JERK_PEAK
        duration = max(min_duration_s, needed, 0.05)
        start = self._segments[-1].end_s if self._segments else 0.0
        self._segments.append(_Segment(start, start + duration, q0, q1, phase, cycle, object_rad))
        self._starts.append(start)

    def _add_cycle(self) -> None:
        k = self._cycles
        self._cycles += 1
        rng = np.random.default_rng([self.seed, self._side_code, k])
        u = rng.uniform
        home = self.home_rad
        reach = self._pose(rng, "reach")
        lift = self._pose(rng, "lift", reach)
        place = self._pose(rng, "place", lift)
        lower = self._clip(place + np.where(np.array(self.names) == "shoulder", u(0.1, 0.25), 0.0))
        closed_f = u(0.1, 0.2)
        obj = None
        if self._gripper is not None:
            obj = self._frac(self._gripper, u(0.3, 0.45))

        def closed(q: np.ndarray) -> np.ndarray:
            return self._with_gripper(q, closed_f)

        self._append(u(0.9, 1.8), home, reach, "reach", k, None)
        self._append(u(0.15, 0.5), reach, reach, "pause", k, None)
        self._append(u(0.4, 0.8), reach, closed(reach), "close", k, obj)
        self._append(u(0.7, 1.3), closed(reach), closed(lift), "lift", k, obj)
        self._append(u(1.0, 2.0), closed(lift), closed(lower), "place", k, obj)
        self._append(u(0.4, 0.8), closed(lower), lower, "release", k, obj)
        self._append(u(0.9, 1.8), lower, home, "return", k, None)
        self._append(u(0.4, 1.6), home, home, "rest", k, None)

    def _segment(self, t_s: float) -> _Segment:
        while self._segments[-1].end_s <= t_s:
            self._add_cycle()
        i = bisect.bisect_right(self._starts, t_s) - 1
        return self._segments[max(i, 0)]

    # -- public -----------------------------------------------------------------------------
    def angles(self, t_s: float) -> np.ndarray:
        """Joint angles in radians at ``t_s`` seconds, in the arm's joint order."""
        t_s = max(0.0, float(t_s))
        seg = self._segment(t_s)
        tau = (t_s - seg.start_s) / (seg.end_s - seg.start_s)
        q = seg.q0 + (seg.q1 - seg.q0) * _min_jerk(min(1.0, max(0.0, tau)))
        phase = self._tremor_phase + 2.0 * math.pi * self._tremor_hz * t_s
        q = q + (self._tremor_amp * np.sin(phase)).sum(axis=0)
        return np.clip(q, self.lo, self.hi)

    def phase(self, t_s: float) -> str:
        """What the operator is doing: rest, reach, pause, close, lift, place, release, return."""
        return self._segment(max(0.0, float(t_s))).phase

    def cycle(self, t_s: float) -> int:
        """Index of the task cycle at ``t_s`` (-1 before the first one starts)."""
        return self._segment(max(0.0, float(t_s))).cycle

    def holding(self, t_s: float) -> bool:
        """Whether the gripper is on the object (from closing until it is released)."""
        return self.phase(t_s) in _HOLD_PHASES

    def object_rad(self, t_s: float) -> float | None:
        """While holding: the gripper angle at which the object stops a follower's gripper."""
        seg = self._segment(max(0.0, float(t_s)))
        return seg.object_rad if seg.phase in _HOLD_PHASES else None


# --- calibration: a person moving one arm through the calibration steps ---------------------


@dataclass(frozen=True)
class _Move:
    start_s: float
    end_s: float
    q0: np.ndarray
    q1: np.ndarray


class CalibrationMoves:
    """The hands that move one arm through a calibration, step by step, as a function of time.

    A calibrating person (a) holds a reference pose, (b) sweeps each joint to its positive end
    of travel, then its negative end, then back, and (c) opens and closes the gripper. Moves
    are minimum-jerk and exact (no tremor: the procedure reads offsets at the held pose); each
    end of a sweep is held still for ``hold_s`` so a reader polling the bus sees it.
    Each :meth:`move` starts when the previous one has ended (or at ``now_s``, if later) and
    returns when it will end; after the last move the arm stays where it was left.

    ``stop_min_rad``/``stop_max_rad`` are the ends of travel and ``gripper_open_rad``/
    ``gripper_closed_rad`` the gripper's open and closed angles (joint frame), as the arm is
    built; ``start_rad`` is where the arm is when the hands take it.
    """

    def __init__(
        self,
        names: list[str],
        start_rad: np.ndarray,
        start_s: float,
        *,
        stop_min_rad: np.ndarray,
        stop_max_rad: np.ndarray,
        gripper: str | None = None,
        gripper_open_rad: float | None = None,
        gripper_closed_rad: float | None = None,
        speed_rad_s: float = 30.0,
        hold_s: float = 0.15,
    ) -> None:
        self.names = list(names)
        self.start_rad = np.array(start_rad, dtype=float)
        self.stop_min_rad = np.asarray(stop_min_rad, dtype=float)
        self.stop_max_rad = np.asarray(stop_max_rad, dtype=float)
        self._gripper = self.names.index(gripper) if gripper is not None else None
        self.gripper_open_rad = gripper_open_rad
        self.gripper_closed_rad = gripper_closed_rad
        self.speed_rad_s = float(speed_rad_s)
        self.hold_s = float(hold_s)
        self._moves: list[_Move] = []
        self._starts: list[float] = []
        self._end_s = float(start_s)
        self._pose = self.start_rad.copy()

    @property
    def end_s(self) -> float:
        """When the last planned move (and its hold) ends."""
        return self._end_s

    def _to(self, q1: np.ndarray, hold_s: float) -> None:
        q0 = self._pose
        distance = float(np.max(np.abs(q1 - q0))) if len(q0) else 0.0
        duration = max(0.02, distance / self.speed_rad_s * _MIN_JERK_PEAK)
        for a, b, q_from, q_to in (
            (self._end_s, self._end_s + duration, q0, q1),
            (self._end_s + duration, self._end_s + duration + hold_s, q1, q1),
        ):
            self._moves.append(_Move(a, b, q_from, q_to.copy()))
            self._starts.append(a)
        self._end_s += duration + hold_s
        self._pose = q1.copy()

    def move(
        self,
        action: str,
        now_s: float,
        *,
        joint: str | None = None,
        angles: np.ndarray | list[float] | None = None,
    ) -> float:
        """Plan one step; returns when it ends (same clock as ``now_s``).

        ``action``: ``pose`` (every joint to ``angles``; the reference pose is one),
        ``sweep`` (``joint`` to its positive end, its negative end, back), ``open``/``close``
        (the gripper), ``return`` (back to where the hands took the arm).
        """
        self._end_s = max(self._end_s, float(now_s))
        q = self._pose.copy()
        # The arm stays where a move leaves it, so only the ends of a sweep need a long hold
        # (a reader must catch them); other poses settle for a moment.
        settle_s = min(self.hold_s, 0.03)
        if action == "pose":
            if angles is None or len(angles) != len(self.names):
                raise ValueError(f"pose needs {len(self.names)} angles")
            self._to(np.asarray(angles, dtype=float), settle_s)
        elif action == "sweep":
            if joint not in self.names:
                raise ValueError(f"no joint {joint!r}; joints are {', '.join(self.names)}")
            i = self.names.index(joint)
            back = q[i]
            for target, hold in (
                (self.stop_max_rad[i], self.hold_s),
                (self.stop_min_rad[i], self.hold_s),
                (back, settle_s),
            ):
                q[i] = target
                self._to(q.copy(), hold)
        elif action in ("open", "close"):
            if self._gripper is None:
                raise ValueError("this arm has no gripper")
            q[self._gripper] = (
                self.gripper_open_rad if action == "open" else self.gripper_closed_rad
            )
            self._to(q, settle_s)
        elif action == "return":
            self._to(self.start_rad.copy(), 0.0)
        else:
            raise ValueError(f"unknown calibration move {action!r}")
        return self._end_s

    def angles(self, t_s: float) -> np.ndarray:
        """Joint angles at ``t_s`` (radians, the arm's joint order)."""
        if not self._moves or t_s >= self._moves[-1].end_s:
            return self._pose.copy()
        i = bisect.bisect_right(self._starts, t_s) - 1
        if i < 0:
            return self._moves[0].q0.copy()
        m = self._moves[i]
        tau = (t_s - m.start_s) / (m.end_s - m.start_s) if m.end_s > m.start_s else 1.0
        return m.q0 + (m.q1 - m.q0) * _min_jerk(min(1.0, max(0.0, tau)))
