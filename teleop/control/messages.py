"""What the app and the control process say to each other over their pipe.

Samples do not travel here (they go through the shared-memory ring); these are the few
control messages, as small frozen dataclasses pickled by multiprocessing. Errors travel as
the exception objects themselves, so the app raises exactly what the process met.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.mapping import JointMapping
from rigs.dynamixel.bus import BusError, MotorInfo
from teleop.control.loop import CommandSource

# process -> app


@dataclass(frozen=True)
class Ready:
    """The buses are open and answered; nothing moves until :class:`Go`."""

    hardware: dict[str, dict[str, str]]
    motors: dict[str, list[MotorInfo]]
    positions: dict[str, np.ndarray]


@dataclass(frozen=True)
class StartFailed:
    """The buses could not be opened or read; the process has exited."""

    error: BusError


@dataclass(frozen=True)
class Milestone:
    """The command source reached ``name`` (replay: approach done, replay done) at ``cycle``."""

    name: str
    cycle: int


@dataclass(frozen=True)
class Fault:
    """The loop stopped on a bus fault of ``arm`` (its ``role``); the followers hold."""

    error: BusError
    arm: str
    role: str


# app -> process


@dataclass(frozen=True)
class Go:
    """Start the loop with these mappings, following the leaders or ``source``."""

    mappings: dict[str, JointMapping]
    source: CommandSource | None


@dataclass(frozen=True)
class Stop:
    """Stop the loop (the followers keep holding their last command)."""


def as_bus_error(exc: BaseException) -> BusError:
    """``exc`` if it is a bus error, else one with its message (what the app can raise)."""
    return exc if isinstance(exc, BusError) else BusError(str(exc))


__all__ = ["Fault", "Go", "Milestone", "Ready", "StartFailed", "Stop", "as_bus_error"]
