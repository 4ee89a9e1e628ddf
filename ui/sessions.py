"""The sessions overview: every session and episode under the data root, with quality flags."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from teleop.session import SESSION_FILE

COLUMNS = [
    "session / episode",
    "operator",
    "task",
    "rig",
    "status",
    "duration s",
    "rate Hz",
    "flags",
]


def load_sessions(data_root: Path) -> list[dict]:
    """Every readable session manifest under ``data_root``, newest first."""
    out = []
    for f in sorted(data_root.glob(f"*/{SESSION_FILE}"), reverse=True):
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


class SessionsView(QWidget):
    """Sessions and their episodes, with status, rate and quality flags.

    ``back`` is a button the main window wires to return to where the operator came from;
    it is hidden in the stand-alone window.
    """

    def __init__(self, data_root: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.data_root = data_root
        self.count = QLabel()
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.back = QPushButton("Back")
        self.back.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.count)
        layout.addWidget(self.tree)
        layout.addWidget(self.back)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the manifests (small JSON files) and rebuild the tree."""
        self.tree.clear()
        sessions = load_sessions(self.data_root)
        for s in sessions:
            top = QTreeWidgetItem(
                [s["session_id"], s["operator"], s["task"], s["rig_id"], "", "", "", ""]
            )
            for e in s.get("episodes", []):
                q = e.get("quality", {})
                QTreeWidgetItem(
                    top,
                    [
                        e["file"],
                        "",
                        "",
                        "",
                        e.get("status", ""),
                        f"{e.get('duration_s', 0):.1f}",
                        f"{q.get('achieved_rate_hz', 0):.1f}",
                        "; ".join(q.get("flags", [])) or "ok",
                    ],
                )
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        for col in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(col)
        self.count.setText(
            f"{len(sessions)} sessions in {self.data_root}"
            if sessions
            else f"No sessions in {self.data_root} yet: record one here or with `teleop record`."
        )


class SessionsWindow(QMainWindow):
    """The overview as a window of its own (``teleop-gui --screenshot``)."""

    def __init__(self, data_root: Path):
        super().__init__()
        self.setWindowTitle(f"teleop — sessions in {data_root}")
        self.view = SessionsView(data_root)
        self.tree = self.view.tree
        self.setCentralWidget(self.view)
        self.resize(1100, 500)
