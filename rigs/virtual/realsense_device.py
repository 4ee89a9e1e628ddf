"""A virtual Intel RealSense: an ``rs.software_device`` fed rendered frames of the virtual rig.

It looks like a D435 to the app: a "Stereo Module" (z16 depth, depth units 1 mm) and an
"RGB Camera" (bgr8, with exposure, gain and white-balance controls in the D435's ranges),
camera_info with the spec's serial, and frames that carry the device's own hardware-clock
timestamps (its own epoch, running 20 ppm fast, microsecond ticks) and frame numbers. The
app opens it with the ordinary :class:`~rigs.cameras.realsense.RealSenseCamera` driver, so
the frames travel librealsense's sensor -> syncer (-> align) path exactly as a USB camera's.

A feeder thread paces frames on the monotonic clock with deadline pacing, reads the follower
angles from the shared world, renders colour and depth for the camera's view and pushes both
with the same frame number and timestamp, so the syncer pairs them. Fault injection
(``inject_*``) lets tests make the faults the app must detect: delivery jitter, dropped frame
numbers, frozen content and a silent device.

Depth and colour are rendered from one viewpoint with one set of intrinsics, so the depth to
colour extrinsics registered on the software streams are the identity: ``rs.align`` then
works on this device as on hardware (and maps every pixel onto itself, bar rounding at edges).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import OrderedDict

import numpy as np
import pyrealsense2 as rs

from rigs.cameras.base import CameraError, Intrinsics
from rigs.cameras.realsense import register_software_device, unregister_software_device
from rigs.spec import Camera as CameraSpec
from rigs.spec import RigSpec
from rigs.virtual.render_process import DeviceClock, RenderError, RenderProcess
from rigs.virtual.renderer import VIEWS, Renderer
from rigs.virtual.world import SharedWorld

log = logging.getLogger(__name__)

MODEL = "Intel RealSense D435 (virtual)"
FIRMWARE = "5.16.0.1-virtual"
PRODUCT_LINE = "D400"
DEVICE_CLOCK_DRIFT_PPM = 20  # a typical crystal: the device clock runs 20 µs/s fast
DEPTH_UNITS_M = 0.001
DEPTH_HISTORY = 120  # frames of produced depth kept for bit-exact checks (~4 s at 30 fps)

# Stream unique ids are process-wide in librealsense; USB devices get small sequential ids,
# so software streams take theirs from a distant range, one pair per virtual device.
_UIDS = itertools.count(0x7E570000)
_UID_LOCK = threading.Lock()

_ROS_TO_RS_DISTORTION = {"plumb_bob": rs.distortion.brown_conrady, "none": rs.distortion.none}


def _option_range(lo: float, hi: float, step: float, default: float) -> rs.option_range:
    # Filled field by field: pyrealsense2 2.59's option_range(min, max, step, default)
    # constructor stores step and default swapped.
    r = rs.option_range()
    r.min, r.max, r.step, r.default = lo, hi, step, default
    return r


# The D435 RGB sensor's controls: (option, min, max, step, default). Exposure in 100 µs.
_COLOR_OPTIONS = (
    (rs.option.enable_auto_exposure, 0, 1, 1, 1),
    (rs.option.exposure, 1, 10000, 1, 156),
    (rs.option.gain, 0, 128, 1, 64),
    (rs.option.enable_auto_white_balance, 0, 1, 1, 1),
    (rs.option.white_balance, 2800, 6500, 10, 4600),
)


def _rs_intrinsics(k: Intrinsics) -> rs.intrinsics:
    out = rs.intrinsics()
    out.width, out.height = k.width, k.height
    out.fx, out.fy, out.ppx, out.ppy = k.fx, k.fy, k.cx, k.cy
    out.model = _ROS_TO_RS_DISTORTION.get(k.distortion_model, rs.distortion.brown_conrady)
    out.coeffs = list(k.coeffs[:5]) + [0.0] * (5 - len(k.coeffs[:5]))
    return out


class VirtualRealSense:
    """A software RealSense device rendering ``spec.view`` of the virtual rig's followers.

    Construct, then :meth:`start` the feeder; the device is findable by ``spec.serial`` from
    construction until :meth:`close`. Frame numbers start at 0 and advance once per period
    of the device's schedule whether or not a frame is delivered (as a device's counter does).
    """

    def __init__(
        self,
        spec: CameraSpec,
        *,
        rig: RigSpec,
        world: SharedWorld,
        seed: int = 0,
        depth_history: int = DEPTH_HISTORY,
        depth_units_m: float = DEPTH_UNITS_M,
    ):
        if not spec.serial:
            raise CameraError(f"camera {spec.name!r}: a virtual RealSense needs 'serial'")
        view = spec.view if spec.view is not None else spec.name
        if view not in VIEWS:
            raise CameraError(
                f"camera {spec.name!r}: a virtual RealSense needs 'view' set to one of "
                f"{', '.join(VIEWS)}"
            )
        self.spec = spec
        self.serial: str = spec.serial
        self.view = view
        self._world = world
        self._followers = [a.name for a in rig.followers]
        self._renderer = Renderer(rig, view, spec.width, spec.height)
        # Drawing happens in a process of its own, off the app's GIL (render_process.py).
        self._remote = RenderProcess(
            rig, view, spec.width, spec.height, world, self._followers, spec.name, depth=spec.depth
        )
        self._depth_history_len = depth_history
        # Depth leaves the device in these units (D435: 1 mm; D405: 0.1 mm). The renderer
        # works in mm, so other units cost a conversion per frame; produced_depth stays mm.
        self.depth_units_m = float(depth_units_m)
        self._mm_to_units = 0.001 / self.depth_units_m
        if abs(self._mm_to_units - 1.0) < 1e-9:
            self._mm_to_units = 1.0
        # Fault state and counters; the feeder reads them each frame under this lock.
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self._jitter_sd_s = 0.0
        self._drop_remaining = 0
        self._freeze_until_ns = 0
        self._silent = False
        self._produced_depth: OrderedDict[int, np.ndarray] = OrderedDict()
        self._capture_times: OrderedDict[int, int] = OrderedDict()
        self.frames_delivered = 0
        self.frames_dropped = 0  # by inject_drop
        self.frames_overrun = 0  # frames lost to a starved machine (not inject_drop)
        self._sensor_overruns = 0
        # The device clock: an epoch fixed by serial and seed, like a device's uptime.
        epoch_rng = random.Random(f"{self.serial}:{seed}")
        self._device_epoch_ns = epoch_rng.randrange(10**9, 10**12)
        self._clock = DeviceClock(self._device_epoch_ns, 0, DEVICE_CLOCK_DRIFT_PPM, 1000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._build_device()
        register_software_device(self.serial, self.device)

    # -- the software device ----------------------------------------------------------------

    def _build_device(self) -> None:
        spec = self.spec
        k = _rs_intrinsics(self._renderer.intrinsics())
        with _UID_LOCK:
            color_uid, depth_uid = next(_UIDS), next(_UIDS)
        dev = rs.software_device()
        # Sensor order and names as a D435 enumerates them.
        depth_sensor = dev.add_sensor("Stereo Module") if spec.depth else None
        color_sensor = dev.add_sensor("RGB Camera")

        color_stream = rs.video_stream()
        color_stream.type, color_stream.index, color_stream.uid = rs.stream.color, 0, color_uid
        color_stream.width, color_stream.height, color_stream.fps = (
            spec.width,
            spec.height,
            spec.fps,
        )
        color_stream.bpp, color_stream.fmt, color_stream.intrinsics = 3, rs.format.bgr8, k
        self._color_profile = color_sensor.add_video_stream(
            color_stream, True
        ).as_video_stream_profile()
        for option, lo, hi, step, default in _COLOR_OPTIONS:
            color_sensor.add_option(option, _option_range(lo, hi, step, default), True)
        self._color_sensor = color_sensor
        sensors = [color_sensor]

        self._depth_sensor = depth_sensor
        self._depth_profile: rs.video_stream_profile | None = None
        if depth_sensor is not None:
            depth_stream = rs.video_stream()
            depth_stream.type, depth_stream.index, depth_stream.uid = rs.stream.depth, 0, depth_uid
            depth_stream.width, depth_stream.height = spec.width, spec.height
            depth_stream.fps, depth_stream.bpp, depth_stream.fmt = spec.fps, 2, rs.format.z16
            depth_stream.intrinsics = k
            self._depth_profile = depth_sensor.add_video_stream(
                depth_stream, True
            ).as_video_stream_profile()
            depth_sensor.add_read_only_option(rs.option.depth_units, self.depth_units_m)
            # Same viewpoint, same intrinsics: identity depth->colour extrinsics, which is
            # what rs.align needs to find (without them it cannot align at all).
            identity = rs.extrinsics()
            identity.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            identity.translation = [0.0, 0.0, 0.0]
            self._depth_profile.register_extrinsics_to(self._color_profile, identity)
            self._color_profile.register_extrinsics_to(self._depth_profile, identity)
            sensors.append(depth_sensor)

        for sensor in sensors:
            # librealsense 2.59 derives a software frame's "actual fps" metadata from its
            # frame counter (1, 2, 3 ... fps), and the syncer's timestamp matcher then stops
            # pairing colour with depth after the third frame. The real rate, in the milli-fps
            # units D400 metadata uses, keeps the matcher right.
            sensor.set_metadata(rs.frame_metadata_value.actual_fps, spec.fps * 1000)

        dev.register_info(rs.camera_info.name, MODEL)
        dev.register_info(rs.camera_info.serial_number, self.serial)
        dev.register_info(rs.camera_info.firmware_version, FIRMWARE)
        dev.register_info(rs.camera_info.product_line, PRODUCT_LINE)
        dev.register_info(rs.camera_info.product_id, "0B07")
        dev.register_info(rs.camera_info.usb_type_descriptor, "virtual")
        self.device: rs.software_device = dev

    # -- lifecycle --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Start the sensor's process booting (``start()`` waits for it)."""
        self._remote.spawn()

    def start(self) -> None:
        """Start the feeder; the first frame is due one period from now."""
        if self._thread is not None:
            return
        try:
            # The sensor (schedule, drawing, buffers) runs in a process of its own.
            self._clock = self._remote.start(
                self.spec.fps, self._device_epoch_ns, DEVICE_CLOCK_DRIFT_PPM, tick_ns=1000
            )
        except RenderError as exc:
            raise CameraError(str(exc)) from None
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._feed, name=f"virtual-realsense-{self.serial}", daemon=True
        )
        self._thread.start()
        log.info(
            "virtual RealSense %s started (%s view, %dx%d@%d%s)",
            self.serial,
            self.view,
            self.spec.width,
            self.spec.height,
            self.spec.fps,
            ", depth" if self.spec.depth else "",
        )

    def close(self) -> None:
        """Stop the feeder and make the device unfindable."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)
        self._remote.close()
        unregister_software_device(self.serial)

    def __enter__(self) -> VirtualRealSense:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fault injection --------------------------------------------------------------------

    def inject_jitter(self, sd_s: float) -> None:
        """Delay each delivery by |N(0, sd_s)| seconds (0 turns it off); the schedule holds."""
        with self._lock:
            self._jitter_sd_s = max(0.0, float(sd_s))

    def inject_drop(self, n: int) -> None:
        """Deliver nothing for the next ``n`` frame numbers: a gap of ``n`` the app must see."""
        with self._lock:
            self._drop_remaining += max(0, int(n))

    def inject_freeze(self, seconds: float) -> None:
        """For ``seconds``, keep delivering new frame numbers with the last image unchanged."""
        with self._lock:
            self._freeze_until_ns = time.monotonic_ns() + round(seconds * 1e9)

    def inject_disconnect(self) -> None:
        """Stop delivering frames (the clock and frame counter run on) until reconnect()."""
        with self._lock:
            self._silent = True

    def reconnect(self) -> None:
        """Resume delivering after inject_disconnect()."""
        with self._lock:
            self._silent = False

    # -- verification -----------------------------------------------------------------------

    def produced_depth(self, frame_number: int) -> np.ndarray | None:
        """The depth image (uint16 mm) pushed as ``frame_number``, if still remembered."""
        with self._lock:
            return self._produced_depth.get(frame_number)

    def capture_time_ns(self, frame_number: int) -> int | None:
        """The true exposure time of a frame on the host monotonic clock (the ground truth
        against which a recording's capture stamps can be checked)."""
        return self._capture_times.get(frame_number)

    def device_clock_ns(self, host_ns: int) -> int:
        """The device clock at a host monotonic time: own epoch, 20 ppm fast, µs ticks."""
        return self._clock.at(host_ns)

    # -- the feeder -------------------------------------------------------------------------

    def _feed(self) -> None:
        color: np.ndarray | None = None
        depth: np.ndarray | None = None
        expected, late = 0, 0  # frame numbers this feeder was too late to take from the queue
        while not self._stop.is_set():
            try:
                frame = self._remote.next_frame(0.5)
            except RenderError as exc:
                if not self._stop.is_set():
                    log.error("virtual RealSense %s: %s", self.serial, exc)
                return  # the device goes silent, as an unplugged one would
            if frame is None:
                continue
            # Frames lost to a starved machine: the sensor fell behind its schedule, or this
            # feeder behind the sensor's queue. The counter ran on, as a device's does.
            frame_number = frame.frame_number
            late += max(0, frame_number - expected - (frame.overruns - self._sensor_overruns))
            self._sensor_overruns = frame.overruns
            expected = frame_number + 1
            self.frames_overrun = frame.overruns + late
            with self._lock:
                silent = self._silent
                drop = self._drop_remaining > 0
                if drop:
                    self._drop_remaining -= 1
                frozen = frame.capture_ns < self._freeze_until_ns and color is not None
                jitter_s = (
                    abs(self._rng.normal(0.0, self._jitter_sd_s)) if self._jitter_sd_s else 0.0
                )
            if drop:
                self.frames_dropped += 1
                continue
            if silent:
                continue
            self._capture_times[frame_number] = frame.capture_ns
            if len(self._capture_times) > 100_000:  # ~55 min at 30 fps; ints only
                self._capture_times.popitem(last=False)
            if not frozen:
                color, depth = frame.color, frame.depth
            if jitter_s and self._stop.wait(jitter_s):
                return
            self._push(color, depth, frame_number, frame.device_ns)

    def _push(
        self, color: np.ndarray | None, depth: np.ndarray | None, frame_number: int, device_ns: int
    ) -> None:
        """Hand one colour(+depth) pair to librealsense with one frame number and timestamp."""
        timestamp_ms = device_ns / 1e6
        try:
            self._color_sensor.on_video_frame(
                self._frame(self._color_profile, color, 3, frame_number, timestamp_ms)
            )
            if self._depth_sensor is not None and self._depth_profile is not None:
                units = depth
                if depth is not None and self._mm_to_units != 1.0:
                    scaled = np.rint(depth * self._mm_to_units)
                    units = np.clip(scaled, 0, 65535).astype(np.uint16)
                self._depth_sensor.on_video_frame(
                    self._frame(
                        self._depth_profile,
                        units,
                        2,
                        frame_number,
                        timestamp_ms,
                        self.depth_units_m,
                    )
                )
        except RuntimeError as exc:  # the consumer is closing the sensor right now
            log.debug(
                "virtual RealSense %s: frame %d not taken: %s", self.serial, frame_number, exc
            )
            return
        if self._depth_sensor is not None and depth is not None:
            with self._lock:
                # The renderer returns fresh arrays (never reused), so keeping one is free.
                self._produced_depth[frame_number] = depth
                while len(self._produced_depth) > self._depth_history_len:
                    self._produced_depth.popitem(last=False)
        self.frames_delivered += 1

    @staticmethod
    def _frame(
        profile: rs.video_stream_profile,
        pixels: np.ndarray | None,
        bpp: int,
        frame_number: int,
        timestamp_ms: float,
        depth_units_m: float = DEPTH_UNITS_M,
    ) -> rs.software_video_frame:
        # A new software_video_frame per push: its pixels setter copies the array into a
        # buffer librealsense frees when it releases the frame, and setting pixels again on
        # a pushed struct would free that buffer under librealsense. The one memcpy (~0.1 ms
        # at 640x480) also means our array may be reused or kept without any lifetime tie.
        f = rs.software_video_frame()
        f.profile = profile
        f.pixels = pixels
        f.stride = profile.width() * bpp
        f.bpp = bpp
        f.timestamp = timestamp_ms
        f.domain = rs.timestamp_domain.hardware_clock
        f.frame_number = frame_number
        if bpp == 2:
            f.depth_units = depth_units_m
        return f


__all__ = ["FIRMWARE", "MODEL", "VirtualRealSense"]
