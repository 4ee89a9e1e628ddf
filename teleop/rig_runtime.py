"""Bring a rig up and down: the virtual rig if the spec says so, and the cameras.

The buses are opened by the control process (teleop.control.process), which owns them; this
object resolves their ports. ``close()`` releases everything in reverse order even after a
partial open, so a failed start never leaves a device held.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

import rigs.cameras.opencv_camera  # noqa: F401  (registers the "opencv" driver)
import rigs.cameras.realsense  # noqa: F401  (registers the "realsense" driver)
import rigs.cameras.synthetic  # noqa: F401  (registers the "synthetic" driver)
from rigs.cameras.base import Camera, driver_for
from rigs.spec import LoadedRig, RigSpec
from rigs.virtual.launcher import VirtualRig
from rigs.virtual.realsense_device import VirtualRealSense

log = logging.getLogger(__name__)


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
        resources: dict[str, Any] = {"rig": spec}
        if spec.virtual:
            # The scripted operator keeps still until recording starts, as a person waits for go.
            self.virtual = VirtualRig(spec, seed=self.seed, hold_operator=True)
            self._stack.callback(self.virtual.close)
            self.virtual.start()
            resources["world"] = self.virtual.world
        for arm in spec.arms:
            if arm.port == "virtual":
                assert self.virtual is not None
                self.ports[arm.name] = self.virtual.ports[arm.name]
            else:
                self.ports[arm.name] = arm.port
        if self.with_cameras:
            for cam_spec in spec.cameras:
                if spec.virtual and cam_spec.driver == "realsense":
                    # The virtual rig's RealSense: a software device the real driver opens.
                    device = VirtualRealSense(
                        cam_spec, rig=spec, world=resources["world"], seed=self.seed,
                        depth_history=self.depth_history,
                    )  # fmt: skip
                    device.start()
                    self._stack.callback(device.close)
                    self.virtual_cameras[cam_spec.name] = device
                camera = driver_for(cam_spec.driver)(cam_spec, **resources)
                camera.connect()
                self._stack.callback(camera.disconnect)
                self.cameras[cam_spec.name] = camera

    def close(self) -> None:
        self._stack.close()
        self.ports.clear()
        self.cameras.clear()
        self.virtual_cameras.clear()

    def __enter__(self) -> RigRuntime:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
