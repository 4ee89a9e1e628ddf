"""A label is refused, with nothing appended, when its marks are not finite times in the
episode or it names something that is not an episode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from teleop import catalog
from teleop.cli import main
from teleop.labels import labels_path


@pytest.fixture()
def root(recorded_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(recorded_root, copy)
    return copy


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("teleop: error: "), err
    return err[0]


@pytest.mark.parametrize(
    "mark", ["grasp=inf", "grasp=1e400", "grasp=nan", "grasp=-1", "=2", "grasp"]
)
def test_a_mark_that_is_not_a_finite_time_is_refused(root: Path, mark: str, capsys):
    (row,) = catalog.query(root, "task = 'fold_towel'")
    path = Path(row["path"])
    labels = labels_path(path.parent)
    before = labels.read_bytes() if labels.exists() else None
    code = main(["label", str(path), "--label", "success", "--reviewer", "qa", "--mark", mark,
                 "--data-dir", str(root)])  # fmt: skip
    assert code == 2
    assert f"--mark {mark!r}" in _one_error_line(capsys)
    assert (labels.read_bytes() if labels.exists() else None) == before


@pytest.mark.parametrize(
    "name", ["session", "labels", "calibration", "FILE:session.json", "FILE:labels.jsonl"]
)
def test_a_reference_that_is_not_an_episode_is_refused(root: Path, name: str, capsys):
    (row,) = catalog.query(root, "task = 'fold_towel'")
    session = row["session"]
    labels = labels_path(root / session)
    (root / session / "labels.jsonl").touch()
    before = labels.read_bytes()
    ref = str(root / session / name[5:]) if name.startswith("FILE:") else f"{session}/{name}"
    code = main(["label", ref, "--label", "success", "--reviewer", "qa",
                 "--data-dir", str(root)])  # fmt: skip
    assert code == 2
    assert "no such episode" in _one_error_line(capsys)
    assert labels.read_bytes() == before


def test_a_good_mark_is_kept(root: Path, capsys):
    (row,) = catalog.query(root, "task = 'fold_towel'")
    code = main(["label", row["path"], "--label", "success", "--reviewer", "qa", "--mark",
                 "grasp=1.25", "--data-dir", str(root)])  # fmt: skip
    assert code == 0
    assert main(["labels", "history", row["path"], "--data-dir", str(root)]) == 0
    assert "grasp@1.25s" in capsys.readouterr().out
