"""Camera health as a state machine fed what a camera delivers, with no threads or clocks.

The capture thread feeds it every frame (its device frame number and a fingerprint of its
content) and every failed read, with the time; it answers with what the frame is (a gap
before it, a duplicate) and the events to report:

- a *gap* is a jump in the device's own frame numbers (frames the device or driver lost);
- a *duplicate* is a frame whose content is identical to the previous one (a real sensor's
  noise makes two genuine frames differ); ``freeze_frames`` duplicates in a row are a
  *freeze*, reported once, and its end once;
- a failed read (nothing for the driver's stall timeout) means the camera has *stopped*:
  reported once, and again when a frame comes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class HealthEvent:
    """Something a reviewer should know about a camera, at a monotonic time."""

    kind: str
    """``frames_missing``, ``camera_frozen``, ``camera_unfrozen``, ``camera_stopped`` or
    ``camera_resumed``."""
    detail: str
    at_ns: int


@dataclass(frozen=True)
class FrameVerdict:
    """What one delivered frame is."""

    gap_before: int
    """Device frame numbers missing between the previous frame and this one."""
    duplicate: bool
    """Same content as the previous frame."""
    events: tuple[HealthEvent, ...] = ()


@dataclass
class CaptureStats:
    captured: int = 0
    frame_gaps: int = 0  # frames missing in the device's numbering
    duplicates: int = 0
    freezes: int = 0
    stalls: int = 0


def content_signature(color: np.ndarray) -> int:
    """A cheap fingerprint of an image's content (every 8th pixel in both directions)."""
    return zlib.crc32(color[::8, ::8].tobytes())


@dataclass
class CameraHealth:
    """The health of one camera, from the frames and failures fed to it in order."""

    freeze_frames: int
    stats: CaptureStats = field(default_factory=CaptureStats)
    frozen: bool = False
    stopped_since_ns: int | None = None
    _last_number: int | None = None
    _last_signature: int | None = None
    _duplicate_run: int = 0

    @property
    def stopped(self) -> bool:
        return self.stopped_since_ns is not None

    def read_failed(self, error: str, now_ns: int) -> tuple[HealthEvent, ...]:
        """A read that returned nothing within the stall timeout."""
        if self.stopped_since_ns is not None:
            return ()
        self.stopped_since_ns = now_ns
        self.stats.stalls += 1
        return (HealthEvent("camera_stopped", error, now_ns),)

    def frame(self, frame_number: int, signature: int, now_ns: int) -> FrameVerdict:
        """A frame arrived: its device number and content signature."""
        events: list[HealthEvent] = []
        if self.stopped_since_ns is not None:
            after_s = (now_ns - self.stopped_since_ns) / 1e9
            events.append(HealthEvent("camera_resumed", f"after {after_s:.2f} s", now_ns))
            self.stopped_since_ns = None
        gap = 0
        if self._last_number is not None and frame_number > self._last_number + 1:
            gap = frame_number - self._last_number - 1
            self.stats.frame_gaps += gap
            events.append(
                HealthEvent(
                    "frames_missing", f"{gap} frames missing before #{frame_number}", now_ns
                )
            )
        self._last_number = frame_number
        duplicate = signature == self._last_signature
        self._last_signature = signature
        if duplicate:
            self.stats.duplicates += 1
            self._duplicate_run += 1
            if self._duplicate_run == self.freeze_frames:
                self.frozen = True
                self.stats.freezes += 1
                events.append(
                    HealthEvent(
                        "camera_frozen", f"{self._duplicate_run + 1} identical frames", now_ns
                    )
                )
        else:
            if self.frozen:
                self.frozen = False
                events.append(
                    HealthEvent(
                        "camera_unfrozen",
                        f"after {self._duplicate_run + 1} identical frames",
                        now_ns,
                    )
                )
            self._duplicate_run = 0
        self.stats.captured += 1
        return FrameVerdict(gap, duplicate, tuple(events))
