"""Scheduling priority for the processes that stand between the operator and the servos.

On a 2-core machine the control loop competes with camera encoding and the writer for CPU;
a cycle that waits for a core misses its deadline. Real-time scheduling (SCHED_FIFO) removes
that wait. It needs root or an rtprio limit (README, "Hardware"); without it we fall back to a
higher nice priority, and without that to normal scheduling, and say which we got.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Collect once and move everything alive so far out of the garbage collector's sight.

    A full collection walks every tracked object; in a real-time loop that is a pause of
    milliseconds at an unpredictable moment. After set-up, ``gc.freeze`` leaves only the
    objects the loop itself creates (few, short-lived) for the collector to look at.
    """
    gc.collect()
    gc.freeze()
    lock_memory()


# Only what is mapped now (code, libraries, the heap after set-up): MCL_FUTURE would lock
# and pre-fault every later allocation, which cost the 100 Hz loop p99 7-13 ms (BENCHMARKS.md).
_MCL_CURRENT = 1


def lock_memory() -> bool:
    """Keep this process's pages mapped so far in RAM (``mlockall``); True when granted.

    Under heavy disk writes (an export, a recording's fsync, a package install) the kernel
    evicts file-backed pages, and a real-time process that then touches its own code or
    libraries waits behind the disk queue for tens of milliseconds: a missed servo cycle, or
    a torque-off that comes late. Locked pages are never evicted. It needs root or a memlock
    limit; without it the process runs as before.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.mlockall(_MCL_CURRENT) == 0:
            return True
        err = ctypes.get_errno()
    except (OSError, AttributeError) as exc:
        err = getattr(exc, "errno", 0) or 0
    log.warning(
        "pid %d: memory not locked (%s): disk activity may delay the control loop",
        os.getpid(),
        os.strerror(err) if err else "mlockall unavailable",
    )
    return False


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


def _policy() -> tuple[int, int]:
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


def _set_policy(policy: tuple[int, int]) -> None:
    try:
        os.sched_setscheduler(0, policy[0], os.sched_param(policy[1]))
    except (PermissionError, OSError) as exc:
        log.warning("could not restore the scheduling policy of pid %d: %s", os.getpid(), exc)


@contextmanager
def scheduling_kept() -> Iterator[None]:
    """Give the calling thread its scheduling policy back afterwards.

    SVT-AV1 switches the thread that feeds it frames to SCHED_FIFO when it is allowed to (as
    root); every process started from that thread later (a control loop, a virtual rig, a
    renderer) would inherit it, and real-time peers that never yield starve the ones that
    must run.
    """
    before = _policy()
    try:
        yield
    finally:
        if _policy() != before:
            _set_policy(before)


def normal_scheduling() -> None:
    """Run this process under the normal scheduler, whatever it inherited."""
    if _policy()[0] != os.SCHED_OTHER:
        _set_policy((os.SCHED_OTHER, 0))
