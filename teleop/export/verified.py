"""Exports read only episodes that match their own checksums."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from teleop.episode.verify import verify_episode
from teleop.export.atomic import ExportError


def refuse_damaged(paths: Iterable[Path]) -> None:
    """Check every episode against its CRCs before anything is written.

    Raises:
        ExportError: naming the first damaged file, where, and what to do.
    """
    for path in paths:
        damage = verify_episode(Path(path))
        if damage is not None:
            raise ExportError(
                f"{path}: damaged, {damage}; nothing exported. `teleop recover {path}` keeps "
                'the intact chunks, or leave it out with --where "… AND readable = 1"'
            )
