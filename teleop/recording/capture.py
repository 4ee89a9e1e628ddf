"""One capture thread per camera: read, check health, encode off the control thread, hand on.

Health is judged here, on the raw frames, the same way for every driver:
- a *gap* is a jump in the device's own frame numbers (frames the device or driver lost);
- a *duplicate* is a frame whose content is identical to the previous one (a real sensor's
  noise makes two genuine frames differ), and a run of duplicates lasting ``freeze_s`` is a
  *freeze*;
- a camera that delivers nothing for ``stall_timeout_s`` has *stopped*; it is reported once,
  retried, and reported again when it resumes.
cv2's JPEG/PNG encoders release the GIL, so encoding here does not stall other threads.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from rigs.cameras.base import Camera, CameraError, Frame
from rigs.cameras.codec import encode_depth_png, encode_jpeg
from teleop.worker import Worker

log = logging.getLogger(__name__)

# A camera event: (camera name, kind, detail, monotonic ns). Kinds: camera_stopped,
# camera_resumed, camera_frozen, camera_unfrozen, frames_missing.
CameraEvent = tuple[str, str, str, int]


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


@dataclass
class CaptureStats:
    captured: int = 0
    frame_gaps: int = 0  # frames missing in the device's numbering
    duplicates: int = 0
    freezes: int = 0
    stalls: int = 0


def content_signature(color: object) -> int:
    """A cheap fingerprint of an image's content (every 8th pixel in both directions)."""
    sub = color[::8, ::8]  # type: ignore[index]
    return zlib.crc32(sub.tobytes())


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
        self.stats = CaptureStats()
        self.latest: Frame | None = None  # for live previews; swapped, never copied
        self.error: CameraError | None = None  # set while the camera is stopped
        self.frozen = False
        self._quality = camera.spec.jpeg_quality
        self._stall_s = camera.spec.stall_timeout_s
        self._freeze_frames = max(2, round(freeze_s * camera.spec.fps))

    def _event(self, kind: str, detail: str) -> None:
        level = logging.INFO if kind == "frames_missing" else logging.WARNING
        log.log(level, "camera %s: %s %s", self.camera.name, kind, detail)
        if self.on_event is not None:
            self.on_event((self.camera.name, kind, detail, time.monotonic_ns()))

    def _run(self) -> None:
        last_number: int | None = None
        last_signature: int | None = None
        duplicate_run = 0
        stopped_at: int | None = None
        while not self._stop.is_set():
            try:
                frame = self.camera.read(timeout_s=self._stall_s)
            except CameraError as exc:
                if self._stop.is_set():
                    return
                if stopped_at is None:
                    stopped_at = time.monotonic_ns()
                    self.stats.stalls += 1
                    self.error = exc
                    self._event("camera_stopped", str(exc))
                time.sleep(0.05)  # a driver that fails at once must not spin
                continue
            if stopped_at is not None:
                self._event(
                    "camera_resumed", f"after {(time.monotonic_ns() - stopped_at) / 1e9:.2f} s"
                )
                stopped_at = None
                self.error = None
            gap = 0
            if last_number is not None and frame.frame_number > last_number + 1:
                gap = frame.frame_number - last_number - 1
                self.stats.frame_gaps += gap
                self._event("frames_missing", f"{gap} frames missing before #{frame.frame_number}")
            last_number = frame.frame_number
            signature = content_signature(frame.color)
            duplicate = signature == last_signature
            last_signature = signature
            if duplicate:
                self.stats.duplicates += 1
                duplicate_run += 1
                if duplicate_run == self._freeze_frames:
                    self.frozen = True
                    self.stats.freezes += 1
                    self._event("camera_frozen", f"{duplicate_run + 1} identical frames")
            else:
                if self.frozen:
                    self.frozen = False
                    self._event("camera_unfrozen", f"after {duplicate_run + 1} identical frames")
                duplicate_run = 0
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
                    gap,
                    duplicate,
                )
            )
