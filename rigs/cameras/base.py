"""What every camera driver delivers, and how drivers are found by name.

A driver is registered under the ``driver`` name used in rig files (``synthetic``,
``realsense``, ``opencv``). All drivers share one lifecycle: ``connect()``, ``is_connected``,
``read()`` (blocks until the next frame), ``disconnect()``, and work as context managers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rigs.errors import UserError
from rigs.spec import Camera as CameraSpec


class CameraError(UserError, RuntimeError):
    """A camera that cannot be opened or stopped delivering; the message names it."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics and distortion, as CameraInfo carries them."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Frame:
    """One frame as it left the device.

    ``device_stamp_ns`` is the device's own clock (None when it has none); ``capture_stamp_ns``
    is the best estimate of capture time on the host monotonic clock; ``receipt_stamp_ns`` is
    when the host got it (monotonic). ``depth`` is uint16 millimetres, or None.
    """

    color: np.ndarray
    frame_number: int
    receipt_stamp_ns: int
    capture_stamp_ns: int
    device_stamp_ns: int | None = None
    depth: np.ndarray | None = None


@dataclass
class CameraInfo:
    """Provenance of an opened camera."""

    driver: str
    model: str
    serial: str
    firmware: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Camera(ABC):
    """The lifecycle every camera driver implements."""

    def __init__(self, spec: CameraSpec):
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def prepare(self) -> None:
        """Begin slow start-up work without waiting for it, so that a rig's cameras start
        side by side (a virtual sensor boots its process); ``connect()`` completes it and
        ``disconnect()`` undoes it. Most drivers have nothing to begin."""
        return

    @abstractmethod
    def connect(self) -> None: ...

    @property
    @abstractmethod
    def is_connected(self) -> bool: ...

    @abstractmethod
    def read(self, timeout_s: float = 1.0) -> Frame:
        """Block until the next frame; raise CameraError after ``timeout_s`` without one."""

    @abstractmethod
    def intrinsics(self) -> Intrinsics: ...

    @abstractmethod
    def info(self) -> CameraInfo: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


CameraFactory = Callable[..., Camera]
_REGISTRY: dict[str, CameraFactory] = {}


def register_driver(name: str) -> Callable[[CameraFactory], CameraFactory]:
    """Class decorator: make a driver available under the rig-file ``driver`` name."""

    def deco(factory: CameraFactory) -> CameraFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def driver_for(name: str) -> CameraFactory:
    if name not in _REGISTRY:
        raise CameraError(
            f"camera driver {name!r} is not available here; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]
