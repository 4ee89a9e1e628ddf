"""Write an export's output under a temporary name and rename it into place when complete.

An interrupted export (Ctrl-C, a full disk, a crash) leaves at most a hidden
``.<name>.partial-<pid>`` beside the target, never a half-written file or directory under
the final name. A later export removes stale partials of the same target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from rigs.durable import fsync_dir
from teleop.errors import TeleopError
from teleop.session import SESSION_FILE

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``: units done of total (bytes or frames), and what is being
written. Exporters call it often; front ends draw a bar from it."""


class ExportError(TeleopError):
    """An export cannot be done as asked; the message names what and what to do."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` (or ``path`` itself) and the directories holding them."""
    paths = [path] if path.is_file() else [p for p in path.rglob("*")] + [path]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _is_data_root(path: Path) -> bool:
    if (path / "catalog.sqlite").exists():
        return True
    try:
        return any(path.glob(f"*/{SESSION_FILE}"))
    except OSError:
        return False


def refuse_recorded(final: Path) -> None:
    """Refuse an output that is, holds or lies inside recorded data: a session folder, an
    episode file, or a data root (with ``--overwrite`` the export would replace it).

    Raises:
        ExportError: naming what would be overwritten.
    """
    target = Path(final).resolve()
    for p in (target, *target.parents):
        if (p / SESSION_FILE).is_file():
            raise ExportError(
                f"{final}: inside the session folder {p}; an export never writes among "
                "recordings: choose an --out outside the data root"
            )
        if _is_data_root(p):
            raise ExportError(
                f"{final}: {'is' if p == target else 'inside'} the data root {p}; an export "
                "never writes into it: choose an --out outside the data root"
            )
    if target.is_dir():
        for found in target.rglob(SESSION_FILE):
            raise ExportError(
                f"{final}: holds the recorded session {found.parent}; an export never replaces "
                "recordings: choose another --out"
            )


@contextlib.contextmanager
def atomic_output(final: Path, *, directory: bool, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write the whole output to; rename it to ``final`` on success.

    Args:
        final: the output's final path (a directory when ``directory``, else a file).
        directory: create the temporary path as an empty directory.
        overwrite: replace an existing ``final``; otherwise an existing one is an error.

    Raises:
        ExportError: ``final`` exists (and not ``overwrite``), or its parent is missing.
    """
    final = Path(final)
    refuse_recorded(final)
    parent = final.parent
    if not parent.is_dir():
        raise ExportError(f"{parent}: no such directory; create it or choose another --out")
    empty_dir = final.is_dir() and not any(final.iterdir())
    if final.exists() and not overwrite and not empty_dir:
        raise ExportError(f"{final}: already exists; choose another --out or remove it")
    for stale in parent.glob(f".{final.name}.partial-*"):
        _remove(stale)
    tmp = parent / f".{final.name}.partial-{os.getpid()}"
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
        fsync_dir(parent)
    except BaseException:
        _remove(tmp)
        raise
