"""The sessions browser: catalog rows, filters, sort, SQL errors inline, and opening Review."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from teleop.labels import append_label
from ui.app import ReviewerWindow, main
from ui.sessions import COLUMNS, SessionsView


@pytest.fixture()
def root(recorded_root: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    # The recordings only: an index left in the shared root must not stand in for them.
    shutil.copytree(recorded_root, data, ignore=shutil.ignore_patterns("catalog.sqlite*"))
    return data


def session_of(root: Path, task: str) -> Path:
    (path,) = [p.parent for p in root.glob("*/session.json") if task in p.read_text()]
    return path


def loaded(qtbot, root: Path) -> SessionsView:
    view = SessionsView(root)
    qtbot.addWidget(view)
    view.reload()
    qtbot.waitUntil(lambda: not view.loading, timeout=30_000)
    return view


def column(view: SessionsView, name: str) -> list[str]:
    c = COLUMNS.index(name)
    return [view.proxy.index(r, c).data() for r in range(view.proxy.rowCount())]


def test_filters_narrow_the_rows_and_any_column_sorts(qtbot, root):
    pick = session_of(root, "pick_place")
    append_label(pick, episode="episode_0001.mcap", reviewer="qa1", label="success")
    append_label(pick, episode="episode_0002.mcap", reviewer="qa1", label="success")
    append_label(pick, episode="episode_0002.mcap", reviewer="qa2", label="failure")
    view = loaded(qtbot, root)
    assert view.proxy.rowCount() == 3
    assert "3 of 3 episodes shown" in view.count.text()
    assert sorted(column(view, "label")) == [
        "failure (qa2) · 2 reviewers disagree",
        "success (qa1)",
        "unlabelled",
    ]

    view.task.setCurrentText("fold_towel")
    assert column(view, "task") == ["fold_towel"]
    view.task.setCurrentText("any")
    view.operator.setCurrentText("op7")
    assert column(view, "operator") == ["op7", "op7"]
    view.label.setCurrentText("disagreement")
    assert column(view, "label") == ["failure (qa2) · 2 reviewers disagree"]
    view.label.setCurrentText("unlabelled")
    assert view.proxy.rowCount() == 0  # op7's episodes are both labelled
    view.operator.setCurrentText("any")
    view.label.setCurrentText("success")
    assert column(view, "label") == ["success (qa1)"]
    view.label.setCurrentText("any")
    view.search.setText("FOLD")
    assert column(view, "task") == ["fold_towel"]
    view.search.clear()

    view.table.sortByColumn(COLUMNS.index("duration"), Qt.SortOrder.AscendingOrder)
    assert column(view, "task")[0] == "fold_towel"  # 2 s before the 3 s episodes
    view.table.sortByColumn(COLUMNS.index("duration"), Qt.SortOrder.DescendingOrder)
    assert column(view, "task")[-1] == "fold_towel"
    # Review steps through the rows as shown: filtered and sorted.
    assert [r["task"] for r in view.shown_rows()] == column(view, "task")


def test_sql_error_shows_inline_and_a_good_clause_clears_it(qtbot, root):
    view = loaded(qtbot, root)
    view.sql.setText("no_such_column = 1")
    view.reload()
    qtbot.waitUntil(lambda: not view.loading, timeout=30_000)
    assert not view.sql_error.isHidden()
    assert "no such column: no_such_column" in view.sql_error.text()
    assert "\n" not in view.sql_error.text()
    view.sql.setText("task = 'fold_towel'")
    view.reload()
    qtbot.waitUntil(lambda: not view.loading, timeout=30_000)
    assert view.sql_error.isHidden()
    assert column(view, "task") == ["fold_towel"]


def test_damaged_episode_explains_itself_and_enter_opens_it(qtbot, root):
    fold = session_of(root, "fold_towel")
    episode = fold / "episode_0001.mcap"
    episode.write_bytes(episode.read_bytes()[: episode.stat().st_size // 2])  # cut short
    (root / "broken").mkdir()
    (root / "broken" / "session.json").write_text("{not json")
    view = loaded(qtbot, root)
    assert view.problems.text() == "2 problems in the data root (hover)"
    assert "broken/session.json: unreadable session manifest" in view.problems.toolTip()
    view.task.setCurrentText("fold_towel")
    index = view.proxy.index(0, 0)
    assert "Damaged file" in index.data(Qt.ItemDataRole.ToolTipRole)
    assert column(view, "quality flags")[0].startswith("DAMAGED")
    view.table.setCurrentIndex(index)
    view.table.setFocus()
    with qtbot.waitSignal(view.review_requested) as opened:
        qtbot.keyClick(view.table, Qt.Key.Key_Return)
    rows, at = opened.args
    assert rows[at]["path"] == str(episode.resolve()) and rows[at]["readable"] == 0


def test_a_saved_label_updates_its_row(qtbot, root):
    view = loaded(qtbot, root)
    view.task.setCurrentText("fold_towel")
    assert column(view, "label") == ["unlabelled"]
    (row,) = view.shown_rows()
    append_label(
        session_of(root, "fold_towel"), episode=row["file"], reviewer="qa3", label="unsure"
    )
    view.refresh_episode(row["episode_id"])
    qtbot.waitUntil(lambda: column(view, "label") == ["unsure (qa3)"], timeout=30_000)


def test_reviewer_mode_asks_who_then_reviews_in_the_browsers_order(qtbot, root):
    (root / "operators.toml").write_text('[[operators]]\nid = "qa7"\nname = "Quinn"\n')
    w = ReviewerWindow(root)
    qtbot.addWidget(w)
    qa = w.qa
    assert w.stack.currentWidget() is qa.signin
    qtbot.waitUntil(lambda: qa.signin.reviewer.count() == 1, timeout=30_000)
    assert qa.signin.reviewer.itemText(0) == "qa7"
    qa.signin.reviewer.setCurrentText("")
    qa.signin.proceed.click()
    assert "reviewer id" in qa.signin.problem.text()  # no id, no way in
    qa.signin.reviewer.setCurrentText("qa7")
    qa.signin.proceed.click()
    assert w.stack.currentWidget() is qa.browser
    qtbot.waitUntil(lambda: not qa.browser.loading and qa.browser.proxy.rowCount() == 3)
    qa.browser.table.sortByColumn(COLUMNS.index("duration"), Qt.SortOrder.AscendingOrder)
    qa.browser.table.selectRow(1)
    qa.browser.review_button.click()
    review = qa.review
    assert w.stack.currentWidget() is review and review.reviewer == "qa7"
    assert [r["episode_id"] for r in review.rows] == [
        r["episode_id"] for r in qa.browser.shown_rows()
    ]
    assert review.index == 1
    review.back.emit()
    assert w.stack.currentWidget() is qa.browser
    qa.shutdown()


def test_screenshot_option_writes_a_png(tmp_path):
    out = tmp_path / "shot.png"
    assert main(["--data-dir", str(tmp_path), "--screenshot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
