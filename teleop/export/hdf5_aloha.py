"""Export episodes as ACT/ALOHA HDF5: one ``episode_<N>.hdf5`` per episode, N from 0.

Each file holds one row per control cycle (the followers' ``joint_states`` rate), in the
layout ACT's training code reads::

    /observations/qpos            T×D float64  follower positions (rad), left arm then right
    /observations/qvel            T×D float64  follower velocities (rad/s)
    /observations/effort          T×D float64  follower currents (mA)
    /observations/images/<cam>    T×H×W×3 uint8 RGB, one chunk per frame, gzip (lossless)
    /action                       T×D float64  goal positions written to the followers

Each camera's image in row i is the frame whose capture stamp is nearest that cycle's stamp
(:mod:`teleop.export.aligned`; a row with none within half a frame period takes the newest
earlier frame). Root attributes: ``sim`` (False: recorded through the real driver path),
``compress`` (False: images are raw pixels, not JPEG bytes), ``episode_id`` (the source
episode, ``<session>/episode_NNNN``), ``source_file``, ``task``, ``rig_id``, ``joint_names``
(``<arm>.<joint>``, the D columns), ``cameras``, ``control_rate_hz`` (rows per second, from
the cycle stamps) and ``stale_frames`` (JSON: camera → rows showing an older frame).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from teleop.export.aligned import AlignedRow, EpisodeLayout, iter_aligned, read_layouts
from teleop.export.atomic import ExportError, Progress, atomic_output
from teleop.export.verified import refuse_damaged

log = logging.getLogger(__name__)

_VECTORS = {
    "observations/qpos": "position",
    "observations/qvel": "velocity",
    "observations/effort": "effort",
    "action": "command",
}


@dataclass(frozen=True)
class Hdf5ExportResult:
    """What :func:`export_hdf5_aloha` wrote."""

    out: Path
    files: tuple[Path, ...]
    """``out/episode_<N>.hdf5``, in export order."""
    episodes: int
    rows: int
    cameras: tuple[str, ...]
    stale_frames: dict[str, int]
    """Per camera: rows with no frame within half a frame period (an older frame shown)."""
    flagged_episodes: tuple[str, ...]
    """Source episode ids with at least one stale frame."""


def export_hdf5_aloha(
    episodes: Sequence[Path],
    out: Path,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
    gzip_level: int = 1,
) -> Hdf5ExportResult:
    """Write ``episodes`` (in this order) as ``out/episode_<N>.hdf5`` files.

    Args:
        episodes: episode files, all from rigs with the same followers, joints and cameras.
        out: the directory to create (written under a temporary name first).
        progress: called as ``progress(rows_done, rows_total, episode_id)``.
        overwrite: replace an existing ``out``.
        gzip_level: image compression level, 0–9 (1: nearly the size of 9, several times
            faster).

    Raises:
        ExportError: nothing to export, an unreadable episode or one whose joints or cameras
            differ from the first's; the message names the file.
    """
    layouts = read_layouts(episodes)
    total = sum(layout.row_count_estimate(None) for layout in layouts)
    cameras = layouts[0].cameras
    stale = dict.fromkeys(cameras, 0)
    flagged: list[str] = []
    done = 0
    refuse_damaged(episodes)
    with atomic_output(Path(out), directory=True, overwrite=overwrite) as root:
        for n, layout in enumerate(layouts):
            name = f"episode_{n}.hdf5"
            with h5py.File(root / name, "w") as f:
                writer = _EpisodeFile(f, layout, gzip_level)
                for row in iter_aligned(layout, fps=None):
                    writer.add(row)
                    for cam in row.missing:
                        stale[cam] += 1
                    done += 1
                    if progress is not None:
                        progress(done, max(total, done), layout.episode_id)
                writer.finish()
            if writer.any_missing:
                flagged.append(layout.episode_id)
    log.info("exported %d episodes, %d rows to %s", len(layouts), done, out)
    return Hdf5ExportResult(
        out=Path(out),
        files=tuple(Path(out) / f"episode_{n}.hdf5" for n in range(len(layouts))),
        episodes=len(layouts),
        rows=done,
        cameras=cameras,
        stale_frames=stale,
        flagged_episodes=tuple(flagged),
    )


class _EpisodeFile:
    """Fills one HDF5 file row by row; datasets grow as rows come (the count is known only
    approximately until the file has been read)."""

    def __init__(self, f: h5py.File, layout: EpisodeLayout, gzip_level: int):
        self.f = f
        self.layout = layout
        self.gzip_level = gzip_level
        self.capacity = max(1, layout.row_count_estimate(None))
        d = len(layout.joint_names)
        self.vectors = {
            key: f.create_dataset(key, (self.capacity, d), maxshape=(None, d), dtype="f8")
            for key in _VECTORS
        }
        self.images: dict[str, h5py.Dataset] = {}
        self.stamps: list[int] = []
        self.missing: dict[str, int] = dict.fromkeys(layout.cameras, 0)

    def add(self, row: AlignedRow) -> None:
        i = len(self.stamps)
        if i == self.capacity:
            self.capacity *= 2
            for dset in [*self.vectors.values(), *self.images.values()]:
                dset.resize(self.capacity, axis=0)
        for key, attr in _VECTORS.items():
            self.vectors[key][i] = getattr(row, attr)
        for cam in self.layout.cameras:
            image = row.images.get(cam)
            if image is None:
                raise ExportError(f"{self.layout.path}: camera {cam} has no frames")
            self._image_dataset(cam, image.shape)[i] = image
        for cam in row.missing:
            self.missing[cam] += 1
        self.stamps.append(row.cycle_stamp_ns)

    def _image_dataset(self, cam: str, shape: tuple[int, ...]) -> h5py.Dataset:
        dset = self.images.get(cam)
        if dset is None:
            dset = self.images[cam] = self.f.create_dataset(
                f"observations/images/{cam}",
                (self.capacity, *shape),
                maxshape=(None, *shape),
                dtype="u1",
                chunks=(1, *shape),
                compression="gzip",
                compression_opts=self.gzip_level,
            )
        elif dset.shape[1:] != shape:
            raise ExportError(
                f"{self.layout.path}: camera {cam} changes frame size mid-episode "
                f"({shape} after {dset.shape[1:]})"
            )
        return dset

    def finish(self) -> None:
        rows = len(self.stamps)
        if not rows:
            raise ExportError(f"{self.layout.path}: no complete control cycle to export")
        for dset in [*self.vectors.values(), *self.images.values()]:
            dset.resize(rows, axis=0)
        span_s = (self.stamps[-1] - self.stamps[0]) / 1e9
        layout = self.layout
        attrs: dict[str, Any] = {
            "sim": False,
            "compress": False,
            "episode_id": layout.episode_id,
            "source_file": str(layout.path),
            "task": layout.task,
            "rig_id": layout.rig_id,
            "joint_names": np.array(layout.joint_names, dtype=h5py.string_dtype()),
            "cameras": np.array(layout.cameras, dtype=h5py.string_dtype()),
            "control_rate_hz": (rows - 1) / span_s if span_s > 0 else 0.0,
            "stale_frames": json.dumps(self.missing),
        }
        self.f.attrs.update(attrs)

    @property
    def any_missing(self) -> bool:
        return any(self.missing.values())
