"""UVC webcams (V4L2 through OpenCV) and video files standing in for them: the "opencv" driver.

**Devices** (``path`` under /dev, best a ``/dev/v4l/by-id/...`` link, or ``index`` N for
/dev/videoN) are opened with OpenCV's V4L2 backend. MJPG is asked for first where the camera
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

**Video files** (any other ``path``) are opened with the FFMPEG backend and delivered at the
spec's fps on a deadline schedule on the monotonic clock, so a file behaves like a live
camera: the frame number is the position in the file (counting on across loops), the device
stamp is the file's own presentation time (``CAP_PROP_POS_MSEC``) offset to stay increasing
across loops, the capture stamp is the deadline. At the end the file starts again if ``loop``
is set; otherwise ``read()`` raises CameraError.

:func:`list_devices` describes every V4L2 capture node with its modes, for ``teleop cameras``;
OpenCV cannot enumerate modes, so it asks the kernel directly (VIDIOC_QUERYCAP, ENUM_FMT,
ENUM_FRAMESIZES, ENUM_FRAMEINTERVALS) with structs laid out as in ``linux/videodev2.h``.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import glob
import hashlib
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from rigs.cameras.base import Camera, CameraError, CameraInfo, Frame, Intrinsics, register_driver
from rigs.cameras.pacing import FramePacer
from rigs.cameras.timemap import DeviceClockMapper
from rigs.spec import Camera as CameraSpec

log = logging.getLogger(__name__)

# UVC cameras report no intrinsics. Until a calibration record gives real ones we assume a
# 70° horizontal field of view with square pixels, centred, no distortion: typical of the
# webcams labs mount (a C920 is specified at 78° diagonal, about 70° horizontal at 16:9).
NOMINAL_HFOV_DEG = 70.0

FPS_TOLERANCE = 0.5  # drivers report e.g. 29.97 or 30.0003 for a 30 fps request
FIRST_FRAME_TIMEOUT_S = 5.0  # a UVC stream can take a second or two to start, more on a busy hub
REOPEN_INTERVAL_S = 1.0  # how often a lost device is looked for again
MAX_READ_FAILURES = 5  # consecutive failed reads before the device is closed and reopened
DISCONNECT_JOIN_S = 2.0  # how long disconnect() waits for a grab stuck in the driver
SERIAL_HEX_CHARS = 12  # a video file's "serial": this many hex digits of its sha256


# =============================================================================================
# V4L2 ioctls, laid out as in linux/videodev2.h (all fields are __u32 or byte arrays, so the
# layout has no padding and is the same on every architecture; "=" is native byte order).
# =============================================================================================

_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, kind: str, number: int, size: int) -> int:
    """The asm-generic _IOC encoding (x86, ARM, RISC-V; not alpha/mips/powerpc/sparc)."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | number


# struct v4l2_capability: driver[16], card[32], bus_info[32], version, capabilities,
# device_caps, reserved[3]
CAPABILITY = struct.Struct("=16s32s32sIII12x")
# struct v4l2_fmtdesc: index, type, flags, description[32], pixelformat, mbus_code, reserved[3]
FMTDESC = struct.Struct("=III32sII12x")
# struct v4l2_frmsizeenum: index, pixel_format, type, union {discrete {width, height};
# stepwise {min_width, max_width, step_width, min_height, max_height, step_height}},
# reserved[2] — the union is as large as its stepwise member: 6 × __u32
FRMSIZEENUM = struct.Struct("=III6I8x")
# struct v4l2_frmivalenum: index, pixel_format, width, height, type, union {discrete
# v4l2_fract; stepwise {min, max, step} v4l2_fract}, reserved[2]; v4l2_fract = numerator,
# denominator
FRMIVALENUM = struct.Struct("=IIIII6I8x")

VIDIOC_QUERYCAP = _ioc(_IOC_READ, "V", 0, CAPABILITY.size)
VIDIOC_ENUM_FMT = _ioc(_IOC_READ | _IOC_WRITE, "V", 2, FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = _ioc(_IOC_READ | _IOC_WRITE, "V", 74, FRMSIZEENUM.size)
VIDIOC_ENUM_FRAMEINTERVALS = _ioc(_IOC_READ | _IOC_WRITE, "V", 75, FRMIVALENUM.size)

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
V4L2_CAP_META_CAPTURE = 0x00800000
V4L2_CAP_DEVICE_CAPS = 0x80000000
V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE = 9
V4L2_FMT_FLAG_COMPRESSED = 0x0001
V4L2_FMT_FLAG_EMULATED = 0x0002
V4L2_FRMSIZE_TYPE_DISCRETE = 1
V4L2_FRMSIZE_TYPE_CONTINUOUS = 2
V4L2_FRMSIZE_TYPE_STEPWISE = 3
V4L2_FRMIVAL_TYPE_DISCRETE = 1

_MAX_ENUM = 256  # a buggy driver must not make an enumeration endless

# Raw V4L2 control values as OpenCV's V4L2 backend passes them through (CAP_PROP_MODE 0).
_V4L2_EXPOSURE_MANUAL = 1
_V4L2_EXPOSURE_APERTURE_PRIORITY = 3  # the "auto" mode UVC cameras implement
_V4L2_EXPOSURE_UNIT_US = 100  # V4L2_CID_EXPOSURE_ABSOLUTE counts 100 µs units

IoctlFn = Callable[[int, int, bytes], bytes]


def fourcc_to_str(code: int) -> str:
    """A V4L2/OpenCV FOURCC code as its four characters ('MJPG', 'YUYV'), trailing blanks cut."""
    code = int(code) & 0x7FFFFFFF  # bit 31 marks big-endian variants
    chars = bytes((code >> (8 * i)) & 0xFF for i in range(4))
    return chars.decode("ascii", errors="replace").rstrip(" \x00")


def fourcc_to_code(text: str) -> int:
    """The FOURCC code of a 1–4 character name ('MJPG'), padded with blanks as V4L2 does."""
    raw = text.encode("ascii").ljust(4, b" ")[:4]
    return raw[0] | raw[1] << 8 | raw[2] << 16 | raw[3] << 24


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()


def _fps(numerator: int, denominator: int) -> float:
    """Frames per second of a frame *interval* numerator/denominator seconds."""
    return round(denominator / numerator, 3) if numerator else 0.0


@dataclass(frozen=True)
class V4L2Capability:
    """What VIDIOC_QUERYCAP tells about a /dev/video node."""

    driver: str
    card: str
    bus_info: str
    version: int
    capabilities: int
    device_caps: int

    @property
    def node_caps(self) -> int:
        """Capabilities of this node (the device-wide set when the driver gives no per-node one)."""
        if self.capabilities & V4L2_CAP_DEVICE_CAPS:
            return self.device_caps
        return self.capabilities

    @property
    def is_video_capture(self) -> bool:
        return bool(self.node_caps & (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE))

    @property
    def buf_type(self) -> int:
        if self.node_caps & V4L2_CAP_VIDEO_CAPTURE:
            return V4L2_BUF_TYPE_VIDEO_CAPTURE
        return V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE

    @property
    def kernel_version(self) -> str:
        v = self.version
        return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def parse_capability(buf: bytes) -> V4L2Capability:
    """Decode a filled ``struct v4l2_capability``."""
    driver, card, bus, version, caps, dev_caps = CAPABILITY.unpack(buf)
    return V4L2Capability(_cstr(driver), _cstr(card), _cstr(bus), version, caps, dev_caps)


def parse_fmtdesc(buf: bytes) -> dict[str, Any]:
    """Decode a filled ``struct v4l2_fmtdesc`` into fourcc, description and flags."""
    _index, _type, flags, description, pixelformat, _mbus = FMTDESC.unpack(buf)
    return {
        "fourcc": fourcc_to_str(pixelformat),
        "code": pixelformat,
        "description": _cstr(description),
        "compressed": bool(flags & V4L2_FMT_FLAG_COMPRESSED),
        "emulated": bool(flags & V4L2_FMT_FLAG_EMULATED),
    }


def parse_frmsize(buf: bytes) -> dict[str, Any]:
    """Decode a filled ``struct v4l2_frmsizeenum``.

    Discrete sizes give ``width``/``height``; stepwise and continuous ones give the largest
    size as ``width``/``height`` plus ``width_range``/``height_range`` = [min, max, step].
    """
    _index, _fmt, kind, *u = FRMSIZEENUM.unpack(buf)
    if kind == V4L2_FRMSIZE_TYPE_DISCRETE:
        return {"type": "discrete", "width": u[0], "height": u[1]}
    return {
        "type": "continuous" if kind == V4L2_FRMSIZE_TYPE_CONTINUOUS else "stepwise",
        "width": u[1],
        "height": u[4],
        "width_range": [u[0], u[1], u[2]],
        "height_range": [u[3], u[4], u[5]],
    }


def parse_frmival(buf: bytes) -> dict[str, Any]:
    """Decode a filled ``struct v4l2_frmivalenum`` into fps (discrete) or an fps range."""
    _index, _fmt, _w, _h, kind, *u = FRMIVALENUM.unpack(buf)
    if kind == V4L2_FRMIVAL_TYPE_DISCRETE:
        return {"type": "discrete", "fps": _fps(u[0], u[1])}
    # min/max are intervals: the shortest interval is the highest frame rate.
    return {"type": "stepwise", "fps_range": [_fps(u[2], u[3]), _fps(u[0], u[1])]}


def _size_query(index: int, *, code: int) -> bytes:
    return FRMSIZEENUM.pack(index, code, 0, 0, 0, 0, 0, 0, 0)


def _interval_query(index: int, *, code: int, width: int, height: int) -> bytes:
    return FRMIVALENUM.pack(index, code, width, height, 0, 0, 0, 0, 0, 0, 0)


def _enumerate(fd: int, request: int, make: Callable[[int], bytes], ioctl: IoctlFn) -> list[bytes]:
    """Run an ENUM ioctl for index 0, 1, … until the driver says there are no more."""
    out: list[bytes] = []
    for index in range(_MAX_ENUM):
        try:
            out.append(ioctl(fd, request, make(index)))
        except OSError as exc:
            # EINVAL is the normal end of the list; ENOTTY is a driver without this ioctl.
            if exc.errno in (errno.EINVAL, errno.ENOTTY):
                break
            raise
    return out


def read_capability(fd: int, ioctl: IoctlFn = fcntl.ioctl) -> V4L2Capability:
    """VIDIOC_QUERYCAP on an open /dev/video descriptor."""
    return parse_capability(ioctl(fd, VIDIOC_QUERYCAP, bytes(CAPABILITY.size)))


def enumerate_formats(
    fd: int, buf_type: int = V4L2_BUF_TYPE_VIDEO_CAPTURE, ioctl: IoctlFn = fcntl.ioctl
) -> list[dict[str, Any]]:
    """Every pixel format of a capture node with its frame sizes and frame rates.

    Each format: ``fourcc``, ``description``, ``compressed``, ``sizes``; each size:
    ``width``, ``height``, ``fps`` (discrete rates, highest first) and, for a stepwise
    interval, ``fps_range`` = [lowest, highest].
    """
    formats = []
    fmt_bufs = _enumerate(
        fd, VIDIOC_ENUM_FMT, lambda i: FMTDESC.pack(i, buf_type, 0, b"", 0, 0), ioctl
    )
    for fmt_buf in fmt_bufs:
        fmt = parse_fmtdesc(fmt_buf)
        code = fmt.pop("code")
        sizes = []
        size_bufs = _enumerate(
            fd,
            VIDIOC_ENUM_FRAMESIZES,
            functools.partial(_size_query, code=code),
            ioctl,
        )
        for size_buf in size_bufs:
            size = parse_frmsize(size_buf)
            w, h = size["width"], size["height"]
            ivals = [
                parse_frmival(b)
                for b in _enumerate(
                    fd,
                    VIDIOC_ENUM_FRAMEINTERVALS,
                    functools.partial(_interval_query, code=code, width=w, height=h),
                    ioctl,
                )
            ]
            size["fps"] = sorted((iv["fps"] for iv in ivals if "fps" in iv), reverse=True)
            for iv in ivals:
                if "fps_range" in iv:
                    size["fps_range"] = iv["fps_range"]
            sizes.append(size)
        fmt["sizes"] = sizes
        formats.append(fmt)
    return formats


def _links_to(real_path: str, directory: str) -> list[str]:
    """The symlinks in ``directory`` (e.g. /dev/v4l/by-id) that resolve to ``real_path``."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        link = os.path.join(directory, name)
        if os.path.realpath(link) == real_path:
            out.append(link)
    return out


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _sysfs_name(real_path: str) -> str:
    """The card name the kernel publishes for /dev/videoN (``/sys/class/video4linux/…/name``)."""
    return _read_text(f"/sys/class/video4linux/{os.path.basename(real_path)}/name")


def _usb_serial(real_path: str) -> str:
    """The USB iSerial of the camera behind /dev/videoN, if it has one."""
    iface = os.path.realpath(f"/sys/class/video4linux/{os.path.basename(real_path)}/device")
    # ``device`` is the USB interface (…/1-2:1.0); the USB device (…/1-2) holds ``serial``.
    return _read_text(os.path.join(os.path.dirname(iface), "serial"))


def _serial_from_by_id(by_id: list[str]) -> str:
    """udev's ID_SERIAL out of a by-id link: ``usb-<ID_SERIAL>-video-index0``.

    ID_SERIAL is vendor_model_serial, or just vendor_model for a camera without a serial
    number; the serial part cannot be cut out reliably, so the whole string is returned.
    """
    for link in by_id:
        name = os.path.basename(link)
        if "-video-index" in name:
            name = name.rsplit("-video-index", 1)[0]
        for prefix in ("usb-", "pci-", "platform-"):
            if name.startswith(prefix):
                return name[len(prefix) :]
        return name
    return ""


def _video_nodes() -> list[str]:
    def number(path: str) -> int:
        digits = path[len("/dev/video") :]
        return int(digits) if digits.isdigit() else 1 << 30

    return sorted(glob.glob("/dev/video*"), key=number)


def describe_device(path: str, ioctl: IoctlFn = fcntl.ioctl) -> dict[str, Any]:
    """Describe one /dev/video node: links, card, driver, capture flag and modes.

    Never raises for a node that cannot be queried: the problem goes into ``error``.
    """
    real = os.path.realpath(path)
    entry: dict[str, Any] = {
        "path": real,
        "by_id": _links_to(real, "/dev/v4l/by-id"),
        "by_path": _links_to(real, "/dev/v4l/by-path"),
        "card": _sysfs_name(real),
        "driver": "",
        "bus_info": "",
        "capture": None,
        "formats": [],
    }
    try:
        fd = os.open(real, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        hint = " (add your user to the 'video' group)" if exc.errno == errno.EACCES else ""
        entry["error"] = f"cannot open: {exc.strerror}{hint}"
        return entry
    try:
        cap = read_capability(fd, ioctl)
        entry.update(card=cap.card or entry["card"], driver=cap.driver, bus_info=cap.bus_info)
        entry["capture"] = cap.is_video_capture
        if cap.is_video_capture:
            entry["formats"] = enumerate_formats(fd, cap.buf_type, ioctl)
    except OSError as exc:
        entry["error"] = f"V4L2 query failed: {exc.strerror or exc}"
    finally:
        os.close(fd)
    return entry


def list_devices() -> list[dict[str, Any]]:
    """Every V4L2 video capture node on this machine, for ``teleop cameras``.

    Each entry: ``path`` (/dev/videoN), ``by_id`` and ``by_path`` (stable links; put a by-id
    link in the rig file), ``card``, ``driver``, ``bus_info``, ``formats`` (see
    :func:`enumerate_formats`). Nodes that are not video capture (a UVC camera's metadata
    node) are left out; a node that cannot be opened is listed with an ``error``. An empty
    list when there are no video devices.
    """
    out = []
    for node in _video_nodes():
        entry = describe_device(node)
        if entry["capture"] is False:
            continue
        out.append(entry)
    return out


def choose_fourcc(formats: list[dict[str, Any]], width: int, height: int, fps: int) -> str | None:
    """The pixel format to ask for: MJPG if it offers the mode, else any format that offers it.

    With no format offering the exact mode, MJPG if the camera has it at all (its modes reach
    furthest over USB 2); None leaves the driver's default.
    """

    def offers(fmt: dict[str, Any]) -> bool:
        for size in fmt["sizes"]:
            if "width_range" in size:
                lo_w, hi_w, _ = size["width_range"]
                lo_h, hi_h, _ = size["height_range"]
                fits = lo_w <= width <= hi_w and lo_h <= height <= hi_h
            else:
                fits = (size["width"], size["height"]) == (width, height)
            if not fits:
                continue
            if any(abs(f - fps) <= FPS_TOLERANCE for f in size.get("fps", [])):
                return True
            lo, hi = size.get("fps_range", (0.0, 0.0))
            if lo - FPS_TOLERANCE <= fps <= hi + FPS_TOLERANCE:
                return True
            if not size.get("fps") and "fps_range" not in size:
                return True  # the driver lists no rates: assume it can
        return False

    names = [f["fourcc"] for f in formats]
    ordered = sorted(formats, key=lambda f: f["fourcc"] not in ("MJPG", "JPEG"))
    for fmt in ordered:
        if offers(fmt):
            return fmt["fourcc"]
    if "MJPG" in names:
        return "MJPG"
    return None


def nominal_intrinsics(width: int, height: int, hfov_deg: float = NOMINAL_HFOV_DEG) -> Intrinsics:
    """A pinhole guess from a nominal horizontal field of view: square pixels, centred, no distortion."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return Intrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


# =============================================================================================
# The driver
# =============================================================================================


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


def _open_file(path: str) -> Any:
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap = cv2.VideoCapture(path)  # whatever other backend this build has
    return cap


def _is_device_path(path: str) -> bool:
    return path.startswith("/dev/")


@register_driver("opencv")
class OpenCVCamera(Camera):
    """A UVC camera through OpenCV's V4L2 backend, or a video file paced like one.

    ``mismatch`` is None, or (with ``on_mode_mismatch = "warn"``) the one-line description of
    how the delivered mode differs from the rig file, for the operator UI. ``frames_skipped``
    counts frames the reader was too late for (the frame number jumped over them).
    """

    def __init__(self, spec: CameraSpec, **_ignored: object):
        super().__init__(spec)
        self.mismatch: str | None = None
        self.frames_delivered = 0
        self.frames_skipped = 0
        self._is_file = spec.path is not None and not _is_device_path(spec.path)
        self._source = spec.path if spec.path is not None else f"/dev/video{spec.index}"
        self._period_ns = round(1e9 / spec.fps)
        self._connected = False
        self._stop = threading.Event()
        self._actual: tuple[int, int] = (spec.width, spec.height)
        self._actual_fps: float = float(spec.fps)
        self._fourcc = ""
        self._extra: dict[str, str] = {}
        self._serial: str | None = None
        self._timestamps = ""
        # device state
        self._node: _DeviceNode | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._latest: _Grabbed | None = None
        self._grabbed = 0  # frames the helper thread has published
        self._taken = 0  # of those, the last one read() returned
        self._grab_error: str | None = None
        self._mapper = DeviceClockMapper()
        self._stamp_source: str | None = None
        self._last_number = -1
        # file state
        self._lock = threading.Lock()  # a file's VideoCapture: read() vs disconnect()
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

    def connect(self) -> None:
        """Open the device or file, check its mode against the spec, start delivering."""
        if self._connected:
            return
        # A fresh event per connection: a grab thread of an earlier connection that is still
        # blocked in the driver keeps its own (set) event and can never resume.
        self._stop = threading.Event()
        self._pacer = FramePacer(self.spec.name, self.spec.fps, self._stop)
        self.mismatch = None
        self.frames_delivered = 0
        self.frames_skipped = 0
        self._last_number = -1
        if self._is_file:
            self._connect_file()
        else:
            self._connect_device()
        self._connected = True

    @property
    def is_connected(self) -> bool:
        return self._connected

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
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._prefetched = None

    # -- frames -----------------------------------------------------------------------------

    def read(self, timeout_s: float = 1.0) -> Frame:
        """The next frame; CameraError after ``timeout_s`` without one, or once disconnected."""
        if not self._connected:
            raise CameraError(f"camera {self.name!r} is not connected; call connect() first")
        frame = self._read_file(timeout_s) if self._is_file else self._read_device(timeout_s)
        if self._last_number >= 0 and frame.frame_number > self._last_number + 1:
            self.frames_skipped += frame.frame_number - self._last_number - 1
        self._last_number = frame.frame_number
        self.frames_delivered += 1
        return frame

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
        if self._is_file:
            return CameraInfo("opencv", "video file", self._file_serial(), "", extra)
        node = self._node
        model = ""
        serial = ""
        if node is not None:
            model = _sysfs_name(node.dev_path) or node.card
            serial = _usb_serial(node.dev_path) or _serial_from_by_id(node.by_id)
            extra["device"] = node.dev_path
            if node.by_id:
                extra["by_id"] = node.by_id[0]
            if node.driver:
                extra["v4l2_driver"] = node.driver
            if node.bus_info:
                extra["bus_info"] = node.bus_info
        return CameraInfo("opencv", model or "UVC camera", serial, "", extra)

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

    def _mode_problem(self, actual: str, requested: str, what_to_change: str) -> None:
        """Apply the spec's on_mode_mismatch policy to a mode that differs from the request."""
        message = f"camera {self.name!r}: {actual}, the rig asks for {requested}; {what_to_change}"
        if self.spec.on_mode_mismatch == "error":
            raise CameraError(message + ', or set on_mode_mismatch = "warn"')
        log.warning("%s", message)
        self.mismatch = message

    # =========================================================================================
    # Devices
    # =========================================================================================

    def _probe_device(self) -> _DeviceNode:
        """Resolve the spec's path or index to a V4L2 capture node and list its modes."""
        path = self._source
        if not os.path.exists(path):
            raise CameraError(
                f"camera {self.name!r}: {path} does not exist (unplugged, or renamed?); "
                "`ls /dev/v4l/by-id` or `teleop cameras` lists the cameras on this machine"
            )
        real = os.path.realpath(path)
        node = _DeviceNode(path=path, dev_path=real, by_id=_links_to(real, "/dev/v4l/by-id"))
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
            put("auto_exposure", cv2.CAP_PROP_AUTO_EXPOSURE, _V4L2_EXPOSURE_APERTURE_PRIORITY)
        else:
            # Manual first: most UVC cameras ignore an exposure time while auto is on.
            put("auto_exposure", cv2.CAP_PROP_AUTO_EXPOSURE, _V4L2_EXPOSURE_MANUAL)
            units = max(1, round(spec.exposure_us / _V4L2_EXPOSURE_UNIT_US))
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

    def _connect_device(self) -> None:
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

    def _read_device(self, timeout_s: float) -> Frame:
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

    # =========================================================================================
    # Video files
    # =========================================================================================

    def _connect_file(self) -> None:
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
            self._prefetched = self._file_advance(decode=True)
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

    def _file_ended_error(self) -> CameraError:
        return CameraError(
            f"camera {self.name!r}: video file ended ({self._source}, {self._pass_index} "
            "frames); set loop = true to replay it"
        )

    def _file_advance(self, decode: bool) -> tuple[np.ndarray, int, int]:
        """Step to the next frame of the file: (image or an empty array, frame number, stamp)."""
        cap = self._cap
        ok, color = cap.read() if decode else (cap.grab(), None)
        if not ok:
            if self._pass_index == 0 or not self.spec.loop:
                self._ended = True
                raise self._file_ended_error()
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

    def _read_file(self, timeout_s: float) -> Frame:
        if self._ended:
            raise self._file_ended_error()
        deadline, missed = self._pacer.wait(timeout_s)
        steps = 1 + missed  # a live camera would have streamed past the missed frames
        with self._lock:
            self._raise_if_stopped()
            if self._prefetched is not None:
                color, number, device_ns = self._prefetched
                self._prefetched = None
                steps -= 1
            for i in range(steps):
                color, number, device_ns = self._file_advance(decode=i == steps - 1)
        return Frame(
            color=color,
            frame_number=number,
            receipt_stamp_ns=time.monotonic_ns(),
            capture_stamp_ns=deadline,
            device_stamp_ns=device_ns,
        )


__all__ = [
    "NOMINAL_HFOV_DEG",
    "OpenCVCamera",
    "V4L2Capability",
    "choose_fourcc",
    "describe_device",
    "enumerate_formats",
    "fourcc_to_code",
    "fourcc_to_str",
    "list_devices",
    "nominal_intrinsics",
    "parse_capability",
    "parse_fmtdesc",
    "parse_frmival",
    "parse_frmsize",
    "read_capability",
]
