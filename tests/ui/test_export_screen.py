"""The export screen: a bundle of the selected rows, verified; Cancel leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStackedWidget

from ui.export import HoldingRelay
from ui.qa import QaScreens
from ui.sessions import COLUMNS


@pytest.fixture()
def root(recorded_root: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    # The recordings only: an index left in the shared root must not stand in for them.
    shutil.copytree(recorded_root, data, ignore=shutil.ignore_patterns("catalog.sqlite*"))
    return data


def screens(qtbot, root: Path, relay: HoldingRelay | None = None) -> QaScreens:
    stack = QStackedWidget()
    qtbot.addWidget(stack)
    qa = QaScreens(root, stack, reviewer="qa1", export_relay=relay)
    qa.open_browser()
    qtbot.waitUntil(lambda: not qa.browser.loading and qa.browser.proxy.rowCount() == 3)
    return qa


def test_two_selected_rows_export_as_a_verified_bundle(qtbot, root, tmp_path):
    qa = screens(qtbot, root)
    browser = qa.browser
    browser.table.sortByColumn(COLUMNS.index("duration"), Qt.SortOrder.DescendingOrder)
    model = browser.table.selectionModel()
    for r in (0, 1):  # as a Ctrl-click on each row would
        model.select(
            browser.proxy.index(r, 0), model.SelectionFlag.Select | model.SelectionFlag.Rows
        )
    chosen = {r["episode_id"] for r in browser.selected_rows()}
    assert len(chosen) == 2
    browser.export_button.click()
    export = qa.export
    assert qa.stack.currentWidget() is export
    assert export.use_selected.isChecked() and "Selected rows (2)" in export.use_selected.text()
    assert export.summary.text().startswith("2 episodes, ")
    out = tmp_path / "out" / "bundle"
    out.parent.mkdir()
    export.out.setText(str(out))
    export.export_button.click()
    qtbot.waitUntil(lambda: not export.running, timeout=60_000)
    assert export.outcome is not None, export.result.text()
    assert str(out) in export.result.text()
    assert "verified:" in export.result.text() and "sha256 OK" in export.result.text()
    assert export.progress_bar.value() == export.progress_bar.maximum()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["episode_id"] for e in manifest["episodes"]} == chosen
    qa.shutdown()


def test_cancel_mid_export_leaves_nothing_under_the_final_name(qtbot, root, tmp_path):
    relay = HoldingRelay(hold_at=0.3)
    qa = screens(qtbot, root, relay)
    qa.browser.export_button.click()
    export = qa.export
    assert export.use_matching.isChecked()  # nothing selected: every shown row
    export.as_tar.setChecked(True)
    out = tmp_path / "out" / "all"
    out.parent.mkdir()
    export.out.setText(str(out))
    assert export.request().out == out.with_name("all.tar")
    export.export_button.click()
    qtbot.waitUntil(relay.held.is_set, timeout=60_000)
    qtbot.waitUntil(lambda: export.progress_bar.value() > 0)
    assert export.running and not export.back_button.isEnabled()
    export.cancel_button.click()
    qtbot.waitUntil(lambda: not export.running, timeout=60_000)
    assert export.outcome is None
    assert "nothing was written under" in export.result.text()
    assert list(out.parent.iterdir()) == []  # no .tar, no hidden partial
    qa.shutdown()


@pytest.mark.parametrize("kind", ["hdf5", "lerobot"])
def test_a_training_export_from_the_screen_reports_what_it_wrote(qtbot, root, tmp_path, kind):
    qa = screens(qtbot, root)
    qa.browser.export_button.click()
    export = qa.export
    export.kind.setCurrentIndex(export.kind.findData(kind))
    export.fps.setValue(10.0)
    out = tmp_path / "out" / kind
    out.parent.mkdir()
    export.out.setText(str(out))
    export.export_button.click()
    qtbot.waitUntil(lambda: not export.running, timeout=120_000)
    assert export.outcome is not None, export.result.text()
    text = export.result.text()
    assert str(out) in text and ("3 episodes" in text or "3 files" in text), text
    assert "frame within half a period" in text, text
    assert out.is_dir()
    qa.shutdown()
