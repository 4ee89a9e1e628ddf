"""Video files standing in for UVC cameras: the "opencv" driver given a ``path`` outside /dev.

A file is opened with the FFMPEG backend and delivered at the spec's fps on a deadline schedule
on the monotonic clock (:class:`~rigs.cameras.pacing.FramePacer`), so it behaves like a live
camera: the frame number is the position in the file (counting on across loops), the device
stamp is the file's own presentation time (``CAP_PROP_POS_MSEC``) offset to stay increasing
across loops, the capture stamp is the deadline. A reader that falls behind finds the frames it
missed skipped, as with a camera that kept streaming. At the end the file starts again if
``loop`` is set; otherwise ``read()`` raises CameraError.

The "opencv" driver name chooses between this and the device driver:
:func:`rigs.cameras.opencv_camera.open_opencv`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any

import cv2
import numpy as np

from rigs.cameras.base import CameraError, CameraInfo, Frame
from rigs.cameras.opencv_base import DRIVER, OpenCVSource
from rigs.cameras.pacing import FramePacer
from rigs.cameras.v4l2 import fourcc_to_str
from rigs.spec import Camera as CameraSpec

log = logging.getLogger(__name__)

SERIAL_HEX_CHARS = 12  # a video file's "serial": this many hex digits of its sha256


def _open_file(path: str) -> Any:
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap = cv2.VideoCapture(path)  # whatever other backend this build has
    return cap


class VideoFileCamera(OpenCVSource):
    """A video file paced like a UVC camera at the spec's fps (see the module docstring)."""

    def __init__(self, spec: CameraSpec, **_ignored: object):
        if spec.path is None:
            raise ValueError(f"camera {spec.name!r}: a video file camera needs a path")
        super().__init__(spec, spec.path)
        self._serial: str | None = None
        self._period_ns = round(1e9 / spec.fps)
        self._lock = threading.Lock()  # the VideoCapture: read() vs disconnect()
        self._cap: Any = None
        self._prefetched: tuple[np.ndarray, int, int] | None = None
        self._ended = False
        self._file_fps = 0.0
        self._file_period_ns = self._period_ns
        self._pass_index = 0  # position in the file of the next frame
        self._pass_base_number = 0  # frame number of position 0 in the current pass
        self._pass_base_ns = 0  # device stamp of position 0 in the current pass
        self._last_pos_ns = -1
        self._pacer = FramePacer(spec.name, spec.fps, self._stop)

    # -- lifecycle --------------------------------------------------------------------------

    def _open(self) -> None:
        self._pacer = FramePacer(self.spec.name, self.spec.fps, self._stop)
        path = self._source
        if not os.path.isfile(path):
            raise CameraError(
                f"camera {self.name!r}: video file {path} does not exist"
                + ("" if os.path.isabs(path) else f" (relative to {os.getcwd()})")
            )
        cap = _open_file(path)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"camera {self.name!r}: cannot open {path} as a video file")
        self._cap = cap
        self._fourcc = fourcc_to_str(round(cap.get(cv2.CAP_PROP_FOURCC)))
        self._file_fps = float(cap.get(cv2.CAP_PROP_FPS))
        self._file_period_ns = (
            round(1e9 / self._file_fps) if self._file_fps > 0 else self._period_ns
        )
        self._pass_index = self._pass_base_number = self._pass_base_ns = 0
        self._last_pos_ns = -1
        self._ended = False
        try:
            # Decode the first frame now: a file OpenCV opens but cannot decode, and the true
            # frame size, are known before recording starts.
            self._prefetched = self._advance(decode=True)
        except CameraError:
            self.disconnect()
            raise CameraError(
                f"camera {self.name!r}: {path} has no frame OpenCV can decode"
            ) from None
        h, w = self._prefetched[0].shape[:2]
        self._actual = (w, h)
        self._actual_fps = float(self.spec.fps)
        self._timestamps = (
            "device stamp = file presentation time (offset per loop); "
            "capture stamp = paced delivery deadline"
        )
        frame_count = round(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._extra = {
            "file_fps": f"{self._file_fps:g}",
            "file_frames": str(frame_count),
            "loop": str(self.spec.loop).lower(),
            "backend": str(cap.getBackendName()),
        }
        if (w, h) != (self.spec.width, self.spec.height):
            try:
                self._mode_problem(
                    f"{path} is {w}x{h}",
                    f"{self.spec.width}x{self.spec.height}",
                    f"set width = {w}, height = {h} in the rig file",
                )
            except CameraError:
                self.disconnect()
                raise
        self._pacer.start(time.monotonic_ns())
        log.info(
            "camera %s: video file %s (%dx%d, %g fps in the file) delivered at %d fps%s",
            self.name,
            path,
            w,
            h,
            self._file_fps,
            self.spec.fps,
            ", looping" if self.spec.loop else "",
        )

    def disconnect(self) -> None:
        """Close; a ``read()`` waiting in another thread wakes and raises CameraError."""
        self._connected = False
        self._stop.set()
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._prefetched = None

    # -- frames -----------------------------------------------------------------------------

    def _ended_error(self) -> CameraError:
        return CameraError(
            f"camera {self.name!r}: video file ended ({self._source}, {self._pass_index} "
            "frames); set loop = true to replay it"
        )

    def _advance(self, decode: bool) -> tuple[np.ndarray, int, int]:
        """Step to the next frame of the file: (image or an empty array, frame number, stamp)."""
        cap = self._cap
        ok, color = cap.read() if decode else (cap.grab(), None)
        if not ok:
            if self._pass_index == 0 or not self.spec.loop:
                self._ended = True
                raise self._ended_error()
            # Start again; numbers and stamps go on from where this pass ended.
            self._pass_base_number += self._pass_index
            self._pass_base_ns += self._last_pos_ns + self._file_period_ns
            self._pass_index = 0
            self._last_pos_ns = -1
            if not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                cap.release()
                cap = self._cap = _open_file(self._source)
            ok, color = cap.read() if decode else (cap.grab(), None)
            if not ok:
                self._ended = True
                raise CameraError(f"camera {self.name!r}: cannot restart {self._source}")
        pos_ns = round(float(cap.get(cv2.CAP_PROP_POS_MSEC)) * 1e6)
        if pos_ns <= self._last_pos_ns:
            # A container without usable timestamps: keep the stamps increasing at the
            # file's nominal rate.
            pos_ns = self._last_pos_ns + self._file_period_ns
        self._last_pos_ns = pos_ns
        number = self._pass_base_number + self._pass_index
        self._pass_index += 1
        empty = np.empty((0, 0, 3), np.uint8)
        return (color if color is not None else empty), number, self._pass_base_ns + pos_ns

    def _next_frame(self, timeout_s: float) -> Frame:
        if self._ended:
            raise self._ended_error()
        deadline, missed = self._pacer.wait(timeout_s)
        steps = 1 + missed  # a live camera would have streamed past the missed frames
        with self._lock:
            self._raise_if_stopped()
            if self._prefetched is not None:
                color, number, device_ns = self._prefetched
                self._prefetched = None
                steps -= 1
            for i in range(steps):
                color, number, device_ns = self._advance(decode=i == steps - 1)
        return Frame(
            color=color,
            frame_number=number,
            receipt_stamp_ns=time.monotonic_ns(),
            capture_stamp_ns=deadline,
            device_stamp_ns=device_ns,
        )

    # -- description ------------------------------------------------------------------------

    def _info(self, extra: dict[str, str]) -> CameraInfo:
        return CameraInfo(DRIVER, "video file", self._file_serial(), "", extra)

    def _file_serial(self) -> str:
        if self._serial is None:
            digest = hashlib.sha256()
            try:
                with open(self._source, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
                self._serial = digest.hexdigest()[:SERIAL_HEX_CHARS]
            except OSError:
                return ""
        return self._serial


__all__ = ["VideoFileCamera"]
