"""How a virtual rig behaves: one frozen set of options with its defaults, given by
:class:`~rigs.virtual.launcher.VirtualRig` to the servo process that builds the chains."""

from __future__ import annotations

from dataclasses import dataclass

from rigs.virtual.mounting import MountingKind


@dataclass(frozen=True)
class VirtualRigOptions:
    """The virtual rig's physics, hardware build and scripted operator."""

    grasp_objects: bool = True
    """Followers' grippers close on an object (as on a real pick) instead of on air."""
    time_constant_s: float = 0.045
    """How fast a servo follows its goal (first-order lag)."""
    reboot_time_s: float = 0.05
    """How long a rebooted servo stays silent."""
    mounting: MountingKind = "seeded"
    """``seeded``: every servo with an offset and direction only a calibration recovers;
    ``ideal``: leader and follower readings equal (an identity mapping then works)."""
    mounting_seed: int = 0
    """The hardware build (the launcher's default: from the rig id, so each start of a rig
    is the same hardware)."""
    hold_operator: bool = False
    """The scripted operator holds the leaders still until released."""
    calibration_speed_rad_s: float = 30.0
    calibration_hold_s: float = 0.15
    """Pace of the calibration moves the rig's hands make."""


__all__ = ["VirtualRigOptions"]
