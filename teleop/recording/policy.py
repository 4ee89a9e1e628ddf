"""How a recording session starts and stops: the one owner of these settings and defaults.

``teleop record``, ``teleop doctor`` and the operator app declare their options from it
(:func:`teleop.arguments.add_policy_arguments`), and the engine (``start_session``, the
Recorder, the pre-flight checks) takes one frozen :class:`RecordingPolicy`, so a default is
written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from calibration.checks import DEFAULT_MAX_AGE_DAYS, DEFAULT_POSE_DELTA_RAD


@dataclass(frozen=True)
class RecordingPolicy:
    """The start checks and stop rules of a recording session."""

    rate_hz: float | None = None
    """Control rate; None: the rig file's ``control_rate_hz``."""
    min_free_gb: float = 2.0
    """Refuse to start an episode below this free space on the data root's disk."""
    stop_free_gb: float = 0.5
    """Stop an episode cleanly below this free space."""
    max_pose_delta_rad: float = DEFAULT_POSE_DELTA_RAD
    """Refuse to start if a follower stands further than this from where its leader sends it."""
    max_calibration_age_days: float = DEFAULT_MAX_AGE_DAYS
    """Refuse calibration records older than this."""
    allow_uncalibrated: bool = False
    """Record without calibration records (identity mapping; every episode flagged)."""


DEFAULT_POLICY = RecordingPolicy()

__all__ = ["DEFAULT_POLICY", "RecordingPolicy"]
