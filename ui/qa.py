"""The QA side of the app: reviewer sign-in, sessions browser, Review and Export screens.

:class:`QaScreens` puts those screens into a window's ``QStackedWidget`` and moves between
them; the operator's window and the reviewer's window (``teleop-gui --review``) both use it.
The reviewer id is asked once, the first time it is needed (labels carry who gave them),
and kept for the rest of the app's run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from teleop.operators import OperatorsFileError, load_operators
from ui.export import ExportView, ProgressRelay
from ui.sessions import Row, SessionsView
from ui.style import ERROR_STYLE, GREY, TITLE_STYLE

log = logging.getLogger(__name__)

MAX_REVIEWER_LEN = 64  # as a label event's ``reviewer`` field allows


class ReviewerSignIn(QWidget):
    """Who reviews: an id from operators.toml, or any id typed in. Emits ``signed_in(id)``."""

    signed_in = Signal(str)
    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        title = QLabel("Reviewer sign-in")
        title.setStyleSheet(TITLE_STYLE)
        hint = QLabel("Every label you give is saved with this id and the time.")
        hint.setStyleSheet(f"color: {GREY};")
        self.reviewer = QComboBox()
        self.reviewer.setEditable(True)  # a reviewer need not be in the operators' list
        self.reviewer.setMinimumWidth(320)
        line = self.reviewer.lineEdit()
        assert line is not None  # an editable combo box has its line edit
        line.setPlaceholderText("your reviewer id, e.g. qa1")
        line.returnPressed.connect(self._proceed)
        self.problem = QLabel()
        self.problem.setStyleSheet(ERROR_STYLE)
        self.cancel = QPushButton("Back")
        self.cancel.clicked.connect(self.cancelled)
        self.proceed = QPushButton("Continue")
        self.proceed.setDefault(True)
        self.proceed.clicked.connect(self._proceed)
        row = QHBoxLayout()
        row.addWidget(QLabel("Reviewer"))
        row.addWidget(self.reviewer)
        row.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel)
        buttons.addStretch(1)
        buttons.addWidget(self.proceed)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addLayout(row)
        layout.addWidget(self.problem)
        layout.addStretch(1)
        layout.addLayout(buttons)

    def set_ids(self, ids: list[str]) -> None:
        """Offer ``ids`` in the combo (the typed text is kept)."""
        text = self.reviewer.currentText()
        self.reviewer.clear()
        self.reviewer.addItems(ids)
        self.reviewer.setCurrentText(text)

    def _proceed(self) -> None:
        reviewer = self.reviewer.currentText().strip()
        if not reviewer:
            self.problem.setText("Type or pick your reviewer id.")
        elif len(reviewer) > MAX_REVIEWER_LEN:
            self.problem.setText(f"A reviewer id has at most {MAX_REVIEWER_LEN} characters.")
        else:
            self.problem.setText("")
            self.signed_in.emit(reviewer)


class QaScreens(QObject):
    """Browser, Review and Export screens in ``stack``, and the moves between them.

    ``left`` is emitted when the browser's Back is pressed; the window decides where to go.
    """

    left = Signal()

    def __init__(
        self,
        data_root: Path,
        stack: QStackedWidget,
        *,
        reviewer: str | None = None,
        export_relay: ProgressRelay | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.data_root = Path(data_root)
        self.stack = stack
        self.reviewer = reviewer
        self.browser = SessionsView(self.data_root)
        self.export = ExportView(self.data_root, relay=export_relay)
        self.signin = ReviewerSignIn()
        self.review: Any = None  # ui.review.ReviewView, made once the reviewer is known
        self._review_for: str | None = None  # the reviewer ``review`` was made for
        self._browsed = False  # the browser was shown: the sign-in's Back returns to it
        self._pending: tuple[list[Row], int] | None = None
        for screen in (self.signin, self.browser, self.export):
            stack.addWidget(screen)

        self.browser.back.connect(self.left)
        self.browser.review_requested.connect(self.open_review)
        self.browser.export_requested.connect(self.open_export)
        self.export.back.connect(self.show_browser)
        self.signin.signed_in.connect(self._signed_in)
        self.signin.cancelled.connect(self._signin_cancelled)
        self._load_ids()

    def _load_ids(self) -> None:
        root = self.data_root

        def ids() -> list[str]:
            try:
                return [op.id for op in load_operators(root)]
            except OperatorsFileError:
                return []  # no list (or a broken one): the reviewer types an id

        self.browser.worker.submit(ids, self.signin.set_ids)

    # -- navigation --------------------------------------------------------------------------
    def open_browser(self) -> None:
        """Show the browser with fresh rows (the catalog is refreshed off the GUI thread)."""
        self.browser.reload()
        self._browsed = True
        self.stack.setCurrentWidget(self.browser)
        self.browser.table.setFocus()

    def show_browser(self) -> None:
        """Back to the browser as it was (its rows are updated as labels are saved)."""
        self.stack.setCurrentWidget(self.browser)
        self.browser.table.setFocus()

    def ask_reviewer(self) -> None:
        """Show the reviewer sign-in (e.g. to switch reviewer)."""
        self.signin.cancel.setVisible(self._browsed)
        self.stack.setCurrentWidget(self.signin)
        self.signin.reviewer.setFocus()

    def open_review(self, rows: list[Row], index: int) -> None:
        """Review ``rows[index]`` with ``rows`` for next/previous; ask the reviewer first."""
        if self.reviewer is None:
            self._pending = (rows, index)
            self.ask_reviewer()
            return
        review = self._review_view()
        self.stack.setCurrentWidget(review)
        review.open_episodes(rows, index)

    def open_export(self, selected: list[Row], shown: list[Row], where: str) -> None:
        self.export.set_episodes(selected, shown, where)
        self.stack.setCurrentWidget(self.export)

    def _review_view(self) -> Any:
        if self.review is not None and self._review_for == self.reviewer:
            return self.review
        if self.review is not None:
            self.stack.removeWidget(self.review)
            self.review.shutdown()  # its player and label threads
            self.review.deleteLater()
        # Imported when first used: the replay stack (video decoding, plots) is heavy and the
        # operator's recording screens never need it.
        from ui.review import ReviewView

        assert self.reviewer is not None
        self.review = ReviewView(self.data_root, self.reviewer)
        self._review_for = self.reviewer
        self.review.back.connect(self.show_browser)
        self.review.labelled.connect(self.browser.refresh_episode)
        self.stack.addWidget(self.review)
        return self.review

    def _signed_in(self, reviewer: str) -> None:
        self.reviewer = reviewer
        pending, self._pending = self._pending, None
        if pending is not None:
            self.open_review(*pending)
        else:
            self.open_browser()

    def _signin_cancelled(self) -> None:
        self._pending = None
        if self._browsed:
            self.show_browser()
        else:
            self.left.emit()

    def shutdown(self) -> None:
        """Stop a running export (its partial output is removed) and the screens' threads."""
        self.export.cancel()
        if self.review is not None:
            self.review.shutdown()
        for worker in (self.browser.worker, self.export.worker):
            worker.shutdown(wait=False)
