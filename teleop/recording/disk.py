"""Disk space: refuse to start an episode without room, stop one before the disk fills."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from rigs.spec import RigSpec
from teleop.errors import DataRootError, TeleopError
from teleop.session import SESSION_FILE, read_manifest


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


# Per stream, from `teleop bench record` (640x480 at 30 fps): JPEG colour and 16-bit PNG depth
# together came to 1.66 MB/s for four colour and two depth streams.
NOMINAL_STREAM_BYTES_S = 280_000


def recording_rate_bytes_s(spec: RigSpec, data_root: Path) -> tuple[float, str]:
    """Bytes per second a recording on ``spec`` writes, and where the figure comes from.

    Measured from the episodes already in the data root for this rig when there are any,
    else estimated from the number of camera streams.
    """
    total_bytes, total_s = 0, 0.0
    for manifest in Path(data_root).glob(f"*/{SESSION_FILE}"):
        try:
            data = read_manifest(manifest)
        except DataRootError:
            continue
        if data.rig_id != spec.id:
            continue
        for e in data.episodes:
            if e.bytes and e.duration_s:
                total_bytes += e.bytes
                total_s += e.duration_s
    if total_s >= 5.0:
        return total_bytes / total_s, "measured on this rig's episodes"
    streams = sum(1 + int(c.depth) for c in spec.cameras)
    return max(1, streams) * NOMINAL_STREAM_BYTES_S, "estimated from its cameras"


def hours_left(free_bytes: int, rate_bytes_s: float, stop_free_bytes: int = 0) -> float:
    """Hours of recording that fit before the stop threshold."""
    return max(0.0, free_bytes - stop_free_bytes) / rate_bytes_s / 3600.0
