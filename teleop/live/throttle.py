"""Which messages a live view passes: cameras at a capped rate, everything else always."""

from __future__ import annotations

import math

CAMERA_PREFIX = "/cameras/"


def camera_of(topic: str) -> str | None:
    """The camera a topic belongs to (``/cameras/<name>/...``), or None for any other topic."""
    if not topic.startswith(CAMERA_PREFIX):
        return None
    name, sep, _rest = topic[len(CAMERA_PREFIX) :].partition("/")
    return name if sep and name else None


class CameraThrottle:
    """Passes each camera's frames at no more than ``fps`` on average.

    A frame is written as several messages (colour image, camera_info, depth) sharing one
    ``log_time``; the decision is made once per camera and log time, so the messages of a
    frame pass or are throttled together, in whatever order they come.

    The schedule advances by exactly one period per frame passed, so jitter in the camera's
    timing does not lower the average rate; a frame up to a tenth of a period early still
    counts as on time. After a gap (or a clock step back) the schedule starts again.
    Not thread-safe: one thread (the episode writer's) calls it.
    """

    def __init__(self, fps: float):
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"live camera fps must be a finite number above 0, got {fps!r}")
        self.fps = float(fps)
        self.period_ns = max(1, round(1e9 / fps))
        self._slack_ns = self.period_ns // 10
        self._next_ns: dict[str, int] = {}
        self._last: dict[str, tuple[int, bool]] = {}

    def passes(self, camera: str, log_time_ns: int) -> bool:
        """Whether the message of ``camera`` logged at ``log_time_ns`` goes to the live view."""
        last = self._last.get(camera)
        if last is not None and last[0] == log_time_ns:
            return last[1]
        period = self.period_ns
        due = self._next_ns.get(camera)
        if due is not None and due - log_time_ns > 2 * period:
            due = None  # the clock went back: start again
        if due is None or log_time_ns >= due - self._slack_ns:
            if due is None or log_time_ns - due >= period:  # behind: restart from now
                self._next_ns[camera] = log_time_ns + period
            else:
                self._next_ns[camera] = due + period
            ok = True
        else:
            ok = False
        self._last[camera] = (log_time_ns, ok)
        return ok
