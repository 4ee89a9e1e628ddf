"""The control thread: read leaders and followers, map, clamp, write, hand the sample on.

Deadline-paced on the monotonic clock. Each cycle does one sync read per bus and one sync
write per follower bus, then a non-blocking hand-off of the sample and a swap of ``latest``.
It never waits on disk or UI. An overrun (a cycle that ends past the next deadline) is
counted and the schedule skips ahead instead of bursting to catch up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

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
    arms: dict[str, ArmSample]
    targets_rad: dict[str, np.ndarray]  # follower name -> mapped leader angles, before clamps
    commands_rad: dict[str, np.ndarray]  # follower name -> what was written
    command_ns: int


@dataclass
class LoopStats:
    cycles: int = 0
    overruns: int = 0


class ControlLoop(Worker):
    """Runs the leader→follower loop on its own thread at ``rate_hz``."""

    def __init__(
        self,
        rig: RigSpec,
        buses: dict[str, DynamixelBus],
        mappings: dict[str, JointMapping],
        rate_hz: float,
        sink: Callable[[ControlSample], None],
        on_fault: Callable[[BusError], None] | None = None,
        *,
        fault_hold_s: float = 0.01,
    ):
        super().__init__("control")
        if not 1.0 <= rate_hz <= 1000.0:
            raise ValueError(f"control rate {rate_hz} Hz is outside 1..1000 Hz")
        self.rig = rig
        self.buses = buses
        self.mappings = mappings  # follower name -> mapping from its leader
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
        # Leaders first: followers are commanded from the freshest leader reading.
        self._order = [a.name for a in rig.leaders] + [a.name for a in rig.followers]

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
        targets: dict[str, np.ndarray] = {}
        commands: dict[str, np.ndarray] = {}
        for follower in self.rig.followers:
            mapping = self.mappings[follower.name]
            target = mapping.map(arms[mapping.leader].reading.position_rad)
            previous = self._previous.get(follower.name)
            if previous is None:
                previous = arms[follower.name].reading.position_rad
            command = self.clamps[follower.name].apply(target, previous)
            self.buses[follower.name].write_goals(command)
            self._previous[follower.name] = command
            targets[follower.name] = target
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
