"""The one root of every error a person can fix.

A :class:`UserError` is an expected problem (a wrong rig file, a missing motor, an unplugged
camera, a damaged file, a full disk): its message is one line naming what is wrong and what to
do, and the CLI prints it as ``teleop: error: …`` (the GUI in its banner) without a traceback.
Each layer's errors derive from it (``RigSpecError``, ``BusError``, ``CameraError``,
``CalibrationError``, ``TeleopError``, …), keeping their standard base (ValueError,
RuntimeError) too.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected problem with a one-line message that says what to do."""


__all__ = ["UserError"]
