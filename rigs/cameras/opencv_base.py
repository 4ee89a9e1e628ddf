"""What the two sources of the "opencv" driver share: a UVC device and a video file.

:class:`OpenCVSource` holds the lifecycle both follow (a fresh stop event per connection, the
frame counters, the ``not connected`` error), the rig file's ``on_mode_mismatch`` policy, the
provenance fields both report, and the nominal intrinsics: UVC cameras report none, and a
video file standing in for one has none either. The device driver is
:class:`rigs.cameras.opencv_camera.OpenCVCamera`, the file source
:class:`rigs.cameras.video_file.VideoFileCamera`.
"""

from __future__ import annotations

import logging
import math
import threading
from abc import abstractmethod

from rigs.cameras.base import Camera, CameraError, CameraInfo, Frame, Intrinsics
from rigs.spec import Camera as CameraSpec

DRIVER = "opencv"  # the rig-file driver name both sources report in CameraInfo

# UVC cameras report no intrinsics. Until a calibration record gives real ones we assume a
# 70° horizontal field of view with square pixels, centred, no distortion: typical of the
# webcams labs mount (a C920 is specified at 78° diagonal, about 70° horizontal at 16:9).
NOMINAL_HFOV_DEG = 70.0


def nominal_intrinsics(width: int, height: int, hfov_deg: float = NOMINAL_HFOV_DEG) -> Intrinsics:
    """A pinhole guess from a nominal horizontal field of view: square pixels, centred, no distortion."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return Intrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


class OpenCVSource(Camera):
    """A camera read through OpenCV: the parts a UVC device and a video file have in common.

    ``mismatch`` is None, or (with ``on_mode_mismatch = "warn"``) the one-line description of
    how the delivered mode differs from the rig file, for the operator UI. ``frames_skipped``
    counts frames the reader was too late for (the frame number jumped over them).

    A subclass opens its source in :meth:`_open` (raising CameraError, everything it opened
    closed again), returns the next frame from :meth:`_next_frame`, describes itself in
    :meth:`_info` and closes in ``disconnect()``, which sets ``_stop`` and clears ``_connected``.
    """

    def __init__(self, spec: CameraSpec, source: str):
        super().__init__(spec)
        self.mismatch: str | None = None
        self.frames_delivered = 0
        self.frames_skipped = 0
        self._source = source
        self._connected = False
        self._stop = threading.Event()
        self._actual: tuple[int, int] = (spec.width, spec.height)
        self._actual_fps: float = float(spec.fps)
        self._fourcc = ""
        self._extra: dict[str, str] = {}
        self._timestamps = ""
        self._last_number = -1

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the source, check its mode against the spec, start delivering."""
        if self._connected:
            return
        # A fresh event per connection: a device's grab thread of an earlier connection that
        # is still blocked in the driver keeps its own (set) event and can never resume.
        self._stop = threading.Event()
        self.mismatch = None
        self.frames_delivered = 0
        self.frames_skipped = 0
        self._last_number = -1
        self._open()
        self._connected = True

    @abstractmethod
    def _open(self) -> None:
        """Open and check the source; on CameraError nothing of it is left open."""

    @property
    def is_connected(self) -> bool:
        return self._connected

    # -- frames -----------------------------------------------------------------------------

    def read(self, timeout_s: float = 1.0) -> Frame:
        """The next frame; CameraError after ``timeout_s`` without one, or once disconnected."""
        if not self._connected:
            raise CameraError(f"camera {self.name!r} is not connected; call connect() first")
        frame = self._next_frame(timeout_s)
        if self._last_number >= 0 and frame.frame_number > self._last_number + 1:
            self.frames_skipped += frame.frame_number - self._last_number - 1
        self._last_number = frame.frame_number
        self.frames_delivered += 1
        return frame

    @abstractmethod
    def _next_frame(self, timeout_s: float) -> Frame:
        """The source's next frame (``read()`` has checked the connection)."""

    def _raise_if_stopped(self) -> None:
        if self._stop.is_set():
            raise CameraError(f"camera {self.name!r} was disconnected")

    # -- description ------------------------------------------------------------------------

    def intrinsics(self) -> Intrinsics:
        """A pinhole guess from a nominal 70° horizontal field of view at the delivered size.

        UVC cameras report no intrinsics; calibration records replace this guess.
        """
        w, h = self._actual
        return nominal_intrinsics(w, h)

    def info(self) -> CameraInfo:
        """Driver, model, serial and how frames are timestamped, for provenance."""
        w, h = self._actual
        extra = {
            "source": self._source,
            "width": str(w),
            "height": str(h),
            "fps": f"{self._actual_fps:g}",
            "fourcc": self._fourcc,
            "timestamps": self._timestamps,
            "intrinsics": f"nominal guess, {NOMINAL_HFOV_DEG:g} deg horizontal field of view",
            **self._extra,
        }
        if self.mismatch:
            extra["mismatch"] = self.mismatch
        return self._info(extra)

    @abstractmethod
    def _info(self, extra: dict[str, str]) -> CameraInfo:
        """The CameraInfo of this source, around the fields both sources report (``extra``)."""

    def _mode_problem(self, actual: str, requested: str, what_to_change: str) -> None:
        """Apply the spec's on_mode_mismatch policy to a mode that differs from the request."""
        message = f"camera {self.name!r}: {actual}, the rig asks for {requested}; {what_to_change}"
        if self.spec.on_mode_mismatch == "error":
            raise CameraError(message + ', or set on_mode_mismatch = "warn"')
        # Logged as the source's own module (opencv_camera or video_file) logs the rest.
        logging.getLogger(type(self).__module__).warning("%s", message)
        self.mismatch = message


__all__ = ["DRIVER", "NOMINAL_HFOV_DEG", "OpenCVSource", "nominal_intrinsics"]
