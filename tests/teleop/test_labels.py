"""QA labels: the append-only labels.jsonl, as reviewers (and their tools) use it.

Label events only need the episode file to exist, so these tests label empty stand-in files
in a session folder; the catalog tests use real recordings."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from teleop import __version__
from teleop.cli import main
from teleop.labels import (
    DEFAULT_FAILURE_REASONS,
    LabelError,
    append_label,
    disagreements,
    failure_reasons,
    read_labels,
)

SESSION = "20260101-120000_sim-bimanual_op7"
TASKS = (
    '[[tasks]]\nname = "pick_place"\ntarget_episodes = 5\nepisode_s = 20\n'
    'failure_reasons = ["dropped cube", "missed bowl"]\n'
    '[[tasks]]\nname = "fold_towel"\ntarget_episodes = 5\nepisode_s = 20\n'
)
WRITES_PER_PROCESS = 200


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A data root with one pick_place session of three (stand-in) episode files."""
    session_dir = tmp_path / SESSION
    session_dir.mkdir()
    files = [f"episode_{i:04d}.mcap" for i in (1, 2, 3)]
    manifest = {
        "session_id": SESSION,
        "task": "pick_place",
        "episodes": [{"index": i, "file": f, "status": "kept"} for i, f in enumerate(files, 1)],
    }
    (session_dir / "session.json").write_text(json.dumps(manifest))
    for f in files:
        (session_dir / f).write_bytes(b"")
    (tmp_path / "tasks.toml").write_text(TASKS)
    return tmp_path


def _write_many(session_dir: str, reviewer: str, label: str, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    for i in range(WRITES_PER_PROCESS):
        append_label(
            Path(session_dir),
            episode="episode_0001.mcap",
            reviewer=reviewer,
            label=label,
            notes=f"{reviewer} #{i}",
        )


def test_two_processes_labelling_at_once_lose_nothing(root: Path):
    session_dir = root / SESSION
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    writers = [
        ctx.Process(target=_write_many, args=(str(session_dir), reviewer, label, start))
        for reviewer, label in (("qa1", "success"), ("qa2", "failure"))
    ]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0

    lines = (session_dir / "labels.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2 * WRITES_PER_PROCESS + 1
    log = read_labels(session_dir)
    assert log.problems == ()
    assert len({e.event_id for e in log.events}) == 2 * WRITES_PER_PROCESS
    for reviewer in ("qa1", "qa2"):
        notes = [e.notes for e in log.events if e.reviewer == reviewer]
        assert notes == [f"{reviewer} #{i}" for i in range(WRITES_PER_PROCESS)]
    # Each event's "previous" is exactly the event before it in the file: read under the lock.
    for before, event in zip(log.events, log.events[1:], strict=False):
        assert (event.previous_label, event.previous_reviewer) == (before.label, before.reviewer)


def test_malformed_lines_are_reported_with_their_numbers_and_the_rest_loads(root: Path):
    session_dir = root / SESSION
    append_label(session_dir, episode="episode_0001.mcap", reviewer="qa1", label="success")
    path = session_dir / "labels.jsonl"
    with path.open("a") as f:
        f.write('{"event_id": "x", "label": "succ')  # cut short by a crash: no newline
    # The next append starts on a line of its own instead of gluing onto the broken one.
    append_label(session_dir, episode="episode_0002.mcap", reviewer="qa1", label="unsure")
    with path.open("a") as f:
        f.write("\n")  # blank lines are not problems
        good = json.loads(path.read_text().splitlines()[0])
        f.write(json.dumps(good | {"label": "maybe", "event_id": "y"}) + "\n")

    log = read_labels(session_dir)
    assert [(p.line, p.reason) for p in log.problems] == [
        (2, "not valid JSON (cut short?)"),
        (5, "label: Input should be 'success', 'failure' or 'unsure'"),
    ]
    assert "labels.jsonl:2:" in str(log.problems[0])
    assert [(e.episode, e.label) for e in log.events] == [
        ("episode_0001.mcap", "success"),
        ("episode_0002.mcap", "unsure"),
    ]


def test_previous_label_is_the_episodes_latest_by_anyone(root: Path):
    session_dir = root / SESSION

    def label(episode: int, reviewer: str, lab: str, **kw):
        return append_label(
            session_dir, episode=f"episode_{episode:04d}.mcap", reviewer=reviewer, label=lab, **kw
        )

    first = label(1, "qa1", "success")
    assert (first.previous_label, first.previous_reviewer) == (None, None)
    assert first.app_version == __version__ and first.episode_id == f"{SESSION}/episode_0001"
    label(2, "qa1", "unsure")  # another episode does not count
    second = label(1, "qa2", "failure", failure_reason="dropped cube")
    assert (second.previous_label, second.previous_reviewer) == ("success", "qa1")
    third = label(1, "qa1", "unsure")
    assert (third.previous_label, third.previous_reviewer) == ("failure", "qa2")
    assert [e.label for e in read_labels(session_dir).for_episode("episode_0001.mcap")] == [
        "success",
        "failure",
        "unsure",
    ]


def test_disagreements_list_episodes_whose_reviewers_differ(root: Path):
    session_dir = root / SESSION
    for episode, reviewer, lab in (
        (1, "qa1", "success"),
        (1, "qa2", "failure"),  # differ: listed
        (2, "qa1", "success"),
        (2, "qa2", "success"),  # agree: not listed
        (3, "qa1", "failure"),
        (3, "qa1", "success"),  # one reviewer changing their mind: not listed
    ):
        append_label(
            session_dir, episode=f"episode_{episode:04d}.mcap", reviewer=reviewer, label=lab
        )
    (found,) = disagreements([session_dir])
    assert (found.session_id, found.episode) == (SESSION, "episode_0001")
    assert found.labels == {"qa1": "success", "qa2": "failure"}
    # qa1 comes round to qa2's view: no longer a disagreement.
    append_label(session_dir, episode="episode_0001.mcap", reviewer="qa1", label="failure")
    assert disagreements([session_dir]) == []


def test_failure_reason_outside_the_tasks_list_is_refused(root: Path):
    session_dir = root / SESSION
    assert failure_reasons(root, "pick_place") == ["dropped cube", "missed bowl"]
    assert failure_reasons(root, "fold_towel") == list(DEFAULT_FAILURE_REASONS)
    allowed = failure_reasons(root, "pick_place")
    with pytest.raises(LabelError, match="'collision' is not in this task's list"):
        append_label(
            session_dir,
            episode="episode_0001.mcap",
            reviewer="qa1",
            label="failure",
            failure_reason="collision",
            allowed_reasons=allowed,
        )
    with pytest.raises(LabelError, match="goes only with label failure"):
        append_label(
            session_dir,
            episode="episode_0001.mcap",
            reviewer="qa1",
            label="success",
            failure_reason="dropped cube",
        )
    assert not (session_dir / "labels.jsonl").exists()
    event = append_label(
        session_dir,
        episode="episode_0001.mcap",
        reviewer="qa1",
        label="failure",
        failure_reason="missed bowl",
        allowed_reasons=allowed,
    )
    assert event.failure_reason == "missed bowl"


# -- the CLI ----------------------------------------------------------------------------------


def teleop(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_label_history_and_disagreements(root: Path, capsys):
    ep1 = f"{SESSION}/episode_0001"
    data = ("--data-dir", str(root))
    code, out, _ = teleop(
        capsys,
        "label", ep1, "--label", "failure", "--reason", "dropped cube", "--reviewer", "qa1",
        "--notes", "slipped at lift", "--tag", "slip", "--tag", "night", "--mark", "grasp=1.25",
        *data,
    )  # fmt: skip
    assert code == 0 and out.strip() == f"{ep1}: failure by qa1"
    # An episode file path works as well as an id.
    code, out, _ = teleop(
        capsys,
        "label", str(root / SESSION / "episode_0001.mcap"), "--label", "success",
        "--reviewer", "qa2", *data,
    )  # fmt: skip
    assert code == 0 and out.strip() == f"{ep1}: success by qa2 (was failure by qa1)"

    code, out, err = teleop(
        capsys,
        "label", ep1, "--label", "failure", "--reason", "collision", "--reviewer", "qa2", *data,
    )  # fmt: skip
    assert code == 2 and "teleop: error: failure reason 'collision'" in err
    assert "dropped cube, missed bowl" in err

    code, out, err = teleop(capsys, "label", f"{SESSION}/episode_0009", "--label", "success",
                            "--reviewer", "qa1", *data)  # fmt: skip
    assert code == 2 and "no such episode" in err

    code, out, _ = teleop(capsys, "labels", "history", ep1, *data)
    lines = out.strip().splitlines()
    assert code == 0 and lines[-1] == "2 label events"
    assert "qa1" in lines[0] and "failure" in lines[0]
    assert "reason=dropped cube" in lines[0] and "tags=slip,night" in lines[0]
    assert "marks=grasp@1.25s" in lines[0] and "notes='slipped at lift'" in lines[0]
    assert "qa2" in lines[1] and "success (was failure)" in lines[1]
    code, out, _ = teleop(capsys, "labels", "history", ep1, "--json", *data)
    events = json.loads(out)
    assert [e["marks"] for e in events] == [[{"name": "grasp", "t_s": 1.25}], []]

    code, out, _ = teleop(capsys, "labels", "disagreements", *data)
    assert code == 0
    assert out.strip().splitlines() == [
        f"{ep1}  qa1=failure, qa2=success",
        "1 episodes with disagreeing labels",
    ]
    code, out, _ = teleop(capsys, "labels", "disagreements", "--json", *data)
    assert json.loads(out) == [
        {
            "session_id": SESSION,
            "episode": "episode_0001",
            "labels": {"qa1": "failure", "qa2": "success"},
        }
    ]


def test_cli_history_warns_about_a_malformed_line(root: Path, capsys):
    ep1 = f"{SESSION}/episode_0001"
    append_label(root / SESSION, episode="episode_0001.mcap", reviewer="qa1", label="success")
    with (root / SESSION / "labels.jsonl").open("a") as f:
        f.write("not json\n")
    code, out, err = teleop(capsys, "labels", "history", ep1, "--data-dir", str(root))
    assert code == 0 and out.strip().splitlines()[-1] == "1 label events"
    assert "teleop: warning:" in err and "labels.jsonl:2: not valid JSON" in err


def test_cli_label_by_file_uses_that_data_roots_task_reasons(root: Path, capsys, monkeypatch):
    # The file's own data root decides the reasons, not $TELEOP_DATA_DIR or ./sessions.
    monkeypatch.setenv("TELEOP_DATA_DIR", str(root / "elsewhere"))
    episode = root / SESSION / "episode_0002.mcap"
    code, out, err = teleop(
        capsys, "label", str(episode), "--label", "failure", "--reason", "missed bowl",
        "--reviewer", "qa1",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.strip() == f"{SESSION}/episode_0002: failure by qa1"
