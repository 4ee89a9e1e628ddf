"""Pre-flight: ``teleop doctor`` in the GUI, green / amber / red, with the fix beside each row.

The checks run on the engine thread (they open buses and read cameras); this screen only shows
their results. Recording stays disabled while any check FAILs.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from teleop.doctor import CheckResult, Status
from ui.style import AMBER_BG, GREEN_BG, RED, RED_BG, TITLE_STYLE

ROW_COLOUR = {Status.OK: GREEN_BG, Status.WARN: AMBER_BG, Status.FAIL: RED_BG}
HEADERS = ["", "Check", "What", "Measured", "Fix"]


def summarize(results: list[CheckResult]) -> tuple[bool, str]:
    """(may record, one line for the operator)."""
    fails = sum(r.status is Status.FAIL for r in results)
    warns = sum(r.status is Status.WARN for r in results)
    if fails:
        return False, (
            f"{fails} check{'s' * (fails > 1)} failed: fix the red rows, then Run checks again."
        )
    if warns:
        return True, f"Ready to record ({warns} warning{'s' * (warns > 1)}: see the amber rows)."
    return True, "All checks passed: ready to record."


class PreflightScreen(QWidget):
    """Shows check results; ``rerun``, ``back`` and ``record`` are for the main window."""

    rerun = Signal()
    back = Signal()
    record = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.results: list[CheckResult] = []
        self.title = QLabel("Pre-flight checks")
        self.title.setStyleSheet(TITLE_STYLE)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("font-size: 13pt;")
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        for col in range(4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.back_button = QPushButton("Back to sign-in")
        self.back_button.clicked.connect(self.back)
        self.rerun_button = QPushButton("Run checks again")
        self.rerun_button.clicked.connect(self.rerun)
        self.record_button = QPushButton("Start recording session")
        self.record_button.setEnabled(False)
        self.record_button.clicked.connect(self.record)
        buttons = QHBoxLayout()
        buttons.addWidget(self.back_button)
        buttons.addStretch(1)
        buttons.addWidget(self.rerun_button)
        buttons.addWidget(self.record_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

    def set_busy(self, text: str) -> None:
        """Checks (or the session start) are running: say what, and block the buttons."""
        self.status.setText(text)
        self.status.setStyleSheet("font-size: 13pt;")
        self.record_button.setEnabled(False)
        self.rerun_button.setEnabled(False)
        self.back_button.setEnabled(False)

    def set_error(self, text: str) -> None:
        """The rig could not be opened or the session not started: one line, what to do."""
        self.status.setText(text)
        self.status.setStyleSheet(f"font-size: 13pt; color: {RED}; font-weight: bold;")
        self.record_button.setEnabled(False)
        self.rerun_button.setEnabled(True)
        self.back_button.setEnabled(True)

    def set_results(self, results: list[CheckResult]) -> None:
        """Fill the table; enable Record only when nothing failed."""
        self.results = results
        # Failures first, then warnings: what the operator must act on is at the top.
        order = {Status.FAIL: 0, Status.WARN: 1, Status.OK: 2}
        rows = sorted(results, key=lambda r: order[r.status])
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            limit = f" (limit {r.threshold})" if r.threshold else ""
            cells = [str(r.status), r.check, r.where, f"{r.measured}{limit}", r.fix]
            brush = QBrush(QColor(ROW_COLOUR[r.status]))
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setBackground(brush)
                item.setForeground(QBrush(QColor("black")))
                item.setToolTip(text)
                if col == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(i, col, item)
        self.table.resizeRowsToContents()
        may_record, line = summarize(results)
        colour = "black" if may_record else RED
        self.status.setText(line)
        self.status.setStyleSheet(f"font-size: 13pt; color: {colour}; font-weight: bold;")
        self.record_button.setEnabled(may_record)
        self.rerun_button.setEnabled(True)
        self.back_button.setEnabled(True)
