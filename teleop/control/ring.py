"""A shared-memory ring of control samples: the control process writes, the app reads.

The writer never waits: it fills the next slot and then publishes it by bumping a counter.
A reader that falls more than ``capacity`` samples behind loses the oldest and is told how
many (with 10 s of capacity that means the app stalled for 10 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from rigs.dynamixel.bus import JointReading
from rigs.spec import RigSpec
from teleop.control.loop import ArmSample, ControlSample

# Integer columns of a record, before the per-arm ones.
_I_CYCLE, _I_START, _I_PERIOD, _I_COMMAND, _I_OVERRUNS, _I_RETRIES, _I_FAILED, _I_CLAMPS = range(8)
_I_FIXED = 8
_I_PER_ARM = 3  # stamp_ns, receipt_ns, ok


@dataclass(frozen=True)
class LoopCounters:
    """Totals since the control process started, as of one sample."""

    overruns: int
    bus_retries: int
    bus_failed_reads: int
    clamp_hits: int


@dataclass(frozen=True)
class _Layout:
    arms: tuple[str, ...]
    joints: tuple[int, ...]
    followers: tuple[str, ...]
    capacity: int

    @property
    def n_int(self) -> int:
        return _I_FIXED + _I_PER_ARM * len(self.arms)

    @property
    def n_float(self) -> int:
        arm_floats = 3 * sum(self.joints)
        by_name = dict(zip(self.arms, self.joints, strict=True))
        return arm_floats + 2 * sum(by_name[f] for f in self.followers)


class SampleRing:
    """Fixed-size records in shared memory; create in the app, attach in the control process."""

    def __init__(
        self, spec: RigSpec, *, capacity: int, name: str | None = None, create: bool = False
    ):
        self.layout = _Layout(
            tuple(a.name for a in spec.arms),
            tuple(len(a.joints) for a in spec.arms),
            tuple(a.name for a in spec.followers),
            capacity,
        )
        lay = self.layout
        int_bytes = 8 + capacity * lay.n_int * 8  # 8 bytes: the published count
        size = int_bytes + capacity * lay.n_float * 8
        self._shm = shared_memory.SharedMemory(name=name, create=create, size=size if create else 0)
        self._owner = create
        buf = self._shm.buf
        self._count = np.ndarray((1,), np.int64, buf, 0)
        self._ints = np.ndarray((capacity, lay.n_int), np.int64, buf, 8)
        self._floats = np.ndarray((capacity, lay.n_float), np.float64, buf, int_bytes)
        if create:
            self._count[0] = 0
        self._read = 0
        self.lost = 0

    @property
    def name(self) -> str:
        return self._shm.name

    # -- control process ---------------------------------------------------------------------
    def put(self, s: ControlSample, counters: LoopCounters) -> None:
        n = int(self._count[0])
        slot = n % self.layout.capacity
        ints = self._ints[slot]
        ints[:_I_FIXED] = (
            s.cycle, s.start_ns, s.period_ns, s.command_ns,
            counters.overruns, counters.bus_retries, counters.bus_failed_reads, counters.clamp_hits,
        )  # fmt: skip
        floats = self._floats[slot]
        i, f = _I_FIXED, 0
        for arm, nj in zip(self.layout.arms, self.layout.joints, strict=True):
            a = s.arms.get(arm)
            if a is None:  # not read this cycle (replay reads only the followers)
                ints[i : i + 3] = 0
                floats[f : f + 3 * nj] = 0.0
            else:
                ints[i : i + 3] = (a.stamp_ns, a.receipt_ns, int(a.reading.ok))
                r = a.reading
                floats[f : f + nj] = r.position_rad
                floats[f + nj : f + 2 * nj] = r.velocity_rad_s
                floats[f + 2 * nj : f + 3 * nj] = r.current_ma
            i += 3
            f += 3 * nj
        for name in self.layout.followers:
            nj = len(s.commands_rad[name])
            floats[f : f + nj] = s.targets_rad[name]
            floats[f + nj : f + 2 * nj] = s.commands_rad[name]
            f += 2 * nj
        # Publish only after the slot is complete.
        self._count[0] = n + 1

    # -- app ----------------------------------------------------------------------------------
    def take(self) -> list[tuple[ControlSample, LoopCounters]]:
        """Every sample published since the last call (oldest first)."""
        count = int(self._count[0])
        cap = self.layout.capacity
        if count - self._read > cap:
            self.lost += count - self._read - cap
            self._read = count - cap
        out = []
        while self._read < count:
            slot = self._read % cap
            out.append(self._decode(self._ints[slot].copy(), self._floats[slot].copy()))
            self._read += 1
        return out

    def _decode(self, ints: np.ndarray, floats: np.ndarray) -> tuple[ControlSample, LoopCounters]:
        arms: dict[str, ArmSample] = {}
        i, f = _I_FIXED, 0
        for arm, nj in zip(self.layout.arms, self.layout.joints, strict=True):
            if ints[i + 1]:  # a receipt time of 0: the arm was not read this cycle
                reading = JointReading(
                    floats[f : f + nj],
                    floats[f + nj : f + 2 * nj],
                    floats[f + 2 * nj : f + 3 * nj],
                    bool(ints[i + 2]),
                )
                arms[arm] = ArmSample(reading, int(ints[i]), int(ints[i + 1]))
            i += 3
            f += 3 * nj
        targets, commands = {}, {}
        by_name = dict(zip(self.layout.arms, self.layout.joints, strict=True))
        for name in self.layout.followers:
            nj = by_name[name]
            targets[name] = floats[f : f + nj]
            commands[name] = floats[f + nj : f + 2 * nj]
            f += 2 * nj
        sample = ControlSample(
            int(ints[_I_CYCLE]),
            int(ints[_I_START]),
            int(ints[_I_PERIOD]),
            arms,
            targets,
            commands,
            int(ints[_I_COMMAND]),
        )
        counters = LoopCounters(
            int(ints[_I_OVERRUNS]),
            int(ints[_I_RETRIES]),
            int(ints[_I_FAILED]),
            int(ints[_I_CLAMPS]),
        )
        return sample, counters

    def close(self) -> None:
        self._count = self._ints = self._floats = np.zeros(0)
        self._shm.close()
        if self._owner:
            self._shm.unlink()
