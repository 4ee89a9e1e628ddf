"""Export episodes as a LeRobot dataset, codebase version v3.0, that ``LeRobotDataset`` loads.

Layout (all episodes in one file of each kind; LeRobot reads every file under ``data/`` and
locates each episode through ``meta/episodes``, so one file per kind is valid at any size)::

    meta/info.json                       codebase_version "v3.0", fps, features, totals, paths
    meta/stats.json                      per feature: min, max, mean, std, count, q01…q99
    meta/tasks.parquet                   task string (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, tasks, row and
                                         video ranges, per-episode stats, source episode id
    data/chunk-000/file-000.parquet      one row per frame
    videos/observation.images.<cam>/chunk-000/file-000.mp4   one stream per camera, episodes
                                         back to back; frame k of the file has pts k/fps

Columns: ``observation.state`` (follower positions, rad), ``observation.velocity`` (rad/s),
``observation.effort`` (current, mA), ``action`` (the goal positions written to the
followers), each float32 in :attr:`EpisodeLayout.joint_names` order, and ``timestamp``
(s from the episode's first row), ``frame_index``, ``episode_index``, ``index``,
``task_index``. Rows are the fixed grid ``t0 + k/fps`` of :mod:`teleop.export.aligned` (the
control cycle nearest each grid time; the camera frame nearest by capture time).

The task string of an episode is the ``description`` of its task in the data root's
``tasks.toml`` when there is one (a sentence is what language-conditioned policies are
trained on), else the task name from the episode's provenance. The name and the source
episode id are kept in the episodes table (``teleop/task_name``, ``teleop/episode_id``).
Depth streams are not exported.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rigs.realtime import scheduling_kept
from teleop.export.aligned import EpisodeLayout, iter_aligned, read_layouts
from teleop.export.atomic import ExportError, Progress, atomic_output
from teleop.export.verified import refuse_damaged
from teleop.tasks import TASKS_FILE, load_tasks

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
_VECTORS = {
    "observation.state": "position",
    "observation.velocity": "velocity",
    "observation.effort": "effort",
    "action": "command",
}
_SCALARS = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
# Image stats come from about this many frames per episode, subsampled to about this width:
# per-channel statistics settle long before that, and sampling keeps memory flat.
_STATS_FRAMES = 50
_STATS_WIDTH = 80


@dataclass(frozen=True)
class LeRobotExportResult:
    """What :func:`export_lerobot` wrote."""

    out: Path
    episodes: int
    frames: int
    tasks: int
    cameras: tuple[str, ...]
    codec: str
    """Video encoder used (``libsvtav1`` or ``libx264``)."""
    stale_frames: dict[str, int]
    """Per camera: rows with no frame within half a frame period (an older frame shown)."""
    flagged_episodes: tuple[str, ...]
    """Source episode ids with at least one stale frame."""


def choose_codec() -> str:
    """AV1 (SVT) as LeRobot's own encoder uses, else H.264; both decode in LeRobot."""
    for name in ("libsvtav1", "libx264"):
        if name in av.codecs_available:
            return name
    raise ExportError("PyAV has neither libsvtav1 nor libx264; install a PyAV wheel with them")


def export_lerobot(
    episodes: Sequence[Path],
    out: Path,
    *,
    fps: float,
    progress: Progress | None = None,
    overwrite: bool = False,
    codec: str | None = None,
    crf: int = 30,
) -> LeRobotExportResult:
    """Write ``episodes`` (in this order) as a LeRobot v3.0 dataset directory ``out``.

    Args:
        episodes: episode files, all from rigs with the same followers, joints and cameras.
        out: the dataset directory to create (written under a temporary name first).
        fps: the dataset's frame rate, a whole number (LeRobot stores it as an int).
        progress: called as ``progress(frames_done, frames_total, episode_id)``.
        overwrite: replace an existing ``out``.
        codec: video encoder (default: :func:`choose_codec`).
        crf: video quality (lower is better and larger; LeRobot's default is 30).

    Raises:
        ExportError: nothing to export, a bad ``fps``, an unreadable episode or one whose
            joints or cameras differ from the first's; the message names the file.
    """
    if not (fps > 0 and float(fps).is_integer()):
        raise ExportError(f"--fps {fps}: LeRobot datasets need a whole number of frames per s")
    rate = int(fps)
    layouts = read_layouts(episodes)
    codec = codec or choose_codec()
    if codec not in av.codecs_available:
        raise ExportError(f"video codec {codec!r} is not in this PyAV build; try libx264")
    first = layouts[0]
    tasks = _task_strings(layouts)
    task_index = {t: i for i, t in enumerate(dict.fromkeys(tasks))}
    total = sum(layout.row_count_estimate(rate) for layout in layouts)

    refuse_damaged(episodes)
    with atomic_output(Path(out), directory=True, overwrite=overwrite) as root:
        videos = {cam: _Video(root, cam, rate, codec, crf) for cam in first.cameras}
        data_path = root / DATA_PATH.format(chunk_index=0, file_index=0)
        data_path.parent.mkdir(parents=True)
        data_writer: pq.ParquetWriter | None = None
        episode_rows: list[dict[str, Any]] = []
        episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        stale = dict.fromkeys(first.cameras, 0)
        flagged: list[str] = []
        done = 0
        try:
            for ep_index, layout in enumerate(layouts):
                task = tasks[ep_index]
                episode = _Episode(layout, first.cameras, layout.row_count_estimate(rate))
                start = {cam: v.frames for cam, v in videos.items()}
                for row in iter_aligned(layout, fps=rate):
                    episode.add(row)
                    for cam in first.cameras:
                        if cam not in row.images:
                            raise ExportError(f"{layout.path}: camera {cam} has no frames")
                        videos[cam].write(row.images[cam], layout)
                    for cam in row.missing:
                        stale[cam] += 1
                    done += 1
                    if progress is not None:
                        progress(done, max(total, done), layout.episode_id)
                if not episode.length:
                    raise ExportError(f"{layout.path}: no complete control cycle to export")
                if episode.missing:
                    flagged.append(layout.episode_id)
                table = episode.table(ep_index, done - episode.length, task_index[task], rate)
                if data_writer is None:
                    data_writer = pq.ParquetWriter(data_path, table.schema, compression="snappy")
                data_writer.write_table(table)
                stats = episode.stats(table)
                episode_stats.append(stats)
                episode_rows.append(
                    _episode_row(ep_index, episode, task, done, start, rate, stats, layout)
                )
        finally:
            if data_writer is not None:
                data_writer.close()
            for video in videos.values():
                video.close()
        _write_meta(root, first, rate, videos, task_index, episode_rows, done)
        _write_json(root / "meta/stats.json", _serialize(_aggregate(episode_stats)))

    log.info("exported %d episodes, %d frames to %s", len(layouts), done, out)
    return LeRobotExportResult(
        out=Path(out),
        episodes=len(layouts),
        frames=done,
        tasks=len(task_index),
        cameras=first.cameras,
        codec=codec,
        stale_frames=stale,
        flagged_episodes=tuple(flagged),
    )


# -- episodes --------------------------------------------------------------------------------


def _task_strings(layouts: list[EpisodeLayout]) -> list[str]:
    """Each episode's task string: the task's description in ``<data-root>/tasks.toml``,
    else its name. The data root is the folder holding the episode's session folder."""
    descriptions: dict[Path, dict[str, str]] = {}
    out = []
    for layout in layouts:
        data_root = layout.path.resolve().parent.parent
        if data_root not in descriptions:
            descriptions[data_root] = (
                {t.name: t.description for t in load_tasks(data_root)}
                if (data_root / TASKS_FILE).is_file()
                else {}
            )
        out.append(descriptions[data_root].get(layout.task) or layout.task)
    return out


class _Episode:
    """One episode's rows, kept as small arrays (joints only) until its table is written."""

    def __init__(self, layout: EpisodeLayout, cameras: tuple[str, ...], rows_estimate: int):
        self.layout = layout
        self.vectors: dict[str, list[np.ndarray]] = {k: [] for k in _VECTORS}
        self.stride = max(1, rows_estimate // _STATS_FRAMES)
        self.samples: dict[str, list[np.ndarray]] = {cam: [] for cam in cameras}
        self.length = 0
        self.missing = 0

    def add(self, row: Any) -> None:
        for key, attr in _VECTORS.items():
            self.vectors[key].append(getattr(row, attr))
        if row.index % self.stride == 0:
            for cam, image in row.images.items():
                step = max(1, image.shape[1] // _STATS_WIDTH)
                self.samples[cam].append(image[::step, ::step])
        self.missing += len(row.missing)
        self.length += 1

    def table(self, episode_index: int, first_index: int, task_index: int, fps: int) -> pa.Table:
        n = self.length
        frame = np.arange(n, dtype=np.int64)
        columns: dict[str, pa.Array] = {}
        for key, rows in self.vectors.items():
            values = np.asarray(rows, dtype=np.float32)
            columns[key] = pa.FixedSizeListArray.from_arrays(
                pa.array(values.ravel()), values.shape[1]
            )
        columns["timestamp"] = pa.array((frame / fps).astype(np.float32))
        columns["frame_index"] = pa.array(frame)
        columns["episode_index"] = pa.array(np.full(n, episode_index, np.int64))
        columns["index"] = pa.array(frame + first_index)
        columns["task_index"] = pa.array(np.full(n, task_index, np.int64))
        return pa.table(columns)

    def stats(self, table: pa.Table) -> dict[str, dict[str, np.ndarray]]:
        stats = {}
        for key in list(_VECTORS) + list(_SCALARS):
            column = table.column(key).combine_chunks()
            if key in _VECTORS:
                values = column.values.to_numpy().reshape(len(column), -1).astype(np.float64)
            else:
                values = column.to_numpy().astype(np.float64).reshape(-1, 1)
            stats[key] = _array_stats(values)
        for cam, samples in self.samples.items():
            # Channels first, scaled to [0, 1], shape (3, 1, 1): LeRobot's image stats.
            pixels = np.concatenate([s.reshape(-1, 3) for s in samples]).astype(np.float64) / 255
            per_channel = _array_stats(pixels)
            per_channel["count"] = np.array([len(samples)])
            stats[_video_key(cam)] = {
                k: v if k == "count" else v.reshape(3, 1, 1) for k, v in per_channel.items()
            }
        return stats


def _array_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Column statistics of a (rows, features) array."""
    stats = {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
        "count": np.array([len(values)]),
    }
    for q, value in zip(QUANTILES, np.quantile(values, QUANTILES, axis=0), strict=True):
        stats[f"q{round(q * 100):02d}"] = value
    return stats


def _aggregate(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict]:
    """Dataset statistics from episode statistics: exact min, max, mean and std (pooled
    variance); quantiles are the count-weighted mean of the episodes' (an approximation,
    as in LeRobot's own aggregation)."""
    out: dict[str, dict] = {}
    for key in per_episode[0]:
        eps = [s[key] for s in per_episode]
        counts = np.array([float(s["count"][0]) for s in eps])
        weights = (counts / counts.sum()).reshape((-1,) + (1,) * eps[0]["mean"].ndim)
        means = np.stack([s["mean"] for s in eps])
        mean = (weights * means).sum(axis=0)
        variance = (weights * (np.stack([s["std"] for s in eps]) ** 2 + (means - mean) ** 2)).sum(
            axis=0
        )
        agg = {
            "min": np.min([s["min"] for s in eps], axis=0),
            "max": np.max([s["max"] for s in eps], axis=0),
            "mean": mean,
            "std": np.sqrt(variance),
            "count": np.array([int(counts.sum())]),
        }
        for q in eps[0]:
            if q.startswith("q"):
                agg[q] = (weights * np.stack([s[q] for s in eps])).sum(axis=0)
        out[key] = agg
    return out


def _serialize(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def _episode_row(
    ep_index: int,
    episode: _Episode,
    task: str,
    done: int,
    video_start: dict[str, int],
    fps: int,
    stats: dict[str, dict[str, np.ndarray]],
    layout: EpisodeLayout,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "episode_index": ep_index,
        "tasks": [task],
        "length": episode.length,
        "data/chunk_index": 0,
        "data/file_index": 0,
        "dataset_from_index": done - episode.length,
        "dataset_to_index": done,
    }
    for cam, start in video_start.items():
        key = _video_key(cam)
        row[f"videos/{key}/chunk_index"] = 0
        row[f"videos/{key}/file_index"] = 0
        row[f"videos/{key}/from_timestamp"] = start / fps
        row[f"videos/{key}/to_timestamp"] = (start + episode.length) / fps
    row["meta/episodes/chunk_index"] = 0
    row["meta/episodes/file_index"] = 0
    for key, feature_stats in stats.items():
        for name, value in feature_stats.items():
            row[f"stats/{key}/{name}"] = np.asarray(value).tolist()
    row["teleop/episode_id"] = layout.episode_id
    row["teleop/task_name"] = layout.task
    return row


# -- video -----------------------------------------------------------------------------------


def _video_key(camera: str) -> str:
    return f"observation.images.{camera}"


class _Video:
    """One camera's mp4: frames of every episode back to back, frame k at pts k/fps."""

    def __init__(self, root: Path, camera: str, fps: int, codec: str, crf: int):
        self.path = root / VIDEO_PATH.format(
            video_key=_video_key(camera), chunk_index=0, file_index=0
        )
        self.camera = camera
        self.fps = fps
        self.codec = codec
        self.crf = crf
        self.frames = 0
        self.shape: tuple[int, ...] | None = None
        self.container: Any = None
        self.stream: Any = None

    def write(self, rgb: np.ndarray, layout: EpisodeLayout) -> None:
        if self.container is None:
            self._open(rgb.shape, layout)
        elif self.shape is not None and rgb.shape != self.shape:
            raise ExportError(
                f"{layout.path}: camera {self.camera} frames are {rgb.shape[1]}x{rgb.shape[0]}, "
                f"earlier episodes' {self.shape[1]}x{self.shape[0]}; export them separately"
            )
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        with scheduling_kept():  # SVT-AV1 makes its caller SCHED_FIFO (rigs/realtime.py)
            self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def _open(self, shape: tuple[int, ...], layout: EpisodeLayout) -> None:
        height, width = shape[:2]
        if height % 2 or width % 2:
            raise ExportError(
                f"{layout.path}: camera {self.camera} is {width}x{height}; yuv420p video needs "
                "even sizes"
            )
        # LeRobot's encoder settings: a keyframe every 2 frames so random access decodes at
        # most one extra frame; SVT's fastest preset.
        options = {"g": "2", "crf": str(self.crf)}
        if self.codec == "libsvtav1":
            options["preset"] = "12"
            os.environ.setdefault("SVT_LOG", "1")  # SVT prints its banner to stderr otherwise
        self.path.parent.mkdir(parents=True)
        self.container = av.open(str(self.path), "w")
        self.stream = self.container.add_stream(self.codec, rate=self.fps, options=options)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.shape = shape

    @property
    def feature(self) -> dict[str, Any]:
        assert self.shape is not None and self.stream is not None
        return {
            "dtype": "video",
            "shape": list(self.shape),
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": self.shape[0],
                "video.width": self.shape[1],
                "video.codec": self.stream.codec.canonical_name,
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": self.fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }

    def close(self) -> None:
        if self.container is not None:
            with scheduling_kept():
                self.container.mux(self.stream.encode(None))
                self.container.close()


# -- metadata --------------------------------------------------------------------------------


def _write_meta(
    root: Path,
    first: EpisodeLayout,
    fps: int,
    videos: dict[str, _Video],
    task_index: dict[str, int],
    episode_rows: list[dict[str, Any]],
    frames: int,
) -> None:
    names = list(first.joint_names)
    features: dict[str, Any] = {
        key: {"dtype": "float32", "shape": [len(names)], "names": names} for key in _VECTORS
    }
    for cam, video in videos.items():
        features[_video_key(cam)] = video.feature
    for key, dtype in _SCALARS.items():
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": first.rig_id or None,
        "total_episodes": len(episode_rows),
        "total_frames": frames,
        "total_tasks": len(task_index),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if videos else None,
        "features": features,
    }
    _write_json(root / "meta/info.json", info)
    _write_tasks(root / "meta/tasks.parquet", task_index)
    path = root / EPISODES_PATH
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), path, compression="snappy")


def _write_tasks(path: Path, task_index: dict[str, int]) -> None:
    """tasks.parquet as LeRobot reads it with pandas: the task string is the index."""
    index_field = "__index_level_0__"
    pandas_meta = {
        "index_columns": [index_field],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": index_field,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    table = pa.table(
        {
            "task_index": pa.array(list(task_index.values()), pa.int64()),
            index_field: pa.array(list(task_index), pa.string()),
        }
    ).replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    pq.write_table(table, path)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
