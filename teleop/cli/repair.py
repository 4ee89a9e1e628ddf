"""``teleop repair FILE|SESSION``: corrected copies of episodes recorded by teleop 0.1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from teleop.episode.repair import needs_repair, repair
from teleop.errors import TeleopError
from teleop.session import SESSION_FILE, session_of


def _episodes_of(session_dir: Path) -> list[Path]:
    session = session_of(session_dir / SESSION_FILE)
    if session is None:
        raise TeleopError(f"{session_dir}: not a session folder (no readable {SESSION_FILE})")
    files = [session_dir / e.file for e in session.episodes]
    return [f for f in files if f.suffix == ".mcap" and f.is_file()]


def run_repair(target: Path, output: Path | None, *, out: Callable[[str], None]) -> int:
    """Repair one episode, or every listed episode of a session folder; print one line each.

    The session manifest (and so the catalog) then lists each copy in place of its original.
    """
    if target.is_dir():
        if output is not None:
            raise TeleopError("--output names one file; it cannot be used with a session folder")
        files = _episodes_of(target)
    elif target.is_file():
        files = [target]
    else:
        raise TeleopError(f"{target}: no such file or session folder")
    for path in files:
        if not needs_repair(path):
            out(f"{path}: current form, nothing to repair")
            continue
        report = repair(path, output)
        assert report.output is not None
        session = session_of(path)
        listed = session is not None and session.register_repaired(path, report.output)
        where = f"; {session.root / SESSION_FILE} lists it" if listed and session else ""
        out(
            f"{path}: repaired into {report.output} ({report.messages} messages, "
            f"{report.schemas_changed} definitions corrected; original kept{where})"
        )
    return 0
