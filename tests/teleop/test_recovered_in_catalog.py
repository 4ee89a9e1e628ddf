"""A damaged episode recovered with `teleop recover` takes its place in the session and the
catalog, and keeps its labels (they follow the episode, not one file of it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from teleop import catalog
from teleop.cli import main
from teleop.labels import append_label, read_labels


def test_recovered_copy_replaces_the_damaged_file_and_keeps_its_labels(
    recorded_root: Path, tmp_path: Path
):
    root = tmp_path / "data"
    shutil.copytree(recorded_root, root)
    (row,) = catalog.query(root, "task = 'fold_towel'")
    session_dir = root / row["session"]
    append_label(session_dir, episode=row["file"], reviewer="qa1", label="success")
    episode = session_dir / row["file"]
    data = episode.read_bytes()
    episode.write_bytes(data[: len(data) * 2 // 3])  # the footer and summary are gone

    (damaged,) = catalog.query(root, "task = 'fold_towel'")
    assert damaged["readable"] == 0 and "teleop recover" in damaged["read_error"]

    assert main(["recover", str(episode)]) == 0
    (recovered,) = catalog.query(root, "task = 'fold_towel'")
    assert recovered["readable"] == 1
    assert recovered["file"] == "episode_0001.recovered.mcap"
    assert recovered["status"] == "recovered" and "recovered" in recovered["flags"]
    assert recovered["label"] == "success" and recovered["episode_id"] == row["episode_id"]
    manifest = json.loads((session_dir / "session.json").read_text())
    (entry,) = manifest["episodes"]
    assert entry["recovered_from"] == "episode_0001.mcap"
    assert [e.label for e in read_labels(session_dir).for_episode(recovered["file"])] == ["success"]
