"""Waiting for what must happen, however loaded the machine is: a generous deadline, never a
sleep followed by a count."""

from __future__ import annotations

import time
from collections.abc import Callable

DEADLINE_S = 30.0


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.01)


def wait_cycles(recorder, n: int = 30) -> None:
    """Wait until the recorder's open episode holds ``n`` control cycles."""
    wait_until(lambda: recorder.samples_written >= n, f"{n} control cycles recorded")
