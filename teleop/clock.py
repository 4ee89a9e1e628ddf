"""Host time: pacing on the monotonic clock, one monotonic→UTC mapping per session.

Every timestamp the recorder takes is monotonic; it becomes wall-clock nanoseconds through a
single offset measured when the session starts, so recorded times never jump even if NTP
steps the system clock mid-session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SessionClock:
    """``utc_ns = monotonic_ns + offset_ns``, fixed for the life of a session."""

    offset_ns: int
    uncertainty_ns: int

    @classmethod
    def measure(cls, samples: int = 9) -> SessionClock:
        """Read both clocks several times and keep the tightest bracket."""
        best: tuple[int, int] | None = None
        for _ in range(samples):
            m0 = time.monotonic_ns()
            utc = time.time_ns()
            m1 = time.monotonic_ns()
            width = m1 - m0
            offset = utc - (m0 + m1) // 2
            if best is None or width < best[1]:
                best = (offset, width)
        assert best is not None
        return cls(offset_ns=best[0], uncertainty_ns=best[1])

    def to_utc_ns(self, monotonic_ns: int) -> int:
        return monotonic_ns + self.offset_ns

    def now_utc_ns(self) -> int:
        return time.monotonic_ns() + self.offset_ns


def iso_utc(utc_ns: int) -> str:
    """ISO-8601 UTC with microseconds, e.g. 2026-11-24T02:41:08.123456Z."""
    secs, ns = divmod(utc_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}Z"
