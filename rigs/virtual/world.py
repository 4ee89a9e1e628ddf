"""The virtual rig's ground truth, shared between processes.

The servo-chain process writes every servo's true joint angle here; the synthetic cameras in
the app process read the follower angles to render them. A small shared-memory block of
float64 guarded by a sequence counter (odd while a write is in progress), so a reader never
sees half an update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from rigs.spec import RigSpec

_HEADER = 2  # [sequence, monotonic time of the write in ns]
STUCK_WRITE_S = 0.05  # a write takes microseconds; this long means the writer died mid-write


@dataclass(frozen=True)
class WorldLayout:
    """Where each arm's joints sit in the shared block (arms and joints in rig-spec order)."""

    arms: tuple[str, ...]
    joints_per_arm: tuple[int, ...]

    @classmethod
    def from_spec(cls, spec: RigSpec) -> WorldLayout:
        return cls(tuple(a.name for a in spec.arms), tuple(len(a.joints) for a in spec.arms))

    @property
    def size(self) -> int:
        return _HEADER + sum(self.joints_per_arm)

    def slice_of(self, arm: str) -> slice:
        start = _HEADER
        for name, n in zip(self.arms, self.joints_per_arm, strict=True):
            if name == arm:
                return slice(start, start + n)
            start += n
        raise KeyError(arm)


class SharedWorld:
    """One shared block of joint angles (radians). Create it with ``create=True`` once."""

    def __init__(self, layout: WorldLayout, name: str | None = None, create: bool = False):
        self.layout = layout
        nbytes = layout.size * 8
        self._shm = shared_memory.SharedMemory(
            name=name, create=create, size=nbytes if create else 0
        )
        self._owner = create
        self._array = np.ndarray((layout.size,), dtype=np.float64, buffer=self._shm.buf)
        if create:
            self._array[:] = 0.0

    @property
    def name(self) -> str:
        return self._shm.name

    def write(self, arm: str, positions_rad: np.ndarray) -> None:
        """Write one arm's angles (only the servo-chain process calls this)."""
        a = self._array
        a[0] += 1.0
        a[self.layout.slice_of(arm)] = positions_rad
        a[1] = float(time.monotonic_ns())
        a[0] += 1.0

    def read(self, arm: str) -> np.ndarray:
        """A consistent copy of one arm's angles.

        If the writer stays mid-write (the servo process was killed between the two counter
        steps), the angles as they stand are returned after ``STUCK_WRITE_S``: a reader must
        never spin forever on a dead writer.
        """
        a = self._array
        sl = self.layout.slice_of(arm)
        deadline = 0.0
        while True:
            seq = a[0]
            out = a[sl].copy()
            if seq % 2 == 0 and a[0] == seq:
                return out
            now = time.monotonic()
            if not deadline:
                deadline = now + STUCK_WRITE_S
            elif now > deadline:
                return out
            time.sleep(0)  # let the writer finish

    def close(self) -> None:
        # Drop our numpy view first: SharedMemory.close() refuses while a buffer is exported.
        self._array = np.zeros(0)
        self._shm.close()
        if self._owner:
            self._shm.unlink()
