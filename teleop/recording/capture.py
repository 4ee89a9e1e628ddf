"""One capture thread per camera: read, stamp, encode off the control thread, hand on.

cv2's JPEG/PNG encoders release the GIL, so encoding here does not stall the control thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rigs.cameras.base import Camera, CameraError, Frame
from rigs.cameras.codec import encode_depth_png, encode_jpeg
from teleop.worker import Worker

log = logging.getLogger(__name__)


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


@dataclass
class CaptureStats:
    captured: int = 0
    frame_gaps: int = 0  # frames the device skipped (jumps in its frame numbers)
    errors: int = 0


class CaptureThread(Worker):
    """Reads ``camera`` until stopped and passes each encoded frame to ``sink``."""

    def __init__(self, camera: Camera, sink: Callable[[EncodedFrame], None]):
        super().__init__(f"capture-{camera.name}")
        self.camera = camera
        self.sink = sink
        self.stats = CaptureStats()
        self.latest: Frame | None = None  # for live previews; swapped, never copied
        self.error: CameraError | None = None
        self._quality = camera.spec.jpeg_quality

    def _run(self) -> None:
        last_number: int | None = None
        while not self._stop.is_set():
            try:
                frame = self.camera.read(timeout_s=1.0)
            except CameraError as exc:
                if self._stop.is_set():
                    return
                self.stats.errors += 1
                self.error = exc
                log.error("%s", exc)
                return
            if last_number is not None and frame.frame_number > last_number + 1:
                self.stats.frame_gaps += frame.frame_number - last_number - 1
            last_number = frame.frame_number
            self.stats.captured += 1
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
                )
            )
