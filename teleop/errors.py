"""The engine's own error types. The CLI turns any of these into one line and exit status 2."""

from __future__ import annotations

from rigs.errors import UserError


class TeleopError(UserError, RuntimeError):
    """A problem the user can fix; the message says what and how."""


class DataRootError(TeleopError):
    """The data directory cannot be used (missing permissions, full disk, not a directory)."""
