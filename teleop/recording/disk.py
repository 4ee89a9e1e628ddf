"""Disk space: refuse to start an episode without room, stop one before the disk fills."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from teleop.errors import TeleopError


class DiskSpaceError(TeleopError):
    """Too little free space to start recording."""


@dataclass
class DiskGuard:
    """Thresholds on the free space of the file system holding ``path``.

    ``start_free_bytes``: below this, an episode may not start. ``stop_free_bytes``: below
    this, a running episode is stopped cleanly (its file finished, not cut off by ENOSPC).
    """

    path: Path
    start_free_bytes: int = 2 * 1024**3
    stop_free_bytes: int = 512 * 1024**2

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def describe(self) -> str:
        return f"{self.free_bytes() / 1024**3:.2f} GiB free on {self.path}"

    def check_can_start(self) -> None:
        free = self.free_bytes()
        if free < self.start_free_bytes:
            raise DiskSpaceError(
                f"only {free / 1024**3:.2f} GiB free on {self.path} (need "
                f"{self.start_free_bytes / 1024**3:.2f} GiB to start an episode); free space, "
                "export and remove old sessions, or pass --data-dir on a larger disk"
            )

    def below_stop(self) -> bool:
        return self.free_bytes() < self.stop_free_bytes
