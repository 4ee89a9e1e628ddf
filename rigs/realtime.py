"""Scheduling priority for the processes that stand between the operator and the servos.

On a 2-core machine the control loop competes with camera encoding and the writer for CPU;
a cycle that waits for a core misses its deadline. Real-time scheduling (SCHED_FIFO) removes
that wait. It needs root or an rtprio limit (README, "Hardware"); without it we fall back to a
higher nice priority, and without that to normal scheduling, and say which we got.
"""

from __future__ import annotations

import gc
import logging
import os

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Collect once and move everything alive so far out of the garbage collector's sight.

    A full collection walks every tracked object; in a real-time loop that is a pause of
    milliseconds at an unpredictable moment. After set-up, ``gc.freeze`` leaves only the
    objects the loop itself creates (few, short-lived) for the collector to look at.
    """
    gc.collect()
    gc.freeze()


def raise_priority(fifo_priority: int = 20) -> str:
    """Ask for SCHED_FIFO, else nice -10; return what this process got."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
        return f"SCHED_FIFO {fifo_priority}"
    except (PermissionError, OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice -10"
    except (PermissionError, OSError):
        log.warning(
            "no real-time or raised priority for pid %d: the control rate may jitter under load "
            "(see README, Hardware: rtprio)",
            os.getpid(),
        )
        return "normal"
