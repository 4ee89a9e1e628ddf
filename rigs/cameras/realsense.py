"""Intel RealSense cameras through pyrealsense2, physical or virtual, on one code path.

The driver uses the sensor-level API with an ``rs.syncer`` rather than ``rs.pipeline``:
a pipeline cannot open an ``rs.software_device``, and the virtual RealSense
(:mod:`rigs.virtual.realsense_device`) is one. So the frames of a virtual camera travel
through the same librealsense objects (sensor, syncer, align, frame) as a physical one's.

Devices are found by serial number: first among software devices registered in this process
(:func:`register_software_device`), then among the devices librealsense enumerates.

Time: global time is switched off where the sensor offers it, so a frame's timestamp is the
device's own hardware clock (D400: a 32-bit microsecond counter, unwrapped here); the host
capture estimate comes from :class:`~rigs.cameras.timemap.DeviceClockMapper`, one place for
every driver, instead of librealsense's own wall-clock mapping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
import pyrealsense2 as rs

from rigs.cameras.base import Camera, CameraError, CameraInfo, Frame, Intrinsics, register_driver
from rigs.cameras.timemap import DeviceClockMapper
from rigs.spec import Camera as CameraSpec

log = logging.getLogger(__name__)

COLOR_FORMATS = (rs.format.bgr8, rs.format.rgb8)  # preferred first: bgr8 needs no conversion
DEPTH_FORMAT = rs.format.z16
# Framesets the syncer holds for a reader that is briefly late (4 = 133 ms at 30 fps); older
# ones are dropped by librealsense and show up as a frame-number gap, as on any device.
SYNC_QUEUE_SIZE = 4
# read() waits in slices so that disconnect() from another thread ends a wait promptly.
_WAIT_SLICE_S = 0.1
# The D400 hardware clock is a 32-bit microsecond counter: it wraps every ~71.6 minutes.
HW_CLOCK_WRAP_NS = (1 << 32) * 1000
# UVC "exposure time, absolute" is in 100 µs units; RealSense RGB sensors pass it through.
_UVC_EXPOSURE_UNIT_US = 100
_MM_PER_M = 1000.0

# librealsense distortion models -> the ROS CameraInfo model that describes the same math.
# The Brown-Conrady variants all carry (k1, k2, p1, p2, k3) in OpenCV order; D400 streams
# report them with all-zero coefficients, where every variant is the identity.
_ROS_DISTORTION = {
    "none": "plumb_bob",
    "brown_conrady": "plumb_bob",
    "modified_brown_conrady": "plumb_bob",
    "inverse_brown_conrady": "plumb_bob",
    "kannala_brandt4": "equidistant",
    "ftheta": "equidistant",
}

# -- software devices ----------------------------------------------------------------------

_SOFTWARE_DEVICES: dict[str, rs.device] = {}
_SOFTWARE_LOCK = threading.Lock()


def register_software_device(serial: str, device: rs.device) -> None:
    """Make a software device findable by serial, ahead of the USB devices.

    Raises CameraError if another device already holds that serial in this process.
    """
    with _SOFTWARE_LOCK:
        if serial in _SOFTWARE_DEVICES and _SOFTWARE_DEVICES[serial] is not device:
            raise CameraError(f"a virtual RealSense with serial {serial!r} already exists")
        _SOFTWARE_DEVICES[serial] = device


def unregister_software_device(serial: str) -> None:
    """Forget a software device; unknown serials are ignored."""
    with _SOFTWARE_LOCK:
        _SOFTWARE_DEVICES.pop(serial, None)


def _software_devices() -> list[tuple[str, rs.device]]:
    with _SOFTWARE_LOCK:
        return list(_SOFTWARE_DEVICES.items())


def _physical_devices() -> tuple[rs.context | None, list[rs.device], str | None]:
    """(context, devices, problem): the context must outlive the devices we use from it."""
    try:
        ctx = rs.context()
        return ctx, list(ctx.query_devices()), None
    except RuntimeError as exc:  # e.g. no USB access; virtual devices still work
        return None, [], str(exc)


def _info(device: rs.device, field: rs.camera_info) -> str:
    try:
        return str(device.get_info(field)) if device.supports(field) else ""
    except RuntimeError:
        return ""


def _mode(profile: rs.video_stream_profile, with_format: bool = True) -> str:
    text = f"{profile.width()}x{profile.height()}@{profile.fps()}"
    return f"{text} {profile.format().name}" if with_format else text


def _video_profiles(device: rs.device) -> list[tuple[int, rs.sensor, rs.video_stream_profile]]:
    """Every video profile of the device with the index of its sensor."""
    out = []
    for index, sensor in enumerate(device.query_sensors()):
        for profile in sensor.get_stream_profiles():
            if profile.is_video_stream_profile():
                out.append((index, sensor, profile.as_video_stream_profile()))
    return out


def _sorted_modes(
    profiles: Iterable[rs.video_stream_profile], with_format: bool = True
) -> list[str]:
    keyed = {
        _mode(p, with_format): (-p.width(), -p.height(), -p.fps(), p.format().name)
        for p in profiles
    }
    return sorted(keyed, key=keyed.__getitem__)


def list_devices() -> list[dict[str, Any]]:
    """Every RealSense device this process can open, virtual ones first.

    Each entry: ``serial``, ``name``, ``firmware``, ``usb_type``, ``product_line``,
    ``virtual`` (bool), ``color_modes`` and ``depth_modes`` (lists of ``"WxH@fps format"``).
    A device that cannot be queried (busy, unplugged mid-listing) appears with an ``error``.
    """
    found: list[tuple[rs.device, bool]] = [(dev, True) for _, dev in _software_devices()]
    virtual_serials = {serial for serial, _ in _software_devices()}
    ctx, physical, problem = _physical_devices()
    if problem:
        log.warning("cannot enumerate USB RealSense devices: %s", problem)
    for dev in physical:
        if _info(dev, rs.camera_info.serial_number) not in virtual_serials:
            found.append((dev, False))
    rows = []
    for dev, virtual in found:
        row: dict[str, Any] = {
            "serial": _info(dev, rs.camera_info.serial_number),
            "name": _info(dev, rs.camera_info.name),
            "firmware": _info(dev, rs.camera_info.firmware_version),
            "usb_type": _info(dev, rs.camera_info.usb_type_descriptor),
            "product_line": _info(dev, rs.camera_info.product_line),
            "virtual": virtual,
            "color_modes": [],
            "depth_modes": [],
        }
        try:
            profiles = [p for _, _, p in _video_profiles(dev)]
            row["color_modes"] = _sorted_modes(
                p for p in profiles if p.stream_type() == rs.stream.color
            )
            row["depth_modes"] = _sorted_modes(
                p for p in profiles if p.stream_type() == rs.stream.depth
            )
        except RuntimeError as exc:
            row["error"] = str(exc)
        rows.append(row)
    del ctx  # kept alive until the devices were queried
    return rows


# -- the driver ----------------------------------------------------------------------------


@register_driver("realsense")
class RealSenseCamera(Camera):
    """A RealSense colour (+ optional depth) camera opened by serial number.

    ``read()`` returns the next synchronised frameset from the device: colour (BGR) and, when
    the spec asks for it, depth in millimetres (aligned to colour with ``align_depth``). Frame
    numbers and device timestamps are the colour frame's. Extra keyword arguments (the
    runtime passes shared resources such as ``rig=`` and ``world=``) are ignored.
    """

    def __init__(self, spec: CameraSpec, **_ignored: object):
        super().__init__(spec)
        if not spec.serial:
            raise CameraError(f"camera {spec.name!r}: a realsense camera needs 'serial'")
        self._serial = spec.serial
        self._ctx: rs.context | None = None
        self._device: rs.device | None = None
        self._virtual = False
        self._sensors: list[rs.sensor] = []
        self._syncer: rs.syncer | None = None
        self._align: rs.align | None = None
        self._color_profile: rs.video_stream_profile | None = None
        self._depth_profile: rs.video_stream_profile | None = None
        self._depth_to_mm = 1.0
        self._mapper = DeviceClockMapper()
        self._stop = threading.Event()
        self._connected = False
        self._settings: dict[str, str] = {}
        self._timestamp_domain = ""
        self._wrap_offset_ns = 0
        self._last_device_ns: int | None = None
        self.frames_read = 0
        self.incomplete_framesets = 0  # framesets without the colour or depth frame, skipped

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self) -> None:
        """Find the device, choose and configure the streams, start them into a syncer."""
        if self._connected:
            return
        device, ctx, virtual = self._find()
        sensors = device.query_sensors()
        profiles = _video_profiles(device)
        color_index, color = self._choose(profiles, rs.stream.color, COLOR_FORMATS, "colour")
        depth_index, depth = None, None
        if self.spec.depth:
            depth_index, depth = self._choose(profiles, rs.stream.depth, (DEPTH_FORMAT,), "depth")

        # One sensor may carry both streams (D405): open it once with both profiles.
        wanted: dict[int, list[rs.stream_profile]] = {color_index: [color]}
        if depth_index is not None:
            wanted.setdefault(depth_index, []).append(depth)
        self._settings = {}
        for index in wanted:
            # Device timestamps, not librealsense's host-mapped "global time" (see module doc).
            self._set_option(sensors[index], rs.option.global_time_enabled, 0, record=False)
        self._configure_color(sensors[color_index], shares_depth=color_index == depth_index)
        self._depth_to_mm = 1.0
        if depth_index is not None:
            self._depth_to_mm = self._depth_scale_m(sensors[depth_index]) * _MM_PER_M
            if abs(self._depth_to_mm - 1.0) < 1e-6:  # float32 0.001 is not exactly 0.001
                self._depth_to_mm = 1.0

        syncer = rs.syncer(SYNC_QUEUE_SIZE)
        opened: list[rs.sensor] = []
        try:
            for index, sensor_profiles in wanted.items():
                sensor = sensors[index]
                sensor.open(sensor_profiles if len(sensor_profiles) > 1 else sensor_profiles[0])
                opened.append(sensor)
                sensor.start(syncer)
        except RuntimeError as exc:
            self._stop_sensors(opened)
            raise CameraError(
                f"camera {self.name!r}: RealSense {self._serial} could not start streaming: {exc}"
            ) from None

        self._ctx, self._device, self._virtual = ctx, device, virtual
        self._sensors = opened
        self._syncer = syncer
        self._color_profile, self._depth_profile = color, depth
        self._align = rs.align(rs.stream.color) if self.spec.align_depth and depth else None
        self._mapper = DeviceClockMapper()
        self._wrap_offset_ns = 0
        self._last_device_ns = None
        self._timestamp_domain = ""
        self.frames_read = 0
        self.incomplete_framesets = 0
        self._stop.clear()
        self._connected = True
        depth_text = ""
        if depth is not None:
            depth_text = f", depth {_mode(depth)}" + (" aligned to colour" if self._align else "")
        log.info(
            "realsense camera %s connected: %s %s, colour %s%s",
            self.name,
            _info(device, rs.camera_info.name),
            self._serial,
            _mode(color),
            depth_text,
        )

    @property
    def is_connected(self) -> bool:
        return self._connected

    def disconnect(self) -> None:
        """Stop and close the streams; a ``read()`` waiting in another thread raises soon."""
        self._connected = False
        self._stop.set()
        sensors, self._sensors = self._sensors, []
        self._stop_sensors(sensors)
        self._syncer = None
        self._device = None
        self._ctx = None

    @staticmethod
    def _stop_sensors(sensors: list[rs.sensor]) -> None:
        for sensor in sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError as exc:  # already stopped, or the device is gone
                    log.debug("realsense sensor %s: %s", step.__name__, exc)

    # -- frames -----------------------------------------------------------------------------

    def read(self, timeout_s: float = 1.0) -> Frame:
        """The next colour(+depth) frameset; CameraError if none arrives within ``timeout_s``."""
        syncer = self._syncer
        if not self._connected or syncer is None:
            raise CameraError(f"camera {self.name!r} is not connected; call connect() first")
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if self._stop.is_set():
                raise CameraError(f"camera {self.name!r} was disconnected")
            if remaining <= 0:
                raise CameraError(
                    f"camera {self.name!r}: no frames from RealSense {self._serial} within "
                    f"{timeout_s:.3f} s; is it still connected?"
                )
            # The wait releases the GIL (measured); slices keep disconnect() responsive.
            ok, frameset = syncer.try_wait_for_frames(
                max(1, int(min(remaining, _WAIT_SLICE_S) * 1000))
            )
            if not ok:
                continue
            receipt_ns = time.monotonic_ns()
            frame = self._convert(frameset, receipt_ns)
            if frame is not None:
                self.frames_read += 1
                return frame
            self.incomplete_framesets += 1

    def _convert(self, frameset: rs.composite_frame, receipt_ns: int) -> Frame | None:
        """Copy the frameset out of librealsense's pool; None if a stream is missing."""
        fs = frameset
        color = fs.get_color_frame()
        if not color:
            return None
        if self._depth_profile is not None:
            if not fs.get_depth_frame():
                # The syncer gave up waiting (a stream started late or skipped frames).
                return None
            if self._align is not None:
                fs = self._align.process(fs)
                color = fs.get_color_frame()
        frame_number = int(color.get_frame_number())
        device_ns = self._device_ns(color)
        capture_ns = self._mapper.observe(device_ns, receipt_ns)

        pixels = np.asanyarray(color.get_data())
        if color.get_profile().format() == rs.format.rgb8:
            bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)  # a new array: frame can be released
        else:
            bgr = np.array(pixels, copy=True)
        depth_mm = None
        if self._depth_profile is not None:
            raw = np.asanyarray(fs.get_depth_frame().get_data())
            if self._depth_to_mm == 1.0:
                depth_mm = np.array(raw, copy=True)
            else:
                scaled = np.rint(raw.astype(np.float32) * np.float32(self._depth_to_mm))
                depth_mm = np.clip(scaled, 0, 65535).astype(np.uint16)
        return Frame(
            color=bgr,
            frame_number=frame_number,
            receipt_stamp_ns=receipt_ns,
            capture_stamp_ns=capture_ns,
            device_stamp_ns=device_ns,
            depth=depth_mm,
        )

    def _device_ns(self, frame: rs.frame) -> int:
        """The frame's device timestamp in ns, unwrapped if it is the 32-bit hardware clock."""
        domain = frame.get_frame_timestamp_domain()
        if not self._timestamp_domain:
            self._timestamp_domain = domain.name
            if domain != rs.timestamp_domain.hardware_clock:
                log.info(
                    "camera %s: frame timestamps are %s, not the device clock",
                    self.name,
                    domain.name,
                )
        raw_ns = round(frame.get_timestamp() * 1e6)
        if domain == rs.timestamp_domain.hardware_clock:
            if (
                self._last_device_ns is not None
                and raw_ns + self._wrap_offset_ns < self._last_device_ns - HW_CLOCK_WRAP_NS // 2
            ):
                self._wrap_offset_ns += HW_CLOCK_WRAP_NS
            raw_ns += self._wrap_offset_ns
        self._last_device_ns = raw_ns
        return raw_ns

    # -- description ------------------------------------------------------------------------

    def intrinsics(self) -> Intrinsics:
        """The colour stream's factory intrinsics (known once connected)."""
        if self._color_profile is None:
            raise CameraError(f"camera {self.name!r}: intrinsics are known after connect()")
        return intrinsics_of(self._color_profile)

    def info(self) -> CameraInfo:
        """Model, serial, firmware and stream settings, for provenance."""
        device, ctx, virtual = self._device, self._ctx, self._virtual
        if device is None:
            device, ctx, virtual = self._find()  # ctx stays referenced while we query
        extra = {
            "product_line": _info(device, rs.camera_info.product_line),
            "usb_type": _info(device, rs.camera_info.usb_type_descriptor),
            "product_id": _info(device, rs.camera_info.product_id),
            "virtual": str(virtual).lower(),
        }
        if self._color_profile is not None:
            extra["color_mode"] = _mode(self._color_profile)
            extra["distortion_model_rs"] = self._color_profile.get_intrinsics().model.name
        if self._depth_profile is not None:
            extra["depth_mode"] = _mode(self._depth_profile)
            extra["depth_aligned_to_color"] = str(self._align is not None).lower()
            extra["depth_units_mm"] = f"{self._depth_to_mm:g}"
        if self._timestamp_domain:
            extra["timestamp_domain"] = self._timestamp_domain
        extra.update(self._settings)
        return CameraInfo(
            driver="realsense",
            model=_info(device, rs.camera_info.name),
            serial=self._serial,
            firmware=_info(device, rs.camera_info.firmware_version),
            extra={k: v for k, v in extra.items() if v != ""},
        )

    # -- helpers ----------------------------------------------------------------------------

    def _find(self) -> tuple[rs.device, rs.context | None, bool]:
        """(device, context that owns it, virtual?) or a one-line CameraError."""
        virtual = _software_devices()
        for serial, device in virtual:
            if serial == self._serial:
                return device, None, True
        ctx, physical, problem = _physical_devices()
        for device in physical:
            if _info(device, rs.camera_info.serial_number) == self._serial:
                return device, ctx, False
        serials = [s for s, _ in virtual] + [
            _info(d, rs.camera_info.serial_number) for d in physical
        ]
        connected = ", ".join(serials) if serials else "none"
        why = f" (USB enumeration failed: {problem})" if problem else ""
        raise CameraError(
            f"camera {self.name!r}: no RealSense with serial {self._serial!r}; connected: "
            f"{connected}{why}; run `teleop cameras` to list them"
        )

    def _choose(
        self,
        profiles: list[tuple[int, rs.sensor, rs.video_stream_profile]],
        stream: rs.stream,
        formats: tuple[rs.format, ...],
        label: str,
    ) -> tuple[int, rs.video_stream_profile]:
        """The profile of ``stream`` at the spec's size and rate, in the first usable format."""
        spec = self.spec
        candidates = [(i, p) for i, _, p in profiles if p.stream_type() == stream]
        for fmt in formats:
            for index, profile in candidates:
                if (
                    profile.format() == fmt
                    and profile.width() == spec.width
                    and profile.height() == spec.height
                    and profile.fps() == spec.fps
                ):
                    return index, profile
        usable = [p for _, p in candidates if p.format() in formats]
        if not candidates:
            raise CameraError(
                f"camera {self.name!r}: RealSense {self._serial} has no {label} stream"
            )
        modes = ", ".join(_sorted_modes(usable, with_format=False)) or "none"
        names = "/".join(f.name for f in formats)
        raise CameraError(
            f"camera {self.name!r}: RealSense {self._serial} has no {label} mode "
            f"{spec.width}x{spec.height}@{spec.fps} ({names}); available: {modes}"
        )

    def _configure_color(self, sensor: rs.sensor, *, shares_depth: bool) -> None:
        """Fix exposure and white balance from the spec where the sensor has those controls."""
        spec = self.spec
        self._set_option(sensor, rs.option.enable_auto_exposure, int(spec.auto_exposure))
        if not spec.auto_exposure:
            # RGB sensors take UVC units (100 µs); a sensor that also makes depth (D405) takes µs.
            unit_us = 1 if shares_depth else _UVC_EXPOSURE_UNIT_US
            self._set_option(sensor, rs.option.exposure, spec.exposure_us / unit_us)
            if spec.gain is not None:
                self._set_option(sensor, rs.option.gain, spec.gain)
        self._set_option(sensor, rs.option.enable_auto_white_balance, int(spec.auto_white_balance))
        if not spec.auto_white_balance:
            self._set_option(sensor, rs.option.white_balance, spec.white_balance_k)

    def _set_option(
        self, sensor: rs.sensor, option: rs.option, value: float, *, record: bool = True
    ) -> float | None:
        """Set an option clamped and snapped to its range; skip it if the sensor lacks it."""
        try:
            if not sensor.supports(option) or sensor.is_option_read_only(option):
                log.debug("camera %s: sensor has no writable %s; skipped", self.name, option.name)
                return None
            r = sensor.get_option_range(option)
            v = min(max(float(value), r.min), r.max)
            if r.step > 0:
                v = r.min + round((v - r.min) / r.step) * r.step
            sensor.set_option(option, v)
        except RuntimeError as exc:
            raise CameraError(
                f"camera {self.name!r}: RealSense {self._serial} refused {option.name} = {value:g}: {exc}"
            ) from None
        if record:
            self._settings[option.name] = f"{v:g}"
        return v

    def _depth_scale_m(self, sensor: rs.sensor) -> float:
        """Metres per depth unit."""
        try:
            if sensor.is_depth_sensor():
                return float(sensor.as_depth_sensor().get_depth_scale())
            if sensor.supports(rs.option.depth_units):
                return float(sensor.get_option(rs.option.depth_units))
        except RuntimeError as exc:
            log.warning("camera %s: depth scale unreadable (%s); assuming 1 mm", self.name, exc)
        return 0.001


def intrinsics_of(profile: rs.video_stream_profile) -> Intrinsics:
    """A librealsense video profile's intrinsics as :class:`Intrinsics`."""
    k = profile.get_intrinsics()
    model = k.model.name
    coeffs = tuple(float(c) for c in k.coeffs)
    ros_model = _ROS_DISTORTION.get(model, model)
    if ros_model == "equidistant":
        coeffs = coeffs[:4]
    return Intrinsics(
        width=int(k.width),
        height=int(k.height),
        fx=float(k.fx),
        fy=float(k.fy),
        cx=float(k.ppx),
        cy=float(k.ppy),
        distortion_model=ros_model,
        coeffs=coeffs,
    )


__all__ = [
    "COLOR_FORMATS",
    "HW_CLOCK_WRAP_NS",
    "RealSenseCamera",
    "intrinsics_of",
    "list_devices",
    "register_software_device",
    "unregister_software_device",
]
