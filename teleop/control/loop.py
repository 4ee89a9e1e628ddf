"""The control thread: read leaders and followers, ask the command source, clamp, write.

Deadline-paced on the monotonic clock. Each cycle does one sync read per bus and one sync
write per follower bus, then a non-blocking hand-off of the sample and a swap of ``latest``.
It never waits on disk or UI. An overrun (a cycle that ends past the next deadline) is
counted and the schedule skips ahead instead of bursting to catch up.

What the followers are sent comes from a :class:`CommandSource`: the leaders through the
calibration (:class:`LeaderFollowing`, teleoperation) or a recorded trajectory
(``teleop.control.trajectory``, replay). Whatever the source, every command goes through the
same safety clamps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from calibration.mapping import JointMapping
from rigs.dynamixel.bus import BusError, DynamixelBus, JointReading
from rigs.spec import RigSpec
from teleop.control.safety import Clamp
from teleop.worker import Worker

log = logging.getLogger(__name__)


class ArmFault(BusError):
    """A bus or motor fault on one arm during the loop; says which arm and its role."""

    def __init__(self, arm: str, role: str, cause: BusError):
        super().__init__(str(cause))
        self.arm = arm
        self.role = role
        self.cause = cause


@dataclass(frozen=True)
class ArmSample:
    """One arm in one cycle. ``stamp_ns`` is the monotonic midpoint of its sync read."""

    reading: JointReading
    stamp_ns: int
    receipt_ns: int


@dataclass(frozen=True)
class ControlSample:
    """Everything one cycle saw and did."""

    cycle: int
    start_ns: int
    period_ns: int  # start-to-start, sleep included (0 for the first cycle)
    arms: dict[str, ArmSample]  # the arms read this cycle (followers only, if not following)
    targets_rad: dict[str, np.ndarray]  # follower name -> mapped leader angles, before clamps
    commands_rad: dict[str, np.ndarray]  # follower name -> what was written
    command_ns: int


class CommandSource(Protocol):
    """Where the followers' targets come from, cycle by cycle (before the safety clamps)."""

    uses_leaders: bool
    """Whether the leaders are read each cycle (only the followers otherwise)."""

    def targets(
        self, cycle: int, start_ns: int, arms: Mapping[str, ArmSample]
    ) -> dict[str, np.ndarray]:
        """Per follower name, its target angles (bus radians) for this cycle.

        ``start_ns`` is the cycle's monotonic start; ``arms`` is what this cycle read.
        """
        ...

    def milestones(self) -> dict[str, int]:
        """Named points reached so far, each with the cycle that reached it."""
        ...


class LeaderFollowing:
    """Teleoperation: each follower goes where its leader's mapping sends it."""

    uses_leaders = True

    def __init__(self, mappings: Mapping[str, JointMapping]):
        # Kept by reference: a mapping replaced in the dict applies from the next cycle.
        self.mappings = mappings

    def targets(
        self, cycle: int, start_ns: int, arms: Mapping[str, ArmSample]
    ) -> dict[str, np.ndarray]:
        """The mapped leader angles of every follower."""
        return {
            name: m.map(arms[m.leader].reading.position_rad) for name, m in self.mappings.items()
        }

    def milestones(self) -> dict[str, int]:
        """Following has no milestones: it runs until stopped."""
        return {}


@dataclass
class LoopStats:
    cycles: int = 0
    overruns: int = 0


class ControlLoop(Worker):
    """Runs the control loop on its own thread at ``rate_hz``.

    ``mappings`` (follower name -> mapping from its leader) give the clamps their calibrated
    joint limits and, unless ``source`` says otherwise, the commands (leader following).
    """

    def __init__(
        self,
        rig: RigSpec,
        buses: dict[str, DynamixelBus],
        mappings: dict[str, JointMapping],
        rate_hz: float,
        sink: Callable[[ControlSample], None],
        on_fault: Callable[[BusError], None] | None = None,
        *,
        source: CommandSource | None = None,
        fault_hold_s: float = 0.01,
    ):
        super().__init__("control")
        if not 1.0 <= rate_hz <= 1000.0:
            raise ValueError(f"control rate {rate_hz} Hz is outside 1..1000 Hz")
        self.rig = rig
        self.buses = buses
        self.mappings = mappings  # follower name -> mapping from its leader
        self.source: CommandSource = source or LeaderFollowing(mappings)
        self.rate_hz = rate_hz
        self.period_ns = int(round(1e9 / rate_hz))
        self.sink = sink
        self.on_fault = on_fault
        self.fault_hold_s = fault_hold_s
        self._roles = {a.name: a.role for a in rig.arms}
        self.clamps = {
            f.name: Clamp.for_arm(f, rig.safety, mappings.get(f.name)) for f in rig.followers
        }
        self.stats = LoopStats()
        self.latest: ControlSample | None = None
        self.fault: BusError | None = None
        self._previous: dict[str, np.ndarray] = {}
        # Leaders first: followers are commanded from the freshest leader reading. A source
        # that does not use the leaders leaves them unread, so a leader fault cannot stop it.
        leaders = [a.name for a in rig.leaders] if self.source.uses_leaders else []
        self._order = leaders + [a.name for a in rig.followers]

    def step(self, cycle: int, start_ns: int, period_ns: int) -> ControlSample:
        """One cycle; public so tests can drive the loop without a thread."""
        arms: dict[str, ArmSample] = {}
        for name in self._order:
            t0 = time.monotonic_ns()
            try:
                reading = self.buses[name].read_state()
            except BusError as exc:
                raise ArmFault(name, self._roles[name], exc) from exc
            t1 = time.monotonic_ns()
            arms[name] = ArmSample(reading, (t0 + t1) // 2, t1)
        targets = self.source.targets(cycle, start_ns, arms)
        commands: dict[str, np.ndarray] = {}
        for follower in self.rig.followers:
            target = targets[follower.name]
            previous = self._previous.get(follower.name)
            if previous is None:
                previous = arms[follower.name].reading.position_rad
            command = self.clamps[follower.name].apply(target, previous)
            try:
                self.buses[follower.name].write_goals(command)
            except BusError as exc:  # its port vanished
                raise ArmFault(follower.name, "follower", exc) from exc
            self._previous[follower.name] = command
            commands[follower.name] = command
        return ControlSample(
            cycle, start_ns, period_ns, arms, targets, commands, time.monotonic_ns()
        )

    def _fault_stop(self, fault: ArmFault) -> None:
        """Stop following. Followers hold their last goal; after a follower fault, torque off.

        A leader fault leaves the followers holding where they are (torque on): nothing is
        wrong with them. A follower fault (its bus silent, or a motor's hardware error) means
        that arm can no longer be trusted, so after a short hold every follower goes limp.
        """
        self.fault = fault
        log.error("control loop stopped: %s", fault)
        if fault.role == "follower":
            time.sleep(self.fault_hold_s)
            # The healthy buses first: their writes are certain to arrive.
            names = sorted(self.rig.followers, key=lambda a: a.name == fault.arm)
            for arm in names:
                try:
                    self.buses[arm.name].torque_off_now()
                except BusError as exc:
                    log.error("torque off on %s failed: %s", arm.name, exc)
        if self.on_fault is not None:
            self.on_fault(fault)

    def _run(self) -> None:
        period = self.period_ns
        next_ns = time.monotonic_ns()
        last_start = 0
        cycle = 0
        while not self._stop.is_set():
            now = time.monotonic_ns()
            wait = next_ns - now
            if wait > 0:
                time.sleep(wait / 1e9)
            start = time.monotonic_ns()
            measured = start - last_start if last_start else 0
            last_start = start
            try:
                sample = self.step(cycle, start, measured)
            except ArmFault as exc:
                self._fault_stop(exc)
                return
            self.latest = sample
            self.sink(sample)
            cycle += 1
            self.stats.cycles = cycle
            next_ns += period
            end = time.monotonic_ns()
            if end > next_ns:
                self.stats.overruns += 1
                if end - next_ns > period:
                    # More than a whole period late: resynchronise rather than burst.
                    next_ns = end
