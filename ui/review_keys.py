"""The Review screen's keys: the one key table, its help line, and the keys inside its fields.

Every key of the screen is listed once, in :data:`REVIEW_KEYS`; the buttons and the help line
name keys from it. Inside a text field letters, digits, Space and the arrows type, and the
event filters here add the rest: Enter saves (Ctrl+Enter starts a new line in the notes), Esc
leaves the field (or the reason list) and hands the keyboard back to the screen, a digit in
the reason list picks a reason, and an open list (a combo box's, the tag completions) keeps
Enter for picking an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QComboBox, QPlainTextEdit, QWidget


@dataclass(frozen=True)
class ReviewKey:
    """One action of the review screen and its keys (``QKeySequence`` syntax, comma-separated)."""

    action: str
    keys: str
    help: str


# The whole key map of the screen, in the order the help line shows it.
REVIEW_KEYS: tuple[ReviewKey, ...] = (
    ReviewKey("success", "1", "success"),
    ReviewKey("failure", "2", "failure (then a digit picks the reason)"),
    ReviewKey("unsure", "3", "unsure"),
    ReviewKey("save_next", "Return,Enter", "save, next episode"),
    ReviewKey("save_stay", "Shift+Return,Shift+Enter", "save, stay"),
    ReviewKey("play_pause", "Space", "play/pause"),
    ReviewKey("step_back", "Left", "frame back"),
    ReviewKey("step_forward", "Right", "frame forward"),
    ReviewKey("back_1s", "Shift+Left", "1 s back"),
    ReviewKey("forward_1s", "Shift+Right", "1 s forward"),
    ReviewKey("slower", "[", "slower"),
    ReviewKey("faster", "]", "faster"),
    ReviewKey("next", "N", "next episode"),
    ReviewKey("previous", "P", "previous episode"),
    ReviewKey("mark", "M", "time mark at the playhead"),
    ReviewKey("back", "Esc", "back"),
)
_ENTER_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


def key_name(action: str) -> str:
    """The first key of ``action`` as a button shows it (``Enter``, not Qt's ``Return``)."""
    keys = next(k.keys for k in REVIEW_KEYS if k.action == action)
    return keys.split(",")[0].replace("Return", "Enter")


def key_help(per_line: int = 3) -> str:
    """The key map as a few lines for the screen: ``1 success · 2 failure … · Esc back``."""
    entries = [f"{key_name(k.action)} {k.help}" for k in REVIEW_KEYS]
    return "\n".join(
        "  ·  ".join(entries[i : i + per_line]) for i in range(0, len(entries), per_line)
    )


class TypingKeys(QObject):
    """Keys inside a text field: Enter-variants and Esc act, everything else types.

    Text widgets already claim letters, digits, Space and the arrows before the screen's
    shortcuts see them; this filter adds what they do not: Enter saves (``Shift+Enter`` saves
    and stays, ``Ctrl+Enter`` is a line break where line breaks make sense) and Esc hands the
    keyboard back to ``screen`` instead of leaving it. ``save(go_next)`` saves the label;
    ``on_enter``, if given, is what Enter does instead.
    """

    def __init__(
        self,
        screen: QWidget,
        save: Callable[[bool], None],
        *,
        multiline: bool = False,
        on_enter: Callable[[], None] | None = None,
    ):
        super().__init__(screen)
        self._screen = screen
        self._save = save
        self._multiline = multiline
        self._on_enter = on_enter

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ShortcutOverride:
            if isinstance(event, QKeyEvent) and event.key() == Qt.Key.Key_Escape:
                event.accept()  # Esc reaches the field as a key press, not the Back shortcut
            return False
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        key, mods = event.key(), event.modifiers()
        if key == Qt.Key.Key_Escape:
            self._screen.setFocus()
            return True
        if key not in _ENTER_KEYS:
            return False
        if mods & Qt.KeyboardModifier.ControlModifier:
            if self._multiline and isinstance(obj, QPlainTextEdit):
                obj.insertPlainText("\n")
            return True
        if self._on_enter is not None:
            self._on_enter()
        elif mods & Qt.KeyboardModifier.ShiftModifier:
            self._save(False)
        else:
            self._save(True)
        return True


class PopupKeys(QObject):
    """An open list (a combo box's, the tag completions) keeps every key for itself: Enter
    picks an entry there instead of saving the label."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ShortcutOverride:
            event.accept()
        return False


class ReasonKeys(QObject):
    """In the failure-reason list a digit picks reason 1…9 (instead of labelling), and Esc
    hands the keys back to ``screen`` (instead of leaving it)."""

    def __init__(self, combo: QComboBox, screen: QWidget):
        super().__init__(combo)
        self._combo = combo
        self._screen = screen

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(event, QKeyEvent):
            return False
        digit = event.key() - Qt.Key.Key_0
        escape = event.key() == Qt.Key.Key_Escape
        if not (1 <= digit <= 9 or escape):
            return False
        if event.type() == QEvent.Type.ShortcutOverride:
            event.accept()  # the key is for this list, not the screen's shortcuts
            return False
        if event.type() != QEvent.Type.KeyPress:
            return False
        if escape:
            self._screen.setFocus()
        elif digit <= self._combo.count():
            self._combo.setCurrentIndex(digit - 1)
        return True
