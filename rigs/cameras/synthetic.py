"""A camera that renders the virtual rig's follower arms, paced like a real device.

It behaves like hardware where it matters to the app: frames are exposed at ``spec.fps`` on a
fixed schedule (no drift) by a sensor process of its own that buffers the last frames
(``rigs/virtual/render_process.py``); a reader late by more than the buffer finds the frame
number jumped, as with a real device that kept streaming; each frame carries a device
timestamp from the camera's own clock (its own epoch and a small rate error), the exposure
time on the host clock and the host receipt time.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from importlib import metadata

from rigs.cameras.base import Camera, CameraError, CameraInfo, Frame, Intrinsics, register_driver
from rigs.spec import Camera as CameraSpec
from rigs.spec import RigSpec
from rigs.virtual.render_process import RenderError, RenderProcess
from rigs.virtual.renderer import VIEWS, Renderer
from rigs.virtual.world import SharedWorld

log = logging.getLogger(__name__)

MODEL = "teleop synthetic camera"
DEVICE_CLOCK_DRIFT_PPM = 20  # a typical crystal: the device clock runs 20 µs/s fast


def _package_version() -> str:
    try:
        return metadata.version("teleop")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def synthetic_serial(camera_name: str) -> str:
    """The serial number a synthetic camera reports: stable, derived from its name."""
    return "SYN" + hashlib.sha256(camera_name.encode()).hexdigest()[:10].upper()


@register_driver("synthetic")
class SyntheticCamera(Camera):
    """Renders ``spec.view`` of the follower arms read from the shared world.

    ``read()`` returns the oldest buffered frame, waiting for the next one if none is ready.
    Frame numbers start at 0 on connect and advance once per period of the device's schedule;
    frames the reader was too late for (more than the sensor buffers) are skipped (counted in
    :attr:`frames_skipped`) and the frame number jumps over them.
    """

    def __init__(self, spec: CameraSpec, *, rig: RigSpec, world: SharedWorld):
        super().__init__(spec)
        view = spec.view if spec.view is not None else spec.name
        if view not in VIEWS:
            raise CameraError(
                f"camera {spec.name!r}: the synthetic driver needs 'view' set to one of "
                f"{', '.join(VIEWS)}"
            )
        self._view = view
        self._rig = rig
        self._world = world
        self._followers = [a.name for a in rig.followers]
        self._serial = synthetic_serial(spec.name)
        # The device clock's epoch: arbitrary but fixed per camera, like a device's uptime.
        seed = int.from_bytes(hashlib.sha256(self._serial.encode()).digest()[:8], "big")
        self._device_epoch_ns = random.Random(seed).randrange(10**9, 10**12)
        self._renderer: Renderer | None = None
        self._remote: RenderProcess | None = None
        self._connected = False
        self._next_frame_number = 0
        self.frames_delivered = 0
        self.frames_skipped = 0
        """Frame numbers never delivered: the reader was too late, or the sensor overran."""
        self.frames_overrun = 0
        """Of those, the ones the sensor itself missed (its process fell behind)."""

    # -- lifecycle --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Start the sensor's process booting (``connect()`` waits for it)."""
        if self._connected or self._remote is not None:
            return
        try:
            self._renderer = Renderer(self._rig, self._view, self.spec.width, self.spec.height)
        except ValueError as exc:
            raise CameraError(f"camera {self.name!r}: {exc}") from None
        # The sensor (schedule, drawing, buffers) is a process of its own (render_process.py).
        self._remote = RenderProcess(
            self._rig,
            self._view,
            self.spec.width,
            self.spec.height,
            self._world,
            self._followers,
            self.name,
            depth=self.spec.depth,
        )
        self._remote.spawn()

    def connect(self) -> None:
        """Start the device schedule; the first frame is due one period from now."""
        if self._connected:
            return
        self.prepare()
        remote = self._remote
        assert remote is not None
        try:
            remote.start(self.spec.fps, self._device_epoch_ns, DEVICE_CLOCK_DRIFT_PPM)
        except RenderError as exc:
            self._remote = None
            remote.close()
            raise CameraError(str(exc)) from None
        self._next_frame_number = 0
        self.frames_delivered = 0
        self.frames_skipped = 0
        self.frames_overrun = 0
        self._connected = True
        log.info(
            "synthetic camera %s connected (%s view, %d fps)", self.name, self._view, self.spec.fps
        )

    @property
    def is_connected(self) -> bool:
        return self._connected

    def disconnect(self) -> None:
        """Stop; a ``read()`` waiting in another thread wakes and raises CameraError."""
        self._connected = False
        remote, self._remote = self._remote, None
        if remote is not None:
            remote.close()

    # -- frames -----------------------------------------------------------------------------

    def read(self, timeout_s: float = 1.0) -> Frame:
        """The next frame of the device's queue (waiting for it if none is ready)."""
        remote = self._remote
        if not self._connected or remote is None:
            raise CameraError(f"camera {self.name!r} is not connected; call connect() first")
        try:
            frame = remote.next_frame(timeout_s)
        except RenderError as exc:
            if not self._connected:
                raise CameraError(f"camera {self.name!r} disconnected") from None
            raise CameraError(str(exc)) from None
        if frame is None:
            if not self._connected:
                raise CameraError(f"camera {self.name!r} disconnected")
            raise CameraError(
                f"camera {self.name!r}: no frame within {timeout_s:.3f} s "
                f"(running at {self.spec.fps} fps)"
            )
        self.frames_skipped += frame.frame_number - self._next_frame_number
        self.frames_overrun = frame.overruns
        self._next_frame_number = frame.frame_number + 1
        self.frames_delivered += 1
        return Frame(
            color=frame.color,
            frame_number=frame.frame_number,
            receipt_stamp_ns=time.monotonic_ns(),
            capture_stamp_ns=frame.capture_ns,
            device_stamp_ns=frame.device_ns,
            depth=frame.depth,
        )

    # -- description ------------------------------------------------------------------------

    def intrinsics(self) -> Intrinsics:
        """The pinhole intrinsics of the rendered view."""
        if self._renderer is None:
            # Available before connect(), as a device's factory calibration would be.
            return Renderer(self._rig, self._view, self.spec.width, self.spec.height).intrinsics()
        return self._renderer.intrinsics()

    def info(self) -> CameraInfo:
        """Driver, model, serial and firmware, for provenance."""
        return CameraInfo(
            driver="synthetic",
            model=MODEL,
            serial=self._serial,
            firmware=_package_version(),
            extra={
                "view": self._view,
                "width": str(self.spec.width),
                "height": str(self.spec.height),
                "fps": str(self.spec.fps),
                "depth": str(self.spec.depth).lower(),
                "device_clock_drift_ppm": str(DEVICE_CLOCK_DRIFT_PPM),
            },
        )


__all__ = ["MODEL", "SyntheticCamera", "synthetic_serial"]
