"""Bring a rig up and down: the virtual rig if the spec says so, and the cameras.

The one way a rig's parts are opened: :class:`RigRuntime` for recording and replay,
:func:`open_rig_ports` and :func:`open_camera` for calibration and ``teleop doctor``.

The buses are opened by the control process (teleop.control.process), which owns them; this
object resolves their ports. ``close()`` releases everything in reverse order even after a
partial open, so a failed start never leaves a device held.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import rigs.cameras.opencv_camera  # noqa: F401  (registers the "opencv" driver)
import rigs.cameras.realsense  # noqa: F401  (registers the "realsense" driver)
import rigs.cameras.synthetic  # noqa: F401  (registers the "synthetic" driver)
from rigs.cameras.base import Camera, driver_for
from rigs.spec import LoadedRig, RigSpec
from rigs.virtual.launcher import VirtualRig
from rigs.virtual.realsense_device import DEPTH_HISTORY, VirtualRealSense

log = logging.getLogger(__name__)


@contextmanager
def open_rig_ports(
    spec: RigSpec, *, seed: int = 0, hold_operator: bool = False
) -> Iterator[tuple[dict[str, str], VirtualRig | None]]:
    """Arm name -> port to open, starting the virtual rig first if the rig is virtual (for
    calibration and ``teleop doctor``, which open the buses themselves).

    ``hold_operator``: the virtual rig's scripted operator keeps the leaders still (as a
    person does while the pre-flight checks run).
    """
    if not spec.virtual:
        yield {a.name: a.port for a in spec.arms}, None
        return
    rig = VirtualRig(spec, seed=seed, hold_operator=hold_operator)
    with rig:
        yield dict(rig.ports), rig


def open_camera(
    spec: RigSpec,
    name: str,
    virtual: VirtualRig | None,
    stack: ExitStack,
    seed: int = 0,
    *,
    depth_history: int = DEPTH_HISTORY,
) -> tuple[Camera, VirtualRealSense | None]:
    """Connect camera ``name`` through its driver; everything opened is closed by ``stack``.

    On a virtual rig a RealSense camera is the virtual device the real driver opens, started
    here first (and returned, for its fault injection and ground truth).
    """
    camera, device = _prepare_camera(spec, name, virtual, stack, seed, depth_history)
    _connect_camera(camera, device)
    return camera, device


def _prepare_camera(
    spec: RigSpec,
    name: str,
    virtual: VirtualRig | None,
    stack: ExitStack,
    seed: int,
    depth_history: int,
) -> tuple[Camera, VirtualRealSense | None]:
    """The camera's driver object (and virtual device), their slow start begun."""
    cam = next(c for c in spec.cameras if c.name == name)
    resources: dict[str, Any] = {"rig": spec}
    device = None
    if virtual is not None and virtual.world is not None:
        resources["world"] = virtual.world
        if cam.driver == "realsense":
            device = VirtualRealSense(
                cam, rig=spec, world=virtual.world, seed=seed, depth_history=depth_history
            )
            stack.callback(device.close)
            device.prepare()
    camera = driver_for(cam.driver)(cam, **resources)
    stack.callback(camera.disconnect)
    camera.prepare()
    return camera, device


def _connect_camera(camera: Camera, device: VirtualRealSense | None) -> None:
    if device is not None:
        device.start()
    camera.connect()


class RigRuntime:
    """The opened devices of one rig: ``ports`` by arm name, ``cameras`` by camera name."""

    def __init__(
        self,
        loaded: LoadedRig,
        *,
        seed: int = 0,
        with_cameras: bool = True,
        depth_history: int = 4,
    ):
        self.loaded = loaded
        self.depth_history = depth_history  # virtual RealSense: depth frames kept for checks
        self.spec: RigSpec = loaded.spec
        self.seed = seed
        self.with_cameras = with_cameras
        self.virtual: VirtualRig | None = None
        self.virtual_cameras: dict[str, VirtualRealSense] = {}
        self.ports: dict[str, str] = {}
        self.cameras: dict[str, Camera] = {}
        self._stack = ExitStack()

    def open(self) -> RigRuntime:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        spec = self.spec
        if spec.virtual:
            # The scripted operator keeps still until recording starts, as a person waits for go.
            self.virtual = VirtualRig(spec, seed=self.seed, hold_operator=True)
            self._stack.callback(self.virtual.close)
            self.virtual.spawn()
        prepared = self._prepare_cameras() if self.with_cameras else []
        if self.virtual is not None:
            self.virtual.start()
        for arm in spec.arms:
            if arm.port == "virtual":
                assert self.virtual is not None
                self.ports[arm.name] = self.virtual.ports[arm.name]
            else:
                self.ports[arm.name] = arm.port
        for name, camera, device in prepared:
            _connect_camera(camera, device)
            if device is not None:
                self.virtual_cameras[name] = device
            self.cameras[name] = camera

    def _prepare_cameras(self) -> list[tuple[str, Camera, VirtualRealSense | None]]:
        """Every camera's slow start begun (a virtual sensor boots a process, as the virtual
        rig's servo process does meanwhile); they are connected in turn afterwards, so the
        parts come up side by side, not one by one."""
        return [
            (c.name, *_prepare_camera(
                self.spec, c.name, self.virtual, self._stack, self.seed, self.depth_history
            ))
            for c in self.spec.cameras
        ]  # fmt: skip

    def close(self) -> None:
        self._stack.close()
        self.ports.clear()
        self.cameras.clear()
        self.virtual_cameras.clear()

    def __enter__(self) -> RigRuntime:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
