"""Bring a rig up and down: the virtual rig if the spec says so, buses, cameras.

One object owns every device of a rig for the life of a session; ``close()`` releases them in
reverse order even after a partial open, so a failed start never leaves a port held.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

import rigs.cameras.synthetic  # noqa: F401  (registers the "synthetic" driver)
from rigs.cameras.base import Camera, driver_for
from rigs.dynamixel.bus import DynamixelBus
from rigs.spec import LoadedRig, RigSpec
from rigs.virtual.launcher import VirtualRig

log = logging.getLogger(__name__)


class RigRuntime:
    """The opened devices of one rig: ``buses`` by arm name, ``cameras`` by camera name."""

    def __init__(self, loaded: LoadedRig, *, seed: int = 0, with_cameras: bool = True):
        self.loaded = loaded
        self.spec: RigSpec = loaded.spec
        self.seed = seed
        self.with_cameras = with_cameras
        self.virtual: VirtualRig | None = None
        self.buses: dict[str, DynamixelBus] = {}
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
            self.virtual = VirtualRig(spec, seed=self.seed)
            self._stack.callback(self.virtual.close)
            self.virtual.start()
            resources["world"] = self.virtual.world
        for arm in spec.arms:
            if arm.port == "virtual":
                assert self.virtual is not None
                arm = arm.model_copy(update={"port": self.virtual.ports[arm.name]})
            bus = DynamixelBus(arm)
            bus.connect()
            self._stack.callback(bus.disconnect)
            self.buses[arm.name] = bus
        for arm in spec.leaders:
            self.buses[arm.name].configure_leader()
        for arm in spec.followers:
            self.buses[arm.name].configure_follower()
        if self.with_cameras:
            for cam_spec in spec.cameras:
                camera = driver_for(cam_spec.driver)(cam_spec, **resources)
                camera.connect()
                self._stack.callback(camera.disconnect)
                self.cameras[cam_spec.name] = camera

    def close(self) -> None:
        self._stack.close()
        self.buses.clear()
        self.cameras.clear()

    def __enter__(self) -> RigRuntime:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
