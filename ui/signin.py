"""Sign-in: the operator picks themself, the rig and the task from the lab's lists."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from rigs.spec import preset_names
from teleop.operators import EXAMPLE as OPERATORS_EXAMPLE
from teleop.operators import Operator, OperatorsFileError, load_operators
from teleop.tasks import EXAMPLE as TASKS_EXAMPLE
from teleop.tasks import Task, TasksFileError, load_tasks
from ui.station import SignIn
from ui.style import ERROR_STYLE, TITLE_STYLE


class SignInScreen(QWidget):
    """Emits ``signed_in(SignIn)`` when the operator presses Continue."""

    signed_in = Signal(object)
    show_sessions = Signal()

    def __init__(self, data_root: Path, *, rig: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.data_root = data_root
        self.operators: list[Operator] = []
        self.tasks: list[Task] = []

        # Larger than Qt's default: the station is read from arm's length, often standing.
        self.setStyleSheet("QComboBox, QLabel, QPushButton { font-size: 13pt; }")
        title = QLabel("Sign in")
        title.setStyleSheet(TITLE_STYLE)
        where = QLabel(f"Data root: {data_root}")
        self.operator = QComboBox()
        self.rig = QComboBox()
        self.rig.setEditable(True)  # a path to a rig .toml may be typed or browsed
        for name in preset_names():
            self.rig.addItem(name)
        # Without --rig, the virtual rig: it runs anywhere, and a lab passes its own rig file.
        self.rig.setCurrentText(rig or ("sim-bimanual" if "sim-bimanual" in preset_names() else ""))
        browse = QPushButton("Rig file…")
        browse.clicked.connect(self._browse)
        rig_row = QHBoxLayout()
        rig_row.addWidget(self.rig, 1)
        rig_row.addWidget(browse)
        self.task = QComboBox()
        self.task.currentIndexChanged.connect(self._show_task)
        self.task_details = QLabel()
        self.task_details.setWordWrap(True)
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet(ERROR_STYLE)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice = QLabel()  # e.g. "session ... closed" after recording
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("font-size: 12pt;")
        self.reload = QPushButton("Reload lists")
        self.reload.clicked.connect(self.load)
        self.sessions = QPushButton("Sessions…")
        self.sessions.clicked.connect(self.show_sessions)
        self.proceed = QPushButton("Continue to pre-flight checks")
        self.proceed.setDefault(True)
        self.proceed.clicked.connect(self._proceed)

        form = QFormLayout()
        form.addRow("Operator", self.operator)
        form.addRow("Rig", rig_row)
        form.addRow("Task", self.task)
        form.addRow("", self.task_details)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sessions)
        buttons.addWidget(self.reload)
        buttons.addStretch(1)
        buttons.addWidget(self.proceed)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(where)
        layout.addLayout(form)
        layout.addWidget(self.problems)
        layout.addWidget(self.notice)
        layout.addStretch(1)
        layout.addLayout(buttons)
        self.load()

    def load(self) -> None:
        """Read operators.toml and tasks.toml (two small files) and fill the pickers."""
        problems: list[str] = []
        try:
            self.operators = load_operators(self.data_root)
        except OperatorsFileError as exc:
            self.operators = []
            problems.append(f"{exc}. For example:\n{OPERATORS_EXAMPLE}")
        try:
            self.tasks = load_tasks(self.data_root)
        except TasksFileError as exc:
            self.tasks = []
            problems.append(f"{exc}. For example:\n{TASKS_EXAMPLE}")
        self.operator.clear()
        for op in self.operators:
            self.operator.addItem(op.label, op.id)
        self.task.clear()
        for t in self.tasks:
            self.task.addItem(t.name, t.name)
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))
        self.proceed.setEnabled(bool(self.operators and self.tasks))
        self._show_task()

    def _show_task(self) -> None:
        task = self.selected_task()
        if task is None:
            self.task_details.setText("")
            return
        what = f"{task.description}\n" if task.description else ""
        self.task_details.setText(
            f"{what}Target {task.target_episodes} episodes of {task.episode_s:g} s, "
            f"{task.reset_s:g} s to reset the scene between episodes."
        )

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Rig file", "", "Rig files (*.toml)")
        if path:
            self.rig.setCurrentText(path)

    def selected_task(self) -> Task | None:
        i = self.task.currentIndex()
        return self.tasks[i] if 0 <= i < len(self.tasks) else None

    def selected(self) -> SignIn | None:
        """The current choice, or None while a list is missing."""
        i = self.operator.currentIndex()
        task = self.selected_task()
        rig = self.rig.currentText().strip()
        if not (0 <= i < len(self.operators)) or task is None or not rig:
            return None
        return SignIn(self.operators[i], task, rig)

    def _proceed(self) -> None:
        choice = self.selected()
        if choice is not None:
            self.signed_in.emit(choice)
