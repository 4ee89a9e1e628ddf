"""The catalog from the command line: ``teleop episodes --where`` over real recordings, a
clause that tries to write is refused, and ``teleop catalog rebuild`` recreates the index."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from teleop import catalog
from teleop.cli import main


@pytest.fixture()
def root(recorded_root: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(recorded_root, data)
    return data


def teleop(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def episode_ids(root: Path) -> list[str]:
    return [r["episode_id"] for r in catalog.query(root)]


def test_episodes_where_as_table_and_json_follow_new_labels(root: Path, capsys):
    data = ("--data-dir", str(root))
    all_ids = episode_ids(root)
    assert len(all_ids) == 3
    code, out, _ = teleop(capsys, "episodes", "--where", "operator = 'op7'", *data)
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1] == "2 episodes"
    assert lines[0].split() == [
        "episode_id",
        "date",
        "operator",
        "rig",
        "task",
        "duration_s",
        "flag_count",
        "label",
        "label_reviewer",
    ]
    assert [line.split()[0] for line in lines[1:-1]] == all_ids[:2]

    # A label given after the catalog was built shows in the next query.
    code, _, _ = teleop(
        capsys, "label", all_ids[1], "--label", "success", "--reviewer", "qa1", *data
    )
    assert code == 0
    where = "task = 'pick_place' AND label = 'success'"
    code, out, _ = teleop(capsys, "episodes", "--where", where, "--json", *data)
    (row,) = json.loads(out)
    assert code == 0
    assert (row["episode_id"], row["label"], row["label_reviewer"]) == (
        all_ids[1],
        "success",
        "qa1",
    )
    assert row["operator"] == "op7" and row["duration_s"] == pytest.approx(3.0, abs=0.2)
    assert Path(row["path"]).is_file()

    code, out, _ = teleop(capsys, "episodes", "--where", "labelled = 0", "--json", *data)
    assert [r["episode_id"] for r in json.loads(out)] == [all_ids[0], all_ids[2]]


@pytest.mark.parametrize(
    "where",
    [
        "1=1); DROP TABLE episodes; --",
        "1=1); UPDATE episodes SET label = 'success'; --",
        "load_extension('/tmp/nothing.so') IS NULL",  # a denied function
        "episode_id IN (SELECT name FROM pragma_table_info('episodes'))",
    ],
)
def test_a_where_clause_that_tries_more_than_reading_is_refused(root: Path, capsys, where: str):
    before = catalog.query(root)
    code, out, err = teleop(capsys, "episodes", "--where", where, "--data-dir", str(root))
    assert code == 2 and out == ""
    assert err.startswith("teleop: error: --where ") and len(err.strip().splitlines()) == 1
    assert catalog.query(root) == before
    with sqlite3.connect(catalog.catalog_path(root)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 3


def test_catalog_rebuild_recreates_a_deleted_catalog(root: Path, capsys):
    data = ("--data-dir", str(root))
    first = episode_ids(root)[0]
    assert teleop(capsys, "label", first, "--label", "failure", "--reviewer", "qa1", *data)[0] == 0
    before = catalog.query(root)
    history = catalog.label_history(root, first)
    for f in root.glob(f"{catalog.CATALOG_FILE}*"):  # the database and its WAL files
        f.unlink()

    code, out, _ = teleop(capsys, "catalog", "rebuild", *data)
    assert code == 0
    assert out.strip() == f"{catalog.catalog_path(root)}: 2 sessions, 3 episodes indexed"
    assert catalog.query(root, fresh=False) == before
    assert catalog.label_history(root, first) == history


def test_one_recording_in_two_session_folders_is_reported(recorded_root: Path, tmp_path: Path):
    root = tmp_path / "data"
    shutil.copytree(recorded_root, root)
    (row,) = catalog.query(root, "task = 'fold_towel'")
    shutil.copytree(root / row["session"], root / "copy-of-session")
    rows = catalog.query(root, "task = 'fold_towel'")
    assert len(rows) == 1  # listed once, under its own episode id
    (problem,) = [p for p in catalog.problems(root) if "same recording" in p]
    assert row["episode_id"] in problem and "copy-of-session" in problem
