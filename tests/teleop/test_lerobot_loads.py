"""A LeRobot export loads in LeRobot's own ``LeRobotDataset`` and gives back the recording.

LeRobot (with torch) lives in a separate venv, made by ``tests/lerobot_venv.sh``; point
``TELEOP_LEROBOT_PYTHON`` at its python. Without it the test is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from teleop.export.lerobot import export_lerobot

from .training_reference import changed_fraction, read_cycles, read_frames

LEROBOT_PYTHON = os.environ.get("TELEOP_LEROBOT_PYTHON", "")
FPS = 15

# Runs in the LeRobot venv: load the dataset offline, read some items, save what they hold.
_LOAD = """
import json, sys
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root, out = sys.argv[1], sys.argv[2]
ds = LeRobotDataset(repo_id="local/teleop-export", root=root)
indices = [int(i) for i in sys.argv[3:]]
arrays, items = {}, []
for i in indices:
    item = ds[i]
    for key, value in item.items():
        if key.startswith("observation.images."):
            arrays[f"{i}/{key}"] = (value.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    items.append({
        "state": item["observation.state"].tolist(),
        "action": item["action"].tolist(),
        "episode_index": int(item["episode_index"]),
        "frame_index": int(item["frame_index"]),
        "task": item["task"],
    })
np.savez(out + ".npz", **arrays)
json.dump({"len": len(ds), "fps": ds.fps, "episodes": ds.num_episodes, "items": items},
          open(out + ".json", "w"))
"""


@pytest.mark.skipif(
    not LEROBOT_PYTHON,
    reason="TELEOP_LEROBOT_PYTHON is not set (make the venv with tests/lerobot_venv.sh)",
)
def test_export_loads_in_lerobot_dataset(recorded_root: Path, tmp_path: Path) -> None:
    episodes = [
        sorted(recorded_root.glob("*_op7/episode_0001.mcap"))[0],
        sorted(recorded_root.glob("*_op9/episode_0001.mcap"))[0],
    ]
    root = tmp_path / "dataset"
    result = export_lerobot(episodes, root, fps=FPS)
    table = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")
    first_of_second = table.column("dataset_from_index")[1].as_py()
    middle = first_of_second + (result.frames - first_of_second) // 2
    out = tmp_path / "items"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_LEROBOT_HOME": str(tmp_path / "hf")}
    run = subprocess.run(
        [LEROBOT_PYTHON, "-c", _LOAD, str(root), str(out), "0", str(middle)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    if run.returncode:
        sys.stderr.write(run.stderr[-4000:])
    assert run.returncode == 0, run.stderr.strip().splitlines()[-1:]

    loaded = json.loads(out.with_suffix(".json").read_text())
    images = np.load(out.with_suffix(".npz"))
    assert loaded["len"] == result.frames and loaded["fps"] == FPS and loaded["episodes"] == 2
    for index, item in zip((0, middle), loaded["items"], strict=True):
        path = episodes[item["episode_index"]]
        assert item["task"] == ("pick_place", "fold_towel")[item["episode_index"]]
        cycles = read_cycles(path)
        t_ns = int(cycles.stamp_ns[0] + round(item["frame_index"] * 1e9 / FPS))
        k = cycles.nearest(t_ns)
        np.testing.assert_array_equal(
            np.float32(item["state"]), cycles.position[k].astype(np.float32)
        )
        np.testing.assert_array_equal(
            np.float32(item["action"]), cycles.command[k].astype(np.float32)
        )
        for cam in result.cameras:
            decoded = images[f"{index}/observation.images.{cam}"]
            expected = read_frames(path, cam).expected_rgb(t_ns)
            assert decoded.shape == expected.shape
            assert changed_fraction(decoded, expected) < 0.001, (index, cam)
