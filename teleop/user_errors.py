"""Turn exceptions into the one line the CLI prints."""

from __future__ import annotations

from rigs.errors import UserError

# Every expected problem derives from the one root (rigs/errors.py).
EXPECTED = (UserError,)


def describe(exc: BaseException) -> str:
    """A one-line description; unexpected errors say how to get the details."""
    if isinstance(exc, EXPECTED):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return f"unexpected {type(exc).__name__}: {exc} (run again with --debug for details)"
