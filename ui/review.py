"""The Review screen: replay an episode and label it, keyboard first.

QA reviewers decide which demonstrations a policy trains on. The replay sits on the left, the
label panel on the right: who recorded what, the label buttons, a failure reason, notes, tags,
time marks, Save, and the episode's whole label history from its session's ``labels.jsonl``.

"Label and go to the next episode in two keys": ``1`` success, ``2`` failure (the reason list
takes focus and a digit picks a reason), ``3`` unsure, then ``Enter`` saves and opens the
next episode (``Shift+Enter`` saves and stays). Every key is listed once, in
:data:`~ui.review_keys.REVIEW_KEYS`. While the reviewer types in notes, tags or a mark name,
letters, digits, Space and the arrows type; Enter saves (Ctrl+Enter starts a new line in the
notes) and Esc leaves the field (or the reason list), so a second Esc goes back. An open list
(a combo box's, the tag completions) keeps Enter for picking an entry.

Label events are appended off the GUI thread (:class:`~ui.worker.EngineWorker`); a refused
label (:class:`~teleop.labels.LabelError`) shows as the error line and nothing moves on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from teleop.episode.reader import EpisodeReadError
from teleop.errors import TeleopError
from teleop.labels import (
    DEFAULT_FAILURE_REASONS,
    LABELS,
    LabelError,
    LabelEvent,
    LabelLog,
    append_label,
    failure_reasons,
    read_labels,
)
from teleop.playback.player import SPEEDS
from ui.label_form import (
    LABEL_COLOURS,
    TagCompleter,
    flag_summary,
    history_html,
    problems_text,
)
from ui.replay import ReplayView, open_with_recovery
from ui.review_keys import REVIEW_KEYS, PopupKeys, ReasonKeys, TypingKeys, key_help, key_name
from ui.style import AMBER_BG, ERROR_STYLE, GREEN, GREY, RED
from ui.worker import EngineWorker

log = logging.getLogger(__name__)

MARK_NAMES = ("grasp", "release", "contact", "other")
_ONE_S_NS = 1_000_000_000


def _fmt_s(t_ns: int) -> str:
    return f"{t_ns / 1e9:.2f} s"


class ReviewView(QWidget):
    """Replay plus label panel for a list of catalog rows (``teleop.catalog.query``).

    ``back`` asks the main window to return to the browser; ``labelled(episode_id)`` is
    emitted after a label event was written.
    """

    back = Signal()
    labelled = Signal(str)

    def __init__(self, data_root: Path, reviewer: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.data_root = Path(data_root)
        self.reviewer = reviewer
        self.rows: list[dict[str, Any]] = []
        self.index = -1
        self.label: str | None = None
        self.marks: list[tuple[str, int]] = []
        """Unsaved time marks: (name, position ns from the episode start)."""
        self.history: list[LabelEvent] = []
        self._reasons: list[str] = list(DEFAULT_FAILURE_REASONS)
        self._saving = False
        self.worker = EngineWorker(self)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.replay = ReplayView()
        panel = self._build_panel()
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        # The panel scrolls down, never sideways: it is as wide as its widest row needs.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(panel.minimumSizeHint().width() + bar + 4)
        scroll.setMaximumWidth(max(620, scroll.minimumWidth()))
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.replay)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        # The replay gets every pixel the panel does not need.
        splitter.setSizes([10 * scroll.minimumWidth(), scroll.minimumWidth()])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self._bind_keys()

    # -- building -----------------------------------------------------------------------------
    def _build_panel(self) -> QWidget:
        panel = QWidget()
        # Buttons and lists never keep the keyboard: the screen's keys work after a click.
        self.title = QLabel()
        self.title.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.session_label = QLabel()
        self.session_label.setStyleSheet(f"color: {GREY};")
        self.session_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.position_label = QLabel()
        self.position_label.setStyleSheet(f"color: {GREY};")
        self.fields: dict[str, QLabel] = {}
        header = QFormLayout()
        header.setContentsMargins(0, 0, 0, 0)
        for name, title in (
            ("operator", "Operator"),
            ("task", "Task"),
            ("rig", "Rig"),
            ("duration", "Duration"),
            ("quality", "Quality"),
            ("label", "Latest label"),
        ):
            value = QLabel()
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[name] = value
            header.addRow(f"{title}:", value)

        self.label_buttons: dict[str, QPushButton] = {}
        buttons = QHBoxLayout()
        for key in REVIEW_KEYS[:3]:
            b = QPushButton(f"{key.action.capitalize()}  [{key_name(key.action)}]")
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            colour = LABEL_COLOURS[key.action]
            b.setStyleSheet(
                f"QPushButton {{ padding: 8px; font-weight: bold; }}"
                f"QPushButton:checked {{ background: {colour}; color: white; }}"
            )
            b.clicked.connect(lambda _=False, lab=key.action: self.choose_label(lab))
            self.label_buttons[key.action] = b
            buttons.addWidget(b)

        self.reason = QComboBox()
        self.reason.setPlaceholderText("failure reason: a digit picks one")
        self.reason.setEnabled(False)
        self.reason.installEventFilter(ReasonKeys(self.reason, self))

        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Notes (Enter saves, Ctrl+Enter new line, Esc leaves)")
        self.notes.setFixedHeight(70)
        self.notes.installEventFilter(TypingKeys(self, self._save_key, multiline=True))
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("tags, comma-separated")
        self.tags.installEventFilter(TypingKeys(self, self._save_key))
        self._completer = TagCompleter(self.tags, self)
        popup_keys = PopupKeys(self)
        popup = self._completer.popup()
        assert popup is not None  # a QCompleter always has its popup view
        popup.installEventFilter(popup_keys)

        self.mark_name = QComboBox()
        self.mark_name.setEditable(True)
        self.mark_name.addItems(MARK_NAMES)
        self.mark_name.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        line = self.mark_name.lineEdit()
        assert line is not None
        line.installEventFilter(TypingKeys(self, self._save_key, on_enter=self.add_mark))
        for combo in (self.reason, self.mark_name):
            combo.view().installEventFilter(popup_keys)
        self.mark_button = QPushButton(f"Mark  [{key_name('mark')}]")
        self.mark_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.mark_button.clicked.connect(self.add_mark)
        self.mark_list = QListWidget()
        self.mark_list.setFixedHeight(72)
        self.mark_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.remove_mark_button = QPushButton("Remove mark")
        self.remove_mark_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.remove_mark_button.clicked.connect(self.remove_selected_mark)
        mark_row = QHBoxLayout()
        mark_row.addWidget(self.mark_name, 1)
        mark_row.addWidget(self.mark_button)
        mark_row.addWidget(self.remove_mark_button)

        self.save_button = QPushButton(f"Save + next  [{key_name('save_next')}]")
        self.save_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.save_button.clicked.connect(lambda: self.save_label(go_next=True))
        self.save_stay_button = QPushButton(f"Save  [{key_name('save_stay')}]")
        self.save_stay_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.save_stay_button.clicked.connect(lambda: self.save_label(go_next=False))
        self.back_button = QPushButton("Back  [Esc]")
        self.back_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.back_button.clicked.connect(self.back.emit)
        save_row = QHBoxLayout()
        save_row.addWidget(self.back_button)
        save_row.addStretch(1)
        save_row.addWidget(self.save_stay_button)
        save_row.addWidget(self.save_button)

        self.error_label = QLabel()
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.info_label = QLabel()
        self.info_label.setWordWrap(True)
        self.info_label.hide()

        form = QGroupBox(f"Your label (reviewer {self.reviewer})")
        form_layout = QFormLayout(form)
        form_layout.addRow(buttons)
        form_layout.addRow("Reason:", self.reason)
        form_layout.addRow("Notes:", self.notes)
        form_layout.addRow("Tags:", self.tags)
        form_layout.addRow("Marks:", mark_row)
        form_layout.addRow(self.mark_list)
        form_layout.addRow(save_row)

        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet(f"background: {AMBER_BG}; padding: 4px;")
        self.problems_label.hide()
        self.history_view = QTextBrowser()  # rich text: history_html
        self.history_view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.history_view.setMinimumHeight(140)
        history = QGroupBox("Label history")
        history_layout = QVBoxLayout(history)
        history_layout.addWidget(self.problems_label)
        history_layout.addWidget(self.history_view)

        self.help_label = QLabel(key_help())
        self.help_label.setStyleSheet(f"color: {GREY}; font-size: 9pt;")

        layout = QVBoxLayout(panel)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.position_label)
        layout.addLayout(top)
        layout.addWidget(self.session_label)
        layout.addLayout(header)
        layout.addWidget(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.info_label)
        layout.addWidget(history, 1)
        layout.addWidget(self.help_label)
        return panel

    def _bind_keys(self) -> None:
        slots = {
            "success": lambda: self.choose_label("success"),
            "failure": lambda: self.choose_label("failure"),
            "unsure": lambda: self.choose_label("unsure"),
            "save_next": lambda: self.save_label(go_next=True),
            "save_stay": lambda: self.save_label(go_next=False),
            "play_pause": self.replay.toggle_play,
            "step_back": lambda: self.replay.step(-1),
            "step_forward": lambda: self.replay.step(1),
            "back_1s": lambda: self._seek_by(-_ONE_S_NS),
            "forward_1s": lambda: self._seek_by(_ONE_S_NS),
            "slower": lambda: self._change_speed(-1),
            "faster": lambda: self._change_speed(1),
            "next": lambda: self.go(1),
            "previous": lambda: self.go(-1),
            "mark": self.add_mark,
            "back": self.back.emit,
        }
        self.shortcuts: list[QShortcut] = []
        for key in REVIEW_KEYS:
            for seq in key.keys.split(","):
                sc = QShortcut(QKeySequence(seq.strip()), self)
                # Only while the keyboard is somewhere in this screen (not in other screens).
                sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                sc.activated.connect(slots[key.action])
                self.shortcuts.append(sc)

    # -- episodes -----------------------------------------------------------------------------
    def open_episodes(self, rows: list[dict], index: int) -> None:
        """Review ``rows`` (catalog rows in the browser's order), starting at ``rows[index]``."""
        if not 0 <= index < len(rows):
            raise IndexError(f"episode {index} of a list of {len(rows)}")
        self.rows = list(rows)
        for row in self.rows:
            self._completer.learn(str(row.get("tags") or "").split(","))
        self._open(index)

    def go(self, step: int) -> None:
        """Open the next (``step`` 1) or previous (-1) episode of the list, unlabelled."""
        if self._saving or not self.rows:
            return
        target = self.index + step
        if not 0 <= target < len(self.rows):
            self._say(
                "This is the last episode in the list."
                if step > 0
                else "This is the first episode in the list."
            )
            return
        self._open(target)

    def _open(self, index: int) -> None:
        self.index = index
        row = self.rows[index]
        self._clear_form()
        self._say("")
        self.error_label.hide()
        self._reasons = self._reasons_for(str(row.get("task") or ""))
        self.reason.clear()
        for i, reason in enumerate(self._reasons, start=1):
            self.reason.addItem(f"{i}  {reason}" if i <= 9 else reason, reason)
        self.reason.setCurrentIndex(-1)
        path = Path(row["path"])
        try:
            self.replay.open_episode(path)  # closes the one shown first, also when it fails
        except EpisodeReadError as exc:
            self._open_damaged(path, exc)
        self._load_history()
        self._show_header()
        self.setFocus()

    def _open_damaged(self, path: Path, exc: EpisodeReadError) -> None:
        # Offers to recover a truncated file (a dialog); the damaged file stays as it is.
        recovered = open_with_recovery(self, path)
        if recovered is None:
            self._error(f"{exc} (the label can still be given)")
            return
        try:
            self.replay.open_episode(recovered)
        except EpisodeReadError as again:
            self._error(str(again))
            return
        if recovered == path:  # it opened on the second try: nothing was recovered
            return
        self._say(
            f"Showing the recovered copy {recovered.name} (the damaged file is left as it is). "
            f"The label is saved for {path.name}, the episode the catalog lists."
        )

    def _reasons_for(self, task: str) -> list[str]:
        try:
            return failure_reasons(self.data_root, task)
        except TeleopError as exc:  # a broken tasks.toml must not stop reviewing
            self._error(f"{exc} (offering the default failure reasons)")
            return list(DEFAULT_FAILURE_REASONS)

    def _session_dir(self) -> Path:
        return Path(self.rows[self.index]["path"]).parent

    def _load_history(self, log: LabelLog | None = None) -> None:
        row = self.rows[self.index]
        if log is None:
            log = read_labels(self._session_dir())
        self.history = log.for_episode(str(row["file"]))
        for e in self.history:
            self._completer.learn(e.tags)
        self.history_view.setHtml(history_html(self.history))
        if log.problems:
            self.problems_label.setText(problems_text(log.problems))
            self.problems_label.setToolTip(str(log.problems[0].path))
            self.problems_label.show()
        else:
            self.problems_label.hide()

    def _show_header(self) -> None:
        row = self.rows[self.index]
        self.title.setText(Path(str(row["file"])).stem)
        self.session_label.setText(f"session {row.get('session') or self._session_dir().name}")
        self.position_label.setText(f"{self.index + 1} of {len(self.rows)}")
        self.fields["operator"].setText(str(row.get("operator") or "—"))
        self.fields["task"].setText(str(row.get("task") or "—"))
        self.fields["rig"].setText(str(row.get("rig") or "—"))
        duration_s = (
            self.replay.duration_ns / 1e9 if self.replay.duration_ns else row.get("duration_s")
        )
        self.fields["duration"].setText(f"{duration_s:.1f} s" if duration_s else "—")
        flags = str(row.get("flags") or "")
        quality = self.fields["quality"]
        quality.setText(flag_summary(flags) if flags else "no flags")
        quality.setToolTip(flags.replace("; ", "\n"))
        quality.setStyleSheet(f"color: {RED};" if flags else f"color: {GREEN};")
        latest = self.history[-1] if self.history else None
        if latest is None:
            self.fields["label"].setText("not labelled yet")
            self.fields["label"].setStyleSheet(f"color: {GREY};")
        else:
            reason = f" ({latest.failure_reason})" if latest.failure_reason else ""
            self.fields["label"].setText(
                f"{latest.label}{reason} by {latest.reviewer}, {latest.time_utc[:16].replace('T', ' ')}"
            )
            self.fields["label"].setStyleSheet(
                f"color: {LABEL_COLOURS[latest.label]}; font-weight: bold;"
            )

    # -- the label form -----------------------------------------------------------------------
    def choose_label(self, label: str) -> None:
        """Pick ``label`` (success, failure, unsure) for the next save."""
        if label not in LABELS or not self.rows:
            return
        self.label = label
        for name, b in self.label_buttons.items():
            b.setChecked(name == label)
        is_failure = label == "failure"
        self.reason.setEnabled(is_failure)
        if is_failure:
            self.reason.setFocus()  # digits now pick the reason
        else:
            self.reason.setCurrentIndex(-1)
            if self.reason.hasFocus():
                self.setFocus()

    def add_mark(self) -> None:
        """Add a time mark named as the mark-name box says at the playhead."""
        if not self.rows:
            return
        name = self.mark_name.currentText().strip() or "other"
        self.marks.append((name, int(self.replay.position_ns)))
        self.marks.sort(key=lambda m: m[1])
        self._show_marks()
        self.setFocus()

    def remove_selected_mark(self) -> None:
        """Remove the mark selected in the list (unsaved marks only)."""
        row = self.mark_list.currentRow()
        if 0 <= row < len(self.marks):
            del self.marks[row]
            self._show_marks()

    def _show_marks(self) -> None:
        self.mark_list.clear()
        for name, t_ns in self.marks:
            QListWidgetItem(f"{_fmt_s(t_ns)}   {name}", self.mark_list)
        self.remove_mark_button.setEnabled(bool(self.marks))
        self.replay.set_extra_marks([(t_ns, name) for name, t_ns in self.marks])

    def _clear_form(self) -> None:
        self.label = None
        for b in self.label_buttons.values():
            b.setChecked(False)
        self.reason.setCurrentIndex(-1)
        self.reason.setEnabled(False)
        self.notes.clear()
        self.tags.clear()
        self.marks.clear()
        self._show_marks()

    # -- saving -------------------------------------------------------------------------------
    def _save_key(self, go_next: bool) -> None:
        # Enter in a text field (TypingKeys): Shift+Enter stays.
        self.save_label(go_next=go_next)

    def save_label(self, *, go_next: bool) -> None:
        """Write the chosen label as a new event (off the GUI thread); then, with
        ``go_next``, open the next episode of the list."""
        if self._saving or not self.rows:
            return
        if self.label is None:
            self._error("Choose a label first: 1 success, 2 failure, 3 unsure.")
            return
        row = self.rows[self.index]
        session_dir = self._session_dir()
        reason = self.reason.currentData() if self.label == "failure" else None
        kwargs: dict[str, Any] = {
            "episode": str(row["file"]),
            "reviewer": self.reviewer,
            "label": self.label,
            "failure_reason": reason,
            "notes": self.notes.toPlainText(),
            "tags": [t.strip() for t in self.tags.text().split(",") if t.strip()],
            "marks": [(name, t_ns / 1e9) for name, t_ns in self.marks],
            "allowed_reasons": list(self._reasons),
        }

        def write() -> tuple[LabelEvent, LabelLog]:
            event = append_label(session_dir, **kwargs)
            return event, read_labels(session_dir)

        self._saving = True
        self.error_label.hide()
        self._say("Saving…")
        rows, index = self.rows, self.index
        self.worker.submit(
            write,
            lambda result: self._saved(rows, index, result, go_next),
            self._save_failed,
        )

    def _saved(
        self,
        rows: list[dict[str, Any]],
        index: int,
        result: tuple[LabelEvent, LabelLog],
        go_next: bool,
    ) -> None:
        self._saving = False
        event, log = result
        done = f"Saved {event.label} for {event.episode_id}."
        self.labelled.emit(event.episode_id)
        if rows is not self.rows or index != self.index:  # another list was opened meanwhile
            return
        if go_next and index + 1 < len(self.rows):
            self._open(index + 1)
            self._say(done)
            return
        self._clear_form()
        self._load_history(log)
        self._show_header()
        self._say(done + (" That was the last episode in the list." if go_next else ""))
        self.setFocus()

    def _save_failed(self, exc: BaseException) -> None:
        self._saving = False
        self._say("")
        if isinstance(exc, LabelError):
            self._error(str(exc))
        else:
            log.error("label not saved", exc_info=exc)
            self._error(f"The label was not saved: {exc}")

    # -- playback -----------------------------------------------------------------------------
    def _seek_by(self, delta_ns: int) -> None:
        target = self.replay.position_ns + delta_ns
        self.replay.seek(max(0, min(int(target), int(self.replay.duration_ns))))

    def _change_speed(self, step: int) -> None:
        # From the player's speed, not a copy: the replay's own speed selector changes it too.
        now = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.replay.player.speed))
        speed = SPEEDS[max(0, min(len(SPEEDS) - 1, now + step))]
        self.replay.set_speed(speed)
        self._say(f"Speed {speed:g}×")

    def shutdown(self) -> None:
        """Stop the player and the label thread (before the screen is thrown away)."""
        self.replay.close_episode()
        self.worker.shutdown(wait=True)  # a label being written is finished, not lost

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self.replay.path is not None:
            self.replay.pause()  # nobody watches: do not play on behind another screen
        super().hideEvent(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.replay.close_episode()  # stops the player's thread
        super().closeEvent(event)

    # -- messages -----------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.info_label.setText(text)
        self.info_label.setVisible(bool(text))

    def _error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))
