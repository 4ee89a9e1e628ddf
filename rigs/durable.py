"""Durable files: the fsync and atomic-publish helpers every writer of the project uses.

A name appears only for a complete file (written under a temporary name, fsynced, then
renamed or linked), and the directory is fsynced after, so a crash or power cut leaves the
old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a create, rename or unlink in directory ``path`` durable (a no-op on filesystems
    that refuse to fsync a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; nothing more to do
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON so that readers see the old or new file, whole.

    On failure (a full disk) the old file stays and no temporary file is left behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def publish_new(tmp: Path, final: Path) -> None:
    """Give a written temp file its final name, refusing to replace an existing file
    (FileExistsError). On success ``tmp`` may remain as a second link: remove it."""
    try:
        # link() refuses an existing name atomically, so nothing is ever replaced.
        os.link(tmp, final)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # A filesystem without hard links: check, then rename.
        if final.exists():
            raise FileExistsError(str(final)) from None
        os.rename(tmp, final)


__all__ = ["fsync_dir", "publish_new", "write_json_atomic"]
