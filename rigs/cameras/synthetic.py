"""A camera that renders the virtual rig's follower arms, paced like a real device.

It behaves like hardware where it matters to the app: frames arrive at ``spec.fps`` on a
fixed schedule (deadline pacing, so no drift); a reader that falls behind finds the frame
number jumped, as with a real device that kept streaming; each frame carries a device
timestamp from the camera's own clock (its own epoch and a small rate error), a host
estimate of the exposure time and the host receipt time.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from importlib import metadata

from rigs.cameras.base import Camera, CameraError, CameraInfo, Frame, Intrinsics, register_driver
from rigs.cameras.pacing import FramePacer
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

    ``read()`` blocks until the next frame deadline. Frame numbers start at 0 on connect and
    advance once per period of the device's schedule; frames the reader was too late for are
    skipped (counted in :attr:`frames_skipped`) and the frame number jumps over them.
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
        self._stop = threading.Event()
        self._pacer = FramePacer(spec.name, spec.fps, self._stop)
        self._connected = False
        self._t0_ns = 0
        self._next_frame_number = 0
        self.frames_delivered = 0
        self.frames_skipped = 0

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self) -> None:
        """Start the device schedule; the first frame is due one period from now."""
        if self._connected:
            return
        try:
            self._renderer = Renderer(self._rig, self._view, self.spec.width, self.spec.height)
        except ValueError as exc:
            raise CameraError(f"camera {self.name!r}: {exc}") from None
        # Drawing happens in a process of its own, off the app's GIL (render_process.py).
        remote = RenderProcess(
            self._rig,
            self._view,
            self.spec.width,
            self.spec.height,
            self._world,
            self._followers,
            self.name,
        )
        try:
            remote.start()
        except RenderError as exc:
            raise CameraError(str(exc)) from None
        self._remote = remote
        self._stop.clear()
        self._t0_ns = time.monotonic_ns()
        self._pacer.start(self._t0_ns)
        self._next_frame_number = 0
        self.frames_delivered = 0
        self.frames_skipped = 0
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
        self._stop.set()
        remote, self._remote = self._remote, None
        if remote is not None:
            remote.close()

    # -- frames -----------------------------------------------------------------------------

    def read(self, timeout_s: float = 1.0) -> Frame:
        """Wait for the next frame deadline, render the current follower pose, return it."""
        remote = self._remote
        if not self._connected or remote is None:
            raise CameraError(f"camera {self.name!r} is not connected; call connect() first")
        deadline, missed = self._pacer.wait(timeout_s)
        frame_number = self._next_frame_number + missed
        self.frames_skipped += missed
        self._next_frame_number = frame_number + 1

        # The exposure happens at the deadline; rendering stands in for readout and transfer.
        capture_ns = deadline
        device_ns = self._device_clock_ns(capture_ns)
        try:
            color, depth = remote.render(frame_number, device_ns)  # the pose now, drawn
        except RenderError as exc:
            if not self._connected:
                raise CameraError(f"camera {self.name!r} disconnected") from None
            raise CameraError(str(exc)) from None
        self.frames_delivered += 1
        return Frame(
            color=color,
            frame_number=frame_number,
            receipt_stamp_ns=time.monotonic_ns(),
            capture_stamp_ns=capture_ns,
            device_stamp_ns=device_ns,
            depth=depth if self.spec.depth else None,
        )

    def _device_clock_ns(self, host_ns: int) -> int:
        """The device clock at a host monotonic time: own epoch, runs 20 ppm fast."""
        elapsed = host_ns - self._t0_ns
        return self._device_epoch_ns + elapsed + elapsed * DEVICE_CLOCK_DRIFT_PPM // 1_000_000

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
