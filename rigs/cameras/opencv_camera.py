"""UVC webcams through OpenCV's V4L2 backend: the "opencv" driver, and which source it opens.

The rig file's ``driver = "opencv"`` opens :class:`OpenCVCamera` for a device (``path`` under
/dev, best a ``/dev/v4l/by-id/...`` link, or ``index`` N for /dev/videoN) and
:class:`~rigs.cameras.video_file.VideoFileCamera` for any other ``path``, a video file paced
like a camera (:func:`open_opencv` chooses). What both share is in
:mod:`rigs.cameras.opencv_base`.

A device is opened with OpenCV's V4L2 backend. MJPG is asked for first where the camera
offers it — it is what lets a USB 2 webcam deliver 640×480@30 and above — then the size and
frame rate; what the driver actually agreed to is read back and compared with the rig file.
Exposure and white balance are fixed from the spec where the camera has the controls.

A helper thread does the blocking ``VideoCapture.read()``: OpenCV's V4L2 backend waits up to
10 s in ``select()`` for a frame (``OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT``, read once per process)
and ignores ``CAP_PROP_READ_TIMEOUT_MSEC`` (only the FFMPEG backend takes it, at open), so
``read(timeout_s)`` waits on the thread, never on the driver. The thread keeps only the newest
frame, like a device that keeps streaming: a reader that falls behind sees the frame number
jump. If the device disappears (a USB cable pulled), the thread closes it and reopens the same
path once it is back, so the recorder sees a stopped camera resume.

Timestamps: on V4L2, ``CAP_PROP_POS_MSEC`` is the dequeued buffer's ``timestamp`` (µs
resolution, 0 before the first frame). uvcvideo stamps buffers on CLOCK_MONOTONIC — the clock
``time.monotonic_ns`` reads — at start of exposure when it can recover the camera's clock
(UVC SCR/PTS), else when the first USB packet of the frame arrived. Such a stamp is already a
capture time on the host clock and is used as is; a stamp on another clock (uvcvideo's
``clock=realtime`` option, other drivers) goes through :class:`DeviceClockMapper`; a driver
that gives none falls back to the receipt time. ``info().extra["timestamps"]`` says which.

The kernel side (mode enumeration, device names and serials, the choice of pixel format) is
in :mod:`rigs.cameras.v4l2`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from rigs.cameras.base import Camera, CameraError, CameraInfo, Frame, register_driver
from rigs.cameras.opencv_base import DRIVER, OpenCVSource
from rigs.cameras.timemap import DeviceClockMapper
from rigs.cameras.v4l2 import (
    FPS_TOLERANCE,
    V4L2_EXPOSURE_APERTURE_PRIORITY,
    V4L2_EXPOSURE_MANUAL,
    V4L2_EXPOSURE_UNIT_US,
    choose_fourcc,
    enumerate_formats,
    fourcc_to_code,
    fourcc_to_str,
    links_to,
    read_capability,
    serial_from_by_id,
    sysfs_name,
    usb_serial,
)
from rigs.cameras.video_file import VideoFileCamera
from rigs.spec import Camera as CameraSpec

log = logging.getLogger(__name__)

FIRST_FRAME_TIMEOUT_S = 5.0  # a UVC stream can take a second or two to start, more on a busy hub
REOPEN_INTERVAL_S = 1.0  # how often a lost device is looked for again
MAX_READ_FAILURES = 5  # consecutive failed reads before the device is closed and reopened
DISCONNECT_JOIN_S = 2.0  # how long disconnect() waits for a grab stuck in the driver


@dataclass
class _DeviceNode:
    """A resolved, queried V4L2 capture node."""

    path: str  # as the rig file names it (a by-id link, or /dev/videoN)
    dev_path: str  # the /dev/videoN it resolves to
    card: str = ""
    driver: str = ""
    bus_info: str = ""
    by_id: list[str] = field(default_factory=list)
    formats: list[dict[str, Any]] | None = None  # None: the modes could not be listed

    def describe(self) -> str:
        return self.path if self.path == self.dev_path else f"{self.path} ({self.dev_path})"


@dataclass(frozen=True)
class _Grabbed:
    color: np.ndarray
    frame_number: int
    receipt_ns: int
    capture_ns: int
    device_ns: int | None


def _open_v4l2(dev_path: str) -> Any:
    """Open a V4L2 node with OpenCV (a seam for tests, which substitute a fake capture)."""
    return cv2.VideoCapture(dev_path, cv2.CAP_V4L2)


def _is_device_path(path: str) -> bool:
    return path.startswith("/dev/")


@register_driver(DRIVER)
def open_opencv(spec: CameraSpec, **resources: object) -> Camera:
    """The "opencv" driver: the device driver for a /dev path or an index, else a video file."""
    if spec.path is not None and not _is_device_path(spec.path):
        return VideoFileCamera(spec, **resources)
    return OpenCVCamera(spec, **resources)


class OpenCVCamera(OpenCVSource):
    """A UVC camera through OpenCV's V4L2 backend (see the module docstring).

    ``mismatch`` and ``frames_skipped``: see :class:`~rigs.cameras.opencv_base.OpenCVSource`.
    """

    def __init__(self, spec: CameraSpec, **_ignored: object):
        super().__init__(spec, spec.path if spec.path is not None else f"/dev/video{spec.index}")
        self._node: _DeviceNode | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._latest: _Grabbed | None = None
        self._grabbed = 0  # frames the helper thread has published
        self._taken = 0  # of those, the last one read() returned
        self._grab_error: str | None = None
        self._mapper = DeviceClockMapper()
        self._stamp_source: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Close; a ``read()`` waiting in another thread wakes and raises CameraError."""
        with self._cond:
            self._connected = False
            self._stop.set()
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(DISCONNECT_JOIN_S)
            if thread.is_alive():
                # The grab is blocked inside the driver (up to its 10 s select timeout); the
                # thread releases the device itself when the driver returns.
                log.warning(
                    "camera %s: the driver is still blocked in a read; the device is closed "
                    "when it returns",
                    self.name,
                )

    # -- description ------------------------------------------------------------------------

    def _info(self, extra: dict[str, str]) -> CameraInfo:
        node = self._node
        model = ""
        serial = ""
        if node is not None:
            model = sysfs_name(node.dev_path) or node.card
            serial = usb_serial(node.dev_path) or serial_from_by_id(node.by_id)
            extra["device"] = node.dev_path
            if node.by_id:
                extra["by_id"] = node.by_id[0]
            if node.driver:
                extra["v4l2_driver"] = node.driver
            if node.bus_info:
                extra["bus_info"] = node.bus_info
        return CameraInfo(DRIVER, model or "UVC camera", serial, "", extra)

    # -- opening ----------------------------------------------------------------------------

    def _probe_device(self) -> _DeviceNode:
        """Resolve the spec's path or index to a V4L2 capture node and list its modes."""
        path = self._source
        if not os.path.exists(path):
            raise CameraError(
                f"camera {self.name!r}: {path} does not exist (unplugged, or renamed?); "
                "`ls /dev/v4l/by-id` or `teleop cameras` lists the cameras on this machine"
            )
        real = os.path.realpath(path)
        node = _DeviceNode(path=path, dev_path=real, by_id=links_to(real, "/dev/v4l/by-id"))
        if not os.access(real, os.R_OK | os.W_OK):
            raise CameraError(
                f"camera {self.name!r}: no permission to open {node.describe()}; add your user "
                "to the 'video' group (sudo usermod -aG video $USER) and log in again"
            )
        try:
            fd = os.open(real, os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            raise CameraError(
                f"camera {self.name!r}: cannot open {node.describe()}: {exc.strerror}"
            ) from None
        try:
            try:
                cap = read_capability(fd)
            except OSError as exc:
                raise CameraError(
                    f"camera {self.name!r}: {node.describe()} is not a V4L2 video device "
                    f"({exc.strerror}); `teleop cameras` lists the cameras"
                ) from None
            if not cap.is_video_capture:
                raise CameraError(
                    f"camera {self.name!r}: {node.describe()} is not a video capture node (a "
                    "UVC camera's second node carries metadata); use its ...-video-index0 "
                    "link, see `teleop cameras`"
                )
            node.card, node.driver, node.bus_info = cap.card, cap.driver, cap.bus_info
            try:
                node.formats = enumerate_formats(fd, cap.buf_type)
            except OSError as exc:
                log.info("camera %s: cannot list modes (%s)", self.name, exc)
        finally:
            os.close(fd)
        return node

    def _open_device(self) -> Any:
        """Open, configure and check the device; the opened VideoCapture."""
        node = self._probe_device()
        spec = self.spec
        fourcc = (
            choose_fourcc(node.formats, spec.width, spec.height, spec.fps)
            if node.formats
            else "MJPG"  # modes unknown: ask for MJPG anyway; the driver refuses if it lacks it
        )
        cap = _open_v4l2(node.dev_path)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"camera {self.name!r}: OpenCV could not open {node.describe()}; another "
                f"program may be using it (`fuser {node.dev_path}`)"
            )
        try:
            # Raw V4L2 control values, not OpenCV's optional [0, 1) normalisation.
            cap.set(cv2.CAP_PROP_MODE, 0)
            # Format first: each of these restarts the stream, and the sizes and rates a
            # camera offers depend on the format.
            if fourcc is not None:
                cap.set(cv2.CAP_PROP_FOURCC, fourcc_to_code(fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
            cap.set(cv2.CAP_PROP_FPS, spec.fps)
            controls = self._apply_controls(cap)
            w = round(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            h = round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = float(cap.get(cv2.CAP_PROP_FPS))
            actual_fourcc = fourcc_to_str(round(cap.get(cv2.CAP_PROP_FOURCC)))
            self._node = node
            self._actual, self._actual_fps, self._fourcc = (w, h), fps, actual_fourcc
            self._extra["controls"] = controls
            self._extra["requested_fourcc"] = fourcc or "(driver default)"
            size_ok = (w, h) == (spec.width, spec.height)
            fps_ok = fps <= 0 or abs(fps - spec.fps) <= FPS_TOLERANCE
            if fps <= 0:
                log.warning("camera %s: the driver does not report its frame rate", self.name)
            if not (size_ok and fps_ok):
                self._mode_problem(
                    f"{node.describe()} gives {w}x{h} @ {fps:g} fps {actual_fourcc}",
                    f"{spec.width}x{spec.height} @ {spec.fps} fps",
                    "choose a mode it offers (`teleop cameras` lists them)",
                )
        except BaseException:
            cap.release()
            raise
        return cap

    def _apply_controls(self, cap: Any) -> str:
        """Exposure, gain and white balance from the spec; a summary of what the camera took."""
        spec = self.spec
        done: list[str] = []

        def put(label: str, prop: int, value: float) -> None:
            ok = bool(cap.set(prop, value))
            done.append(f"{label}={value:g}" + ("" if ok else " (unsupported)"))
            if not ok:
                log.info("camera %s: the camera has no %s control", self.name, label)

        if spec.auto_exposure:
            put("auto_exposure", cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_APERTURE_PRIORITY)
        else:
            # Manual first: most UVC cameras ignore an exposure time while auto is on.
            put("auto_exposure", cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_MANUAL)
            units = max(1, round(spec.exposure_us / V4L2_EXPOSURE_UNIT_US))
            put("exposure_100us", cv2.CAP_PROP_EXPOSURE, units)
            if spec.exposure_us * spec.fps > 1_000_000:
                log.warning(
                    "camera %s: exposure %d us is longer than a frame at %d fps; the camera "
                    "will lower its frame rate",
                    self.name,
                    spec.exposure_us,
                    spec.fps,
                )
        if spec.gain is not None:
            put("gain", cv2.CAP_PROP_GAIN, spec.gain)
        put("auto_white_balance", cv2.CAP_PROP_AUTO_WB, 1 if spec.auto_white_balance else 0)
        if not spec.auto_white_balance:
            put("white_balance_k", cv2.CAP_PROP_WB_TEMPERATURE, spec.white_balance_k)
        return "; ".join(done)

    def _open(self) -> None:
        cap = self._open_device()
        self._mapper = DeviceClockMapper()
        self._stamp_source = None
        with self._cond:
            self._latest = None
            self._grabbed = self._taken = 0
            self._grab_error = None
        self._thread = threading.Thread(
            target=self._grab_loop,
            args=(cap, self._stop),
            name=f"opencv-grab-{self.name}",
            daemon=True,
        )
        self._thread.start()
        # Wait for the first frame here, so a camera that opens but never streams (busy USB
        # bus, a wrong node) is an error at connect, before any session folder exists.
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        with self._cond:
            while self._grabbed == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            first = self._latest
            error = self._grab_error
        if first is None:
            self.disconnect()
            raise CameraError(
                f"camera {self.name!r}: {self._describe_node()} opened but sent no frame in "
                f"{FIRST_FRAME_TIMEOUT_S:g} s ({error or 'no error from the driver'}); another "
                "program may be using it, or its USB controller is out of bandwidth (MJPG, "
                "fewer cameras per controller)"
            )
        h, w = first.color.shape[:2]
        if (w, h) != self._actual:
            # The decoded image is the truth (a driver can misreport its format).
            self._actual = (w, h)
            if (w, h) != (self.spec.width, self.spec.height) and self.mismatch is None:
                try:
                    self._mode_problem(
                        f"{self._describe_node()} delivers {w}x{h} frames",
                        f"{self.spec.width}x{self.spec.height}",
                        "choose a mode it offers (`teleop cameras` lists them)",
                    )
                except CameraError:
                    self.disconnect()
                    raise
        log.info(
            "camera %s connected: %s, %dx%d @ %g fps %s, timestamps: %s",
            self.name,
            self._describe_node(),
            *self._actual,
            self._actual_fps,
            self._fourcc,
            self._timestamps,
        )

    def _describe_node(self) -> str:
        return self._node.describe() if self._node is not None else self._source

    def _grab_loop(self, cap: Any, stop: threading.Event) -> None:
        """The helper thread: read frames as they come, keep the newest, reopen a lost device."""
        failures = 0
        try:
            while not stop.is_set():
                if cap is None:
                    if stop.wait(REOPEN_INTERVAL_S):
                        break
                    if not self._device_present():
                        continue  # still unplugged; the error says so already
                    try:
                        cap = self._open_device()
                    except CameraError as exc:
                        reason = str(exc).removeprefix(f"camera {self.name!r}: ")
                        self._set_grab_error(f"reopening failed: {reason}")
                        continue
                    log.info("camera %s: reopened %s", self.name, self._describe_node())
                    failures = 0
                ok, color = cap.read()
                receipt_ns = time.monotonic_ns()
                if not ok or color is None:
                    failures += 1
                    gone = not self._device_present()
                    self._set_grab_error(
                        f"{self._source} disappeared (unplugged?)"
                        if gone
                        else f"{failures} failed reads in a row"
                    )
                    if gone or failures >= MAX_READ_FAILURES:
                        log.warning(
                            "camera %s: closing %s after read failures; will reopen",
                            self.name,
                            self._describe_node(),
                        )
                        cap.release()
                        cap = None
                    else:
                        stop.wait(0.01)  # a driver that fails at once must not spin
                    continue
                failures = 0
                pos_msec = float(cap.get(cv2.CAP_PROP_POS_MSEC))
                self._publish(color, receipt_ns, pos_msec, stop)
        finally:
            if cap is not None:
                cap.release()

    def _device_present(self) -> bool:
        """Whether the device's path still exists (a pulled USB cable removes it)."""
        return os.path.exists(self._source)

    def _set_grab_error(self, message: str) -> None:
        with self._cond:
            self._grab_error = message

    def _stamps(self, receipt_ns: int, pos_msec: float) -> tuple[int, int | None]:
        """(capture estimate, device stamp) from the V4L2 buffer timestamp of one frame."""
        # µs resolution in the kernel; a double of milliseconds holds it exactly enough.
        device_ns = round(pos_msec * 1000.0) * 1000 if pos_msec > 0 else None
        if device_ns is None:
            self._timestamps = "host receipt time (the driver gave no buffer timestamp)"
            return receipt_ns, None
        if self._stamp_source is None:
            on_host_clock = 0 <= receipt_ns - device_ns < 2_000_000_000
            self._stamp_source = "monotonic" if on_host_clock else "mapped"
            self._timestamps = (
                "V4L2 buffer timestamp (CLOCK_MONOTONIC, kernel) as capture time"
                if on_host_clock
                else "V4L2 buffer timestamp on another clock, mapped to the host clock"
            )
        if self._stamp_source == "monotonic":
            return min(device_ns, receipt_ns), device_ns
        return self._mapper.observe(device_ns, receipt_ns), device_ns

    def _publish(
        self, color: np.ndarray, receipt_ns: int, pos_msec: float, stop: threading.Event
    ) -> None:
        capture_ns, device_ns = self._stamps(receipt_ns, pos_msec)
        with self._cond:
            if stop.is_set():
                return  # disconnected meanwhile (set under this lock): not ours to publish
            self._latest = _Grabbed(color, self._grabbed, receipt_ns, capture_ns, device_ns)
            self._grabbed += 1
            self._grab_error = None
            self._cond.notify_all()

    # -- frames -----------------------------------------------------------------------------

    def _next_frame(self, timeout_s: float) -> Frame:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._grabbed == self._taken:
                self._raise_if_stopped()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    why = f" ({self._grab_error})" if self._grab_error else ""
                    raise CameraError(
                        f"camera {self.name!r}: no frame from {self._describe_node()} within "
                        f"{timeout_s:.3f} s{why}"
                    )
                self._cond.wait(remaining)
            grabbed = self._latest
            self._taken = self._grabbed
        assert grabbed is not None
        return Frame(
            color=grabbed.color,
            frame_number=grabbed.frame_number,
            receipt_stamp_ns=grabbed.receipt_ns,
            capture_stamp_ns=grabbed.capture_ns,
            device_stamp_ns=grabbed.device_ns,
        )


__all__ = ["OpenCVCamera", "open_opencv"]
