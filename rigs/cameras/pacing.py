"""Deadline pacing for cameras that are not clocked by hardware (rendered or file-backed).

Frames fall due every period on the monotonic clock from a fixed start, so there is no drift.
A reader that arrives whole periods late finds the frames it missed skipped, as with a device
that kept streaming; the number skipped is returned so the frame number can jump over them.
An Event is used for waiting, so ``disconnect()`` from another thread ends the wait at once.
"""

from __future__ import annotations

import threading
import time

from rigs.cameras.base import CameraError


class FramePacer:
    """The schedule of one camera: ``wait()`` returns (deadline_ns, frames skipped)."""

    def __init__(self, name: str, fps: int, stop: threading.Event):
        self.name = name
        self.fps = fps
        self.period_ns = round(1e9 / fps)
        self._stop = stop
        self.next_deadline_ns = 0

    def start(self, t0_ns: int) -> None:
        """The first frame falls due one period after ``t0_ns``."""
        self.next_deadline_ns = t0_ns + self.period_ns

    def raise_if_stopped(self) -> None:
        if self._stop.is_set():
            raise CameraError(f"camera {self.name!r} was disconnected")

    def wait(self, timeout_s: float) -> tuple[int, int]:
        """Block until the next deadline (or raise CameraError after ``timeout_s`` / on stop)."""
        deadline = self.next_deadline_ns
        wait_ns = deadline - time.monotonic_ns()
        if wait_ns > timeout_s * 1e9:
            self._stop.wait(timeout_s)
            self.raise_if_stopped()
            raise CameraError(
                f"camera {self.name!r}: no frame within {timeout_s:.3f} s (running at {self.fps} fps)"
            )
        if wait_ns > 0:
            self._stop.wait(wait_ns / 1e9)
            self.raise_if_stopped()
        skipped = 0
        late_ns = time.monotonic_ns() - deadline
        if late_ns > self.period_ns:
            skipped = late_ns // self.period_ns
            deadline += skipped * self.period_ns
        self.next_deadline_ns = deadline + self.period_ns
        return deadline, skipped
