"""Keys for the recording controls.

A USB foot pedal presents itself as a keyboard, so making every action's keys configurable
covers pedals too: map the pedal's key (often ``B``, ``PgDown`` or ``F13``) to an action with
``teleop-gui --key start_stop=F13``. An action may have several keys (``Space,F13``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from PySide6.QtGui import QKeySequence

from rigs.errors import UserError

ACTIONS = ("start_stop", "keep", "discard", "rerecord", "mark_success", "mark_failure")


class KeymapError(UserError, ValueError):
    """A ``--key`` option that names no action or no key."""


@dataclass(frozen=True)
class Keymap:
    """Comma-separated Qt key names per action (``QKeySequence`` syntax)."""

    start_stop: str = "Space"
    keep: str = "K"
    discard: str = "D"
    rerecord: str = "R"
    mark_success: str = "S"  # the operator's own verdict on the last episode; QA confirms
    mark_failure: str = "F"

    def sequences(self, action: str) -> list[QKeySequence]:
        """The key sequences bound to ``action``."""
        return [QKeySequence(k.strip()) for k in getattr(self, action).split(",") if k.strip()]

    def label(self, action: str) -> str:
        """What a button shows: ``Space`` or ``Space / F13``."""
        return " / ".join(k.strip() for k in getattr(self, action).split(",") if k.strip())

    def with_options(self, options: list[str]) -> Keymap:
        """Apply ``action=KEYS`` options (``--key``) on top of this map."""
        changes: dict[str, str] = {}
        names = [f.name for f in fields(self)]
        for opt in options:
            action, sep, keys = opt.partition("=")
            action = action.strip().replace("-", "_")
            if not sep or action not in names:
                raise KeymapError(
                    f"--key {opt!r}: use ACTION=KEY with ACTION one of {', '.join(names)}"
                )
            for k in keys.split(","):
                if k.strip() and QKeySequence(k.strip()).isEmpty():
                    raise KeymapError(f"--key {opt!r}: {k.strip()!r} is not a key Qt knows")
            if not keys.strip():
                raise KeymapError(f"--key {opt!r}: name at least one key")
            changes[action] = keys
        return replace(self, **changes)
