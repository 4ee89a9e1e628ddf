"""Training exports (LeRobot v3.0, ACT/ALOHA HDF5) hold what was recorded, or nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from teleop.episode.reader import summarize
from teleop.export.atomic import ExportError
from teleop.export.hdf5_aloha import export_hdf5_aloha
from teleop.export.lerobot import export_lerobot

from .training_reference import changed_fraction, read_cycles, read_frames

FPS = 15
PICK_PLACE = "Pick the cube, place it in the bowl"


@pytest.fixture(scope="module")
def data_root(recorded_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded sessions plus a tasks.toml describing pick_place (not fold_towel)."""
    root = tmp_path_factory.mktemp("training") / "data"
    shutil.copytree(recorded_root, root)
    (root / "tasks.toml").write_text(
        f'[[tasks]]\nname = "pick_place"\ndescription = "{PICK_PLACE}"\n'
        "target_episodes = 5\nepisode_s = 3\n"
    )
    return root


@pytest.fixture(scope="module")
def episodes(data_root: Path) -> list[Path]:
    """pick_place episode 1 (3 s), then fold_towel episode 1 (2 s)."""
    return [
        sorted(data_root.glob("*_op7/episode_0001.mcap"))[0],
        sorted(data_root.glob("*_op9/episode_0001.mcap"))[0],
    ]


@pytest.fixture(scope="module")
def lerobot_dir(episodes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "dataset"
    result = export_lerobot(episodes, out, fps=FPS)
    assert result.episodes == 2 and result.tasks == 2
    return out


def _grid_cycles(path: Path, rows: int) -> tuple[np.ndarray, object]:
    """The grid times of an episode's LeRobot rows and its reference cycles."""
    cycles = read_cycles(path)
    times = cycles.stamp_ns[0] + np.round(np.arange(rows) * 1e9 / FPS).astype(np.int64)
    return times, cycles


def test_lerobot_dataset_holds_the_recorded_joints_and_tasks(
    lerobot_dir: Path, episodes: list[Path]
) -> None:
    info = json.loads((lerobot_dir / "meta/info.json").read_text())
    data = pq.read_table(lerobot_dir / "data/chunk-000/file-000.parquet")
    eps = pq.read_table(lerobot_dir / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    tasks = pq.read_table(lerobot_dir / "meta/tasks.parquet").to_pylist()

    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS
    assert info["total_episodes"] == 2 and info["total_frames"] == data.num_rows
    state = info["features"]["observation.state"]
    assert state["shape"] == [14] and state["names"][0] == "left_follower.waist"
    assert state["names"][7] == "right_follower.waist"
    assert info["features"]["observation.images.overhead"]["dtype"] == "video"
    # tasks.toml describes pick_place; fold_towel has no entry and keeps its name.
    assert [e["tasks"] for e in eps] == [[PICK_PLACE], ["fold_towel"]]
    assert {t["__index_level_0__"]: t["task_index"] for t in tasks} == {
        PICK_PLACE: 0,
        "fold_towel": 1,
    }

    columns = {k: data.column(k).to_pylist() for k in data.column_names}
    for ep, path in zip(eps, episodes, strict=True):
        lo, hi = ep["dataset_from_index"], ep["dataset_to_index"]
        assert ep["length"] == hi - lo and columns["index"][lo:hi] == list(range(lo, hi))
        assert set(columns["episode_index"][lo:hi]) == {ep["episode_index"]}
        assert columns["frame_index"][lo:hi] == list(range(hi - lo))
        times, cycles = _grid_cycles(path, hi - lo)
        # A 3 s / 2 s recording at 15 fps: one row per 1/15 s, nothing lost or invented.
        assert abs((hi - lo) - (cycles.stamp_ns[-1] - cycles.stamp_ns[0]) * FPS / 1e9) <= 1
        expected = [cycles.nearest(t) for t in times]
        np.testing.assert_array_equal(
            np.array(columns["observation.state"][lo:hi], np.float32),
            cycles.position[expected].astype(np.float32),
        )
        np.testing.assert_array_equal(
            np.array(columns["action"][lo:hi], np.float32),
            cycles.command[expected].astype(np.float32),
        )


def test_lerobot_videos_hold_the_frames_nearest_each_row(
    lerobot_dir: Path, episodes: list[Path]
) -> None:
    rows = pq.read_metadata(lerobot_dir / "data/chunk-000/file-000.parquet").num_rows
    eps = pq.read_table(lerobot_dir / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for cam in ("overhead", "left_wrist", "low", "right_wrist"):
        video = lerobot_dir / f"videos/observation.images.{cam}/chunk-000/file-000.mp4"
        with av.open(str(video)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(decoded) == rows, cam
        if cam not in ("overhead", "left_wrist"):
            continue
        # A row in the middle of the second episode: its frame sits at from_timestamp + t.
        ep, path = eps[1], episodes[1]
        start = round(ep[f"videos/observation.images.{cam}/from_timestamp"] * FPS)
        assert start == ep["dataset_from_index"]
        times, _ = _grid_cycles(path, ep["length"])
        frames = read_frames(path, cam)
        k = ep["length"] // 2
        right = changed_fraction(decoded[start + k], frames.expected_rgb(int(times[k])))
        wrong = changed_fraction(
            decoded[start + k], frames.nearest_rgb(int(times[k]) - 500_000_000)
        )
        # Against the frame 0.5 s earlier, the arms' motion shows (measured: 1-10 %).
        assert right < 0.001 and wrong > 0.002, (cam, right, wrong)


@pytest.fixture(scope="module")
def hdf5_file(episodes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hdf5") / "aloha"
    result = export_hdf5_aloha(episodes[1:], out)
    assert result.files == (out / "episode_0.hdf5",)
    return result.files[0]


def test_hdf5_holds_every_control_cycle_and_the_nearest_frames(
    hdf5_file: Path, episodes: list[Path]
) -> None:
    path = episodes[1]
    cycles = read_cycles(path)
    summary = summarize(path)
    with h5py.File(hdf5_file) as f:
        assert f.attrs["sim"] == False  # noqa: E712 - numpy bool
        assert f.attrs["episode_id"] == summary.metadata["provenance"]["episode_id"]
        assert list(f.attrs["joint_names"])[0] == "left_follower.waist"
        np.testing.assert_array_equal(f["observations/qpos"][:], cycles.position)
        np.testing.assert_array_equal(f["observations/qvel"][:], cycles.velocity)
        np.testing.assert_array_equal(f["observations/effort"][:], cycles.effort)
        np.testing.assert_array_equal(f["action"][:], cycles.command)
        for cam in ("overhead", "left_wrist"):
            images = f[f"observations/images/{cam}"]
            assert images.shape[0] == len(cycles.stamp_ns) and images.chunks[0] == 1
            frames = read_frames(path, cam)
            for i, t in enumerate(cycles.stamp_ns):
                np.testing.assert_array_equal(images[i], frames.expected_rgb(int(t)))
            # Rows with no frame within half a period are counted, not hidden.
            gaps = [np.min(np.abs(frames.stamp_ns - t)) for t in cycles.stamp_ns]
            stale = sum(gap > frames.half_period_ns for gap in gaps)
            assert json.loads(f.attrs["stale_frames"])[cam] == stale


def _raise_at(n: int) -> Callable[[int, int, str], None]:
    def progress(done: int, total: int, what: str) -> None:
        if done == n:
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("exporter", ["lerobot", "hdf5"])
def test_interrupted_export_leaves_nothing_under_the_final_name(
    exporter: str, episodes: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "export"
    with pytest.raises(KeyboardInterrupt):
        if exporter == "lerobot":
            export_lerobot(episodes, out, fps=FPS, progress=_raise_at(20))
        else:
            export_hdf5_aloha(episodes, out, progress=_raise_at(20))
    assert list(tmp_path.iterdir()) == []


def test_unreadable_episode_is_named_and_nothing_is_written(
    episodes: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "episode_0007.mcap"
    data = episodes[1].read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    out = tmp_path / "export"
    with pytest.raises(ExportError, match=re.escape(str(broken))):
        export_hdf5_aloha([episodes[1], broken], out)
    with pytest.raises(ExportError, match="no episodes"):
        export_lerobot([], out, fps=FPS)
    assert not out.exists()


def test_a_lerobot_export_leaves_the_process_under_the_normal_scheduler(lerobot_dir: Path) -> None:
    # SVT-AV1 makes the thread that feeds it SCHED_FIFO (as root); every process started from
    # it afterwards (a control loop, a virtual rig, a renderer) would inherit that.
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
