"""One capture thread per camera: read, check health, encode off the control thread, hand on.

Health is judged on the raw frames, the same way for every driver, by the state machine in
``camera_health.py``. cv2's JPEG/PNG encoders release the GIL, so encoding here does not
stall other threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from rigs.cameras.base import Camera, CameraError, Frame
from rigs.cameras.codec import encode_depth_png, encode_jpeg
from teleop.recording.camera_health import (
    CameraHealth,
    CaptureStats,
    HealthEvent,
    content_signature,
)
from teleop.worker import Worker

log = logging.getLogger(__name__)


class CameraEvent(NamedTuple):
    """A camera health event. Kinds: camera_stopped, camera_resumed, camera_frozen,
    camera_unfrozen, frames_missing."""

    camera: str
    kind: str
    detail: str
    at_ns: int
    """monotonic ns"""


@dataclass(frozen=True)
class EncodedFrame:
    """A frame ready for the writer: metadata plus encoded bytes."""

    camera: str
    frame_number: int
    capture_ns: int  # monotonic estimate of capture time
    receipt_ns: int  # monotonic time the host received it
    device_ns: int | None
    jpeg: bytes
    depth_png: bytes | None
    gap_before: int = 0  # device frames missing between the previous frame and this one
    duplicate: bool = False


class CaptureThread(Worker):
    """Reads ``camera`` until stopped and passes each encoded frame to ``sink``."""

    def __init__(
        self,
        camera: Camera,
        sink: Callable[[EncodedFrame], None],
        on_event: Callable[[CameraEvent], None] | None = None,
        *,
        freeze_s: float = 0.5,
    ):
        super().__init__(f"capture-{camera.name}")
        self.camera = camera
        self.sink = sink
        self.on_event = on_event
        self.health = CameraHealth(freeze_frames=max(2, round(freeze_s * camera.spec.fps)))
        self.latest: Frame | None = None  # for live previews; swapped, never copied
        self.error: CameraError | None = None  # set while the camera is stopped
        self._quality = camera.spec.jpeg_quality
        self._stall_s = camera.spec.stall_timeout_s

    @property
    def stats(self) -> CaptureStats:
        return self.health.stats

    @property
    def frozen(self) -> bool:
        return self.health.frozen

    def _report(self, events: tuple[HealthEvent, ...]) -> None:
        for e in events:
            level = logging.INFO if e.kind == "frames_missing" else logging.WARNING
            log.log(level, "camera %s: %s %s", self.camera.name, e.kind, e.detail)
            if self.on_event is not None:
                self.on_event(CameraEvent(self.camera.name, e.kind, e.detail, e.at_ns))

    def _run(self) -> None:
        health = self.health
        while not self._stop.is_set():
            try:
                frame = self.camera.read(timeout_s=self._stall_s)
            except CameraError as exc:
                if self._stop.is_set():
                    return
                if not health.stopped:
                    self.error = exc
                self._report(health.read_failed(str(exc), time.monotonic_ns()))
                time.sleep(0.05)  # a driver that fails at once must not spin
                continue
            self.error = None
            verdict = health.frame(
                frame.frame_number, content_signature(frame.color), time.monotonic_ns()
            )
            self._report(verdict.events)
            self.latest = frame
            jpeg = encode_jpeg(frame.color, self._quality)
            depth = encode_depth_png(frame.depth) if frame.depth is not None else None
            self.sink(
                EncodedFrame(
                    self.camera.name,
                    frame.frame_number,
                    frame.capture_stamp_ns,
                    frame.receipt_stamp_ns,
                    frame.device_stamp_ns,
                    jpeg,
                    depth,
                    verdict.gap_before,
                    verdict.duplicate,
                )
            )
