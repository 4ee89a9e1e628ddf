"""The QA reviewer's path on the Review screen, driven by keys as a reviewer would: label and
go on in two keys, a failure with its reason and a note, a re-label with history, a damaged
labels.jsonl line, and a time mark at a seeked position."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from teleop import __version__, catalog
from teleop.episode.recover import recover
from teleop.labels import append_label
from ui.review import ReviewView

# pick_place offers its own reasons: the screen must offer the task's list, not the defaults.
TASKS = (
    '[[tasks]]\nname = "pick_place"\ntarget_episodes = 5\nepisode_s = 3\n'
    'failure_reasons = ["dropped cube", "missed bowl", "knocked bowl"]\n'
)


@pytest.fixture()
def root(recorded_root: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(recorded_root, data)
    (data / "tasks.toml").write_text(TASKS)
    return data


@pytest.fixture()
def view(qtbot, root: Path) -> ReviewView:
    v = ReviewView(root, "rev-a")
    qtbot.addWidget(v)
    v.resize(1400, 850)
    v.show()
    v.activateWindow()
    qtbot.waitExposed(v)
    return v


def events(row: dict) -> list[dict]:
    path = Path(row["path"]).parent / "labels.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def key(qtbot, view: ReviewView, k: Qt.Key, mods=Qt.KeyboardModifier.NoModifier) -> None:
    """Press ``k`` where the keyboard is, then let the event loop run as it does between a
    person's key presses."""
    qtbot.keyClick(view.focusWidget() or view, k, mods)
    QApplication.processEvents()


def save(qtbot, view: ReviewView, mods=Qt.KeyboardModifier.NoModifier) -> None:
    with qtbot.waitSignal(view.labelled, timeout=10_000):
        key(qtbot, view, Qt.Key.Key_Return, mods)
    QApplication.processEvents()


def history_text(view: ReviewView) -> str:
    return view.history_view.toPlainText()


@pytest.mark.timeout(60)
def test_label_in_two_keys_failure_reason_and_relabel_history(qtbot, root, view):
    rows = catalog.query(root)
    assert len(rows) == 3
    view.open_episodes(rows, 0)
    assert view.position_label.text() == "1 of 3"

    # Enter without a label: refused on screen, nothing written.
    key(qtbot, view, Qt.Key.Key_Return)
    assert "Choose a label first" in view.error_label.text()
    assert not (Path(rows[0]["path"]).parent / "labels.jsonl").exists()

    # 1, Enter: success for episode 1, and the screen is on episode 2.
    key(qtbot, view, Qt.Key.Key_1)
    save(qtbot, view)
    (first,) = events(rows[0])
    assert (first["episode"], first["label"]) == (rows[0]["file"], "success")
    assert (first["reviewer"], first["app_version"]) == ("rev-a", __version__)
    assert view.index == 1 and view.position_label.text() == "2 of 3"
    assert view.title.text() == Path(rows[1]["file"]).stem

    # 2: failure; the reason list takes the keyboard and offers the task's reasons.
    key(qtbot, view, Qt.Key.Key_2)
    assert view.reason.isEnabled() and view.reason.hasFocus()
    assert [view.reason.itemData(i) for i in range(view.reason.count())] == [
        "dropped cube",
        "missed bowl",
        "knocked bowl",
    ]
    key(qtbot, view, Qt.Key.Key_2)  # a digit picks the reason, it does not relabel
    assert view.label == "failure" and view.reason.currentData() == "missed bowl"
    with qtbot.assertNotEmitted(view.back):  # Esc leaves the list, not the screen
        key(qtbot, view, Qt.Key.Key_Escape)
    assert view.focusWidget() is view
    # Typing in the notes types: n, p and digits neither navigate nor label.
    view.notes.setFocus()
    qtbot.keyClicks(view.notes, "gripper slipped n p 1")
    assert view.index == 1 and view.label == "failure"
    save(qtbot, view)
    second = events(rows[1])[-1]
    assert (second["label"], second["failure_reason"]) == ("failure", "missed bowl")
    assert second["notes"] == "gripper slipped n p 1"
    assert view.index == 2

    # Back to episode 1 without labelling (P twice), re-label it unsure and stay.
    key(qtbot, view, Qt.Key.Key_P)
    key(qtbot, view, Qt.Key.Key_P)
    assert view.index == 0
    assert "success by rev-a" in view.fields["label"].text()
    key(qtbot, view, Qt.Key.Key_3)
    save(qtbot, view, Qt.KeyboardModifier.ShiftModifier)
    assert view.index == 0
    history = history_text(view)
    assert re.findall(r"rev-a\s+(success|failure|unsure)", history) == ["success", "unsure"]
    assert "was success (rev-a)" in history
    assert "unsure by rev-a" in view.fields["label"].text()
    assert [e["label"] for e in events(rows[0]) if e["episode"] == rows[0]["file"]] == [
        "success",
        "unsure",
    ]

    # Esc goes back to the browser.
    with qtbot.waitSignal(view.back, timeout=2_000):
        key(qtbot, view, Qt.Key.Key_Escape)


@pytest.mark.timeout(60)
def test_malformed_label_line_is_reported_and_used_tags_are_offered(qtbot, root, view):
    rows = catalog.query(root, "task = 'pick_place'")
    session_dir = Path(rows[0]["path"]).parent
    episode = rows[0]["file"]
    append_label(session_dir, episode=episode, reviewer="rev-b", label="success", tags=["slippery"])
    with (session_dir / "labels.jsonl").open("a") as f:
        f.write('{"episode": "episode_0001.mcap", "label": "gr\n')  # cut short by a crash
    append_label(session_dir, episode=episode, reviewer="rev-c", label="failure")

    view.open_episodes(rows, 0)
    assert view.problems_label.isVisible()
    assert "labels.jsonl line 2:" in view.problems_label.text()
    assert re.findall(r"(rev-\w)\s+(success|failure)", history_text(view)) == [
        ("rev-b", "success"),
        ("rev-c", "failure"),
    ]

    # Tags used before are offered; Enter in the offer picks the tag, it does not save.
    view.tags.setFocus()
    qtbot.keyClicks(view.tags, "night, sl")
    popup = view._completer.popup()
    assert popup.isVisible()
    qtbot.keyClick(popup, Qt.Key.Key_Down)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert view.tags.text() == "night, slippery"
    assert view.error_label.isHidden()  # no "Choose a label first": nothing was saved


@pytest.mark.timeout(60)
def test_mark_at_seeked_position_is_saved_with_its_time(qtbot, root, view):
    rows = catalog.query(root, "task = 'pick_place'")
    view.open_episodes(rows, 1)
    view.replay.seek(1_500_000_000)
    qtbot.waitUntil(lambda: abs(view.replay.position_ns - 1_500_000_000) < 50_000_000)
    key(qtbot, view, Qt.Key.Key_M)
    view.mark_name.setEditText("lift")
    view.replay.seek(500_000_000)
    qtbot.waitUntil(lambda: abs(view.replay.position_ns - 500_000_000) < 50_000_000)
    key(qtbot, view, Qt.Key.Key_M)
    assert view.mark_list.count() == 2
    key(qtbot, view, Qt.Key.Key_1)
    save(qtbot, view, Qt.KeyboardModifier.ShiftModifier)
    event = events(rows[1])[-1]
    marks = [(m["name"], m["t_s"]) for m in event["marks"]]
    assert [name for name, _ in marks] == ["lift", "grasp"]
    assert [t for _, t in marks] == [pytest.approx(0.5, abs=0.05), pytest.approx(1.5, abs=0.05)]
    assert "marks: lift 0.50 s, grasp 1.50 s" in history_text(view)
    assert view.mark_list.count() == 0  # saved marks leave the unsaved list


@pytest.mark.timeout(60)
def test_playback_keys_and_esc_leaving_a_text_field(qtbot, root, view):
    rows = catalog.query(root, "task = 'pick_place'")
    view.open_episodes(rows, 0)
    player = view.replay.player
    view.replay.seek(1_000_000_000)
    key(qtbot, view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert view.replay.position_ns == 2_000_000_000
    key(qtbot, view, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    key(qtbot, view, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert view.replay.position_ns == 0  # clamped at the start
    key(qtbot, view, Qt.Key.Key_Right)  # one frame on (the player steps on its thread)
    qtbot.waitUntil(lambda: 0 < view.replay.position_ns < 100_000_000)
    key(qtbot, view, Qt.Key.Key_BracketRight)
    assert player.speed == 2.0
    key(qtbot, view, Qt.Key.Key_BracketLeft)
    key(qtbot, view, Qt.Key.Key_BracketLeft)
    assert player.speed == 0.5
    key(qtbot, view, Qt.Key.Key_Space)
    assert player.playing
    key(qtbot, view, Qt.Key.Key_Space)
    assert not player.playing

    # In the tags field Space, N and M type; Esc hands the keys back, a second Esc goes back.
    view.tags.setFocus()
    qtbot.keyClicks(view.tags, "no mark")
    assert view.tags.text() == "no mark" and view.index == 0 and view.mark_list.count() == 0
    assert not player.playing
    with qtbot.assertNotEmitted(view.back):
        key(qtbot, view, Qt.Key.Key_Escape)
    assert view.focusWidget() is view
    with qtbot.waitSignal(view.back, timeout=2_000):
        key(qtbot, view, Qt.Key.Key_Escape)


@pytest.mark.timeout(60)
def test_damaged_episode_shows_its_recovered_copy(qtbot, root, view, monkeypatch):
    rows = catalog.query(root, "task = 'pick_place'")
    damaged = Path(rows[1]["path"])
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) * 2 // 3])  # as a crash leaves it
    offered: list[Path] = []

    def recover_it(parent, path: Path) -> Path:  # the reviewer presses Recover
        offered.append(path)
        return recover(path).output

    monkeypatch.setattr("ui.review.open_with_recovery", recover_it)
    view.open_episodes(rows, 1)
    copy = damaged.with_name("episode_0002.recovered.mcap")
    assert offered == [damaged] and view.replay.path == copy
    assert f"recovered copy {copy.name}" in view.info_label.text()
    key(qtbot, view, Qt.Key.Key_3)
    save(qtbot, view, Qt.KeyboardModifier.ShiftModifier)
    assert events(rows[1])[-1]["episode"] == "episode_0002.mcap"


@pytest.mark.timeout(60)
def test_a_refused_label_shows_the_error_and_stays(qtbot, root, view):
    rows = catalog.query(root, "task = 'pick_place'")
    view.open_episodes(rows, 0)
    Path(rows[0]["path"]).unlink()  # gone since the catalog listed it
    key(qtbot, view, Qt.Key.Key_1)
    with qtbot.assertNotEmitted(view.labelled):
        key(qtbot, view, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not view.error_label.isHidden())
    assert "no such episode file" in view.error_label.text()
    assert view.index == 0 and view.label == "success"  # the choice is kept for a retry
