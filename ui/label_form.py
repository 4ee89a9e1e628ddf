"""Parts of the Review screen's label panel that stand on their own.

The label history as rich text (who, when, what, and everything else of each event), the
episode's quality flags in a few words, the labels' colours, and the completion of the tags
field from every tag seen so far.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from PySide6.QtCore import QObject, QStringListModel, Qt
from PySide6.QtWidgets import QCompleter, QLineEdit

from teleop.labels import LabelEvent, LineProblem
from ui.style import GREEN, GREY, RED

LABEL_COLOURS = {"success": GREEN, "failure": RED, "unsure": "#1565c0"}


def history_details(e: LabelEvent) -> str:
    """Everything of a label event but who, when and what, for the history list."""
    parts = [f"was {e.previous_label} ({e.previous_reviewer})"] if e.previous_label else []
    parts += [f"reason: {e.failure_reason}"] if e.failure_reason else []
    parts += [f"tags: {', '.join(e.tags)}"] if e.tags else []
    parts += [f"marks: {', '.join(f'{m.name} {m.t_s:.2f} s' for m in e.marks)}"] if e.marks else []
    parts += [f"notes: {e.notes}"] if e.notes else []
    return "  ·  ".join(parts)


def history_html(events: Iterable[LabelEvent]) -> str:
    """The label history as rich text, one paragraph per event (oldest first); rich text, not
    a table, so the details wrap in a narrow panel instead of being cut."""
    blocks = []
    for e in events:
        details = html.escape(history_details(e))
        blocks.append(
            f"<p style='margin: 0 0 6px 0;'>{html.escape(e.time_utc.replace('T', ' ')[:16])}"
            f"&nbsp;&nbsp;<b>{html.escape(e.reviewer)}</b>&nbsp;&nbsp;"
            f"<b style='color: {LABEL_COLOURS[e.label]};'>{e.label}</b>"
            + (f"<br><span style='color: {GREY};'>{details}</span>" if details else "")
            + "</p>"
        )
    return "".join(blocks) or f"<i style='color: {GREY};'>No labels yet.</i>"


def problems_text(problems: Iterable[LineProblem]) -> str:
    """The malformed lines of a ``labels.jsonl``, one warning a line."""
    lines = [
        f"{p.path.name} line {p.line}: {p.reason}; that line is skipped (fix or remove it)"
        for p in problems
    ]
    return "⚠ " + "\n⚠ ".join(lines)


def flag_summary(flags: str) -> str:
    """Quality flags (``'; '``-separated, ``kind: detail``) grouped by kind, e.g.
    ``3 flags: frames_missing ×2, rate_low``; the details go in the tooltip."""
    kinds: dict[str, int] = {}
    for flag in flags.split("; "):
        if flag.strip():
            kind = flag.split(":", 1)[0].strip()
            kinds[kind] = kinds.get(kind, 0) + 1
    total = sum(kinds.values())
    parts = [f"{k} ×{n}" if n > 1 else k for k, n in kinds.items()]
    return f"{total} flag{'s' if total != 1 else ''}: {', '.join(parts)}"


class TagCompleter(QCompleter):
    """Completion for a comma-separated tags field: the tag being typed (after the last comma)
    is completed, case-insensitively, from every tag :meth:`learn` was given; picking one
    replaces what was typed of it."""

    def __init__(self, field: QLineEdit, parent: QObject | None = None):
        super().__init__(parent)
        self._field = field
        self._known: set[str] = set()
        self._model = QStringListModel(self)
        self.setModel(self._model)
        self.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setWidget(field)
        self.activated.connect(self._insert)
        field.textEdited.connect(self._complete)

    def learn(self, tags: Iterable[str]) -> None:
        """Offer ``tags`` (blank ones are ignored) from now on."""
        new = {t.strip() for t in tags if t.strip()} - self._known
        if new:
            self._known |= new
            self._model.setStringList(sorted(self._known))

    def _complete(self, text: str) -> None:
        prefix = text.rsplit(",", 1)[-1].strip()
        popup = self.popup()
        assert popup is not None
        if not prefix:
            popup.hide()
            return
        self.setCompletionPrefix(prefix)
        if self.completionCount():
            self.complete()
        else:
            popup.hide()

    def _insert(self, tag: str) -> None:
        done, _, _ = self._field.text().rpartition(",")
        self._field.setText(f"{done}, {tag}" if done.strip() else tag)
