"""Shared fixtures: one calibration of the virtual rig for every test that records."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from calibration.store import CALIBRATION_DIR
from rigs.dynamixel.bus import BusError
from teleop.calibrating import run_calibrate


@pytest.fixture(scope="session")
def sim_calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding calibration records of every arm and camera of sim-bimanual,
    made by the real procedure on the virtual rig (its own hands do the moves)."""
    root = tmp_path_factory.mktemp("calibrated")
    run_calibrate(
        "sim-bimanual",
        all_targets=True,
        operator="op-test",
        data_dir=str(root),
    )
    return root


@pytest.fixture()
def calibrated_root(sim_calibration: Path) -> Callable[[Path], Path]:
    """Copy the calibration records into a data root (made if needed) and return it."""

    def make(data_root: Path) -> Path:
        shutil.copytree(
            sim_calibration / CALIBRATION_DIR, data_root / CALIBRATION_DIR, dirs_exist_ok=True
        )
        return data_root

    return make


@pytest.fixture(scope="session")
def recorded_root(tmp_path_factory: pytest.TempPathFactory, sim_calibration: Path) -> Path:
    """A data root with two recorded sessions on the virtual rig, shared by every test that
    only reads recordings (replay, catalog, labels, exports). Do not modify it: copy it
    (``shutil.copytree``) first.

    - ``op7`` / ``pick_place``: 2 episodes of 3 s at 50 Hz;
    - ``op9`` / ``fold_towel``: 1 episode of 2 s at 50 Hz.
    """
    import contextlib

    from teleop.recording.run import run_record

    root = tmp_path_factory.mktemp("recorded")
    shutil.copytree(sim_calibration / CALIBRATION_DIR, root / CALIBRATION_DIR)
    for operator, task, episodes, seconds in (
        ("op7", "pick_place", 2, 3.0),
        ("op9", "fold_towel", 1, 2.0),
    ):
        # These recordings are material for readers, not the test of recording (that is
        # tests/teleop/test_record_end_to_end.py and test_faults.py): a virtual bus that
        # stalls on a loaded machine gets one more try rather than failing 50 tests.
        for attempt in (1, 2):
            before = set(root.iterdir())
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    run_record(
                        rig="sim-bimanual",
                        operator=operator,
                        task=task,
                        episodes=episodes,
                        seconds=seconds,
                        data_dir=str(root),
                    )
                break
            except BusError:
                for leftover in set(root.iterdir()) - before:
                    shutil.rmtree(leftover)
                if attempt == 2:
                    raise
    return root


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount a tmpfs of the given size (``"20m"``; ``read_only=True`` for a read-only one)
    under ``tmp_path``: a real full or read-only disk. Skips where mounting is not allowed."""
    mounts: list[Path] = []

    def mount(size: str, *, read_only: bool = False) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(where)
        return where

    try:
        yield mount
    finally:
        for where in mounts:
            subprocess.run(["umount", "-l", str(where)], check=False)
