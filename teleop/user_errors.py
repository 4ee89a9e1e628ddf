"""Turn exceptions into the one line the CLI prints."""

from __future__ import annotations

from calibration.records import CalibrationError
from rigs.cameras.base import CameraError
from rigs.dynamixel.bus import BusError
from rigs.spec import RigSpecError
from rigs.virtual.launcher import VirtualRigError
from teleop.episode.reader import EpisodeReadError
from teleop.errors import TeleopError

EXPECTED = (
    RigSpecError,
    BusError,
    CameraError,
    CalibrationError,
    VirtualRigError,
    EpisodeReadError,
    TeleopError,
)


def describe(exc: BaseException) -> str:
    """A one-line description; unexpected errors say how to get the details."""
    if isinstance(exc, EXPECTED):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return f"unexpected {type(exc).__name__}: {exc} (run again with --debug for details)"
