"""Damaged episode files: every chunk's CRC is checked; nothing damaged reaches a robot, the
catalog or an export; an export never writes over recordings; only regular files are read."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from rigs.spec import load_rig
from teleop import catalog
from teleop.cli import main
from teleop.control.replay import ReplayError, run_replay
from teleop.episode.reader import EpisodeReadError, iter_messages, open_checked
from teleop.episode.verify import verify_episode
from teleop.rig_runtime import RigRuntime


@pytest.fixture()
def root(recorded_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(recorded_root, copy)
    return copy


def _episode(root: Path, task: str = "fold_towel") -> Path:
    (row,) = catalog.query(root, f"task = '{task}' AND episode_index = 1")
    return Path(row["path"])


def flip_in_chunk(path: Path, k: int = 1) -> None:
    """Flip one byte in the middle of chunk ``k``'s compressed data, as a bad sector would."""
    f, _, summary = open_checked(path)
    f.close()
    chunk = sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset)[k - 1]
    data = bytearray(path.read_bytes())
    data[chunk.chunk_start_offset + chunk.chunk_length // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "catalog.sqlite"
    }


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("teleop: error: "), err
    return err[0]


def test_an_intact_episode_verifies(root: Path):
    assert verify_episode(_episode(root)) is None


def test_a_flipped_bit_is_found_and_named_with_its_chunk_and_time(root: Path):
    path = _episode(root)
    flip_in_chunk(path, 2)
    damage = verify_episode(path)
    assert damage is not None and damage.where.startswith("chunk 2 of ")
    assert "s into the recording" in damage.where
    with pytest.raises(EpisodeReadError):
        for _ in iter_messages(path):
            pass


def test_replay_refuses_a_damaged_file_before_any_goal_is_written(root: Path):
    path = _episode(root, "pick_place")
    flip_in_chunk(path, 2)
    with RigRuntime(load_rig("sim-bimanual"), with_cameras=False) as runtime:
        virtual = runtime.virtual
        followers = ("left_follower", "right_follower")
        goals = {
            a: {i: s.goal_ticks for i, s in virtual.servo_states(a).items()} for a in followers
        }
        torque = {a: virtual.torque_writes(a) for a in followers}
        with pytest.raises(ReplayError, match=r"damaged, chunk 2 of .*nothing was sent"):
            run_replay(rig="sim-bimanual", file=path, data_dir=str(root), yes=True, runtime=runtime)
        # The virtual servos' own state: no Goal Position, no torque change reached them.
        for arm in followers:
            assert {i: s.goal_ticks for i, s in virtual.servo_states(arm).items()} == goals[arm]
            assert virtual.torque_writes(arm) == torque[arm]


def test_teleop_replay_yes_on_a_damaged_file_exits_2_in_one_line(root: Path, capsys):
    path = _episode(root, "pick_place")
    flip_in_chunk(path, 1)
    assert (
        main(["replay", "--rig", "sim-bimanual", str(path), "--yes", "--data-dir", str(root)]) == 2
    )
    line = _one_error_line(capsys)
    assert "damaged, chunk 1 of" in line and "nothing was sent to the robot" in line


def test_the_catalog_lists_a_damaged_file_as_unreadable(root: Path):
    path = _episode(root)
    flip_in_chunk(path, 1)
    (row,) = catalog.query(root, "task = 'fold_towel'")
    assert row["readable"] == 0 and "chunk 1 of" in row["read_error"]
    assert any("chunk 1 of" in p for p in catalog.problems(root))


def test_a_kept_episode_whose_file_is_gone_is_a_catalog_problem(root: Path):
    path = _episode(root)
    path.unlink()
    assert catalog.query(root, "task = 'fold_towel'") == []  # refreshed: not listed as fine
    problems = catalog.problems(root)
    assert any(path.name in p and "the file is missing" in p for p in problems), problems


@pytest.mark.parametrize("kind", ["bundle", "hdf5", "lerobot"])
def test_exports_refuse_a_damaged_episode_and_write_nothing(
    root: Path, tmp_path: Path, kind, capsys
):
    path = _episode(root)
    flip_in_chunk(path, 1)
    out = tmp_path / "out" / kind
    out.parent.mkdir()
    # The catalog would say "readable = 0"; exports check the bytes themselves all the same.
    argv = [
        "export",
        kind,
        "--where",
        "task = 'fold_towel'",
        "--out",
        str(out),
        "--data-dir",
        str(root),
    ]
    argv += {"lerobot": ["--fps", "15"], "hdf5": ["--layout", "aloha"], "bundle": []}[kind]
    assert main(argv) == 2
    assert "damaged" in _one_error_line(capsys)
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("where", ["episode", "session", "root", "inside"])
def test_an_export_never_writes_over_recordings(root: Path, where: str, capsys):
    path = _episode(root)
    out = {
        "episode": path,
        "session": path.parent,
        "root": root,
        "inside": root / "exports" / "x.tar",
    }[where]
    (root / "exports").mkdir()
    before = _hashes(root)
    argv = ["export", "bundle", "--where", "task = 'fold_towel'", "--out", str(out), "--overwrite",
            "--data-dir", str(root)]  # fmt: skip
    assert main(argv) == 2
    assert "an export never" in _one_error_line(capsys)
    assert _hashes(root) == before


def test_inspect_refuses_a_fifo_at_once(tmp_path: Path, capsys):
    fifo = tmp_path / "x.mcap"
    os.mkfifo(fifo)
    assert main(["inspect", str(fifo)]) == 2  # returns, never blocks on the FIFO
    assert "is not a regular file" in _one_error_line(capsys)
