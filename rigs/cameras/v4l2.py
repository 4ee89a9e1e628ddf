"""V4L2 from the kernel's side: the ioctls OpenCV cannot make, device nodes and their names.

OpenCV cannot enumerate a camera's modes, so :func:`enumerate_formats` asks the kernel
directly (VIDIOC_QUERYCAP, ENUM_FMT, ENUM_FRAMESIZES, ENUM_FRAMEINTERVALS) with structs laid
out as in ``linux/videodev2.h``; :func:`list_devices` describes every capture node with its
modes and stable names (by-id, by-path, USB serial) for ``teleop cameras``; and
:func:`choose_fourcc` picks the pixel format the "opencv" driver asks for.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import glob
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FPS_TOLERANCE = 0.5  # drivers report e.g. 29.97 or 30.0003 for a 30 fps request

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
V4L2_EXPOSURE_MANUAL = 1
V4L2_EXPOSURE_APERTURE_PRIORITY = 3  # the "auto" mode UVC cameras implement
V4L2_EXPOSURE_UNIT_US = 100  # V4L2_CID_EXPOSURE_ABSOLUTE counts 100 µs units

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


def links_to(real_path: str, directory: str) -> list[str]:
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


def sysfs_name(real_path: str) -> str:
    """The card name the kernel publishes for /dev/videoN (``/sys/class/video4linux/…/name``)."""
    return _read_text(f"/sys/class/video4linux/{os.path.basename(real_path)}/name")


def usb_serial(real_path: str) -> str:
    """The USB iSerial of the camera behind /dev/videoN, if it has one."""
    iface = os.path.realpath(f"/sys/class/video4linux/{os.path.basename(real_path)}/device")
    # ``device`` is the USB interface (…/1-2:1.0); the USB device (…/1-2) holds ``serial``.
    return _read_text(os.path.join(os.path.dirname(iface), "serial"))


def serial_from_by_id(by_id: list[str]) -> str:
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
        "by_id": links_to(real, "/dev/v4l/by-id"),
        "by_path": links_to(real, "/dev/v4l/by-path"),
        "card": sysfs_name(real),
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


__all__ = [
    "FPS_TOLERANCE",
    "V4L2Capability",
    "choose_fourcc",
    "describe_device",
    "enumerate_formats",
    "fourcc_to_code",
    "fourcc_to_str",
    "list_devices",
    "parse_capability",
    "parse_fmtdesc",
    "parse_frmival",
    "parse_frmsize",
    "read_capability",
]
