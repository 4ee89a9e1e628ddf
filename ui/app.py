"""``teleop-gui``: the desktop app. For now, a sessions overview of the data root.

The record, replay/label and export screens arrive with their issues; this window already
lists every session and episode with its quality flags, read from ``session.json`` files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from teleop.session import SESSION_FILE, resolve_data_root


def load_sessions(data_root: Path) -> list[dict]:
    """Every readable session manifest under ``data_root``, newest first."""
    out = []
    for f in sorted(data_root.glob(f"*/{SESSION_FILE}"), reverse=True):
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


class SessionsWindow(QMainWindow):
    """Sessions and their episodes, with rate and quality flags."""

    def __init__(self, data_root: Path):
        super().__init__()
        self.setWindowTitle(f"teleop — sessions in {data_root}")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(
            ["session / episode", "operator", "task", "rig", "duration s", "rate Hz", "flags"]
        )
        sessions = load_sessions(data_root)
        for s in sessions:
            top = QTreeWidgetItem(
                [s["session_id"], s["operator"], s["task"], s["rig_id"], "", "", ""]
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
                        f"{e.get('duration_s', 0):.1f}",
                        f"{q.get('achieved_rate_hz', 0):.1f}",
                        "; ".join(q.get("flags", [])) or "ok",
                    ],
                )
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        for col in range(7):
            self.tree.resizeColumnToContents(col)
        body = QWidget()
        layout = QVBoxLayout(body)
        count = QLabel(
            f"{len(sessions)} sessions in {data_root}"
            if sessions
            else f"No sessions in {data_root} yet: record one with `teleop record`."
        )
        layout.addWidget(count)
        layout.addWidget(self.tree)
        self.setCentralWidget(body)
        self.resize(1100, 500)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="teleop-gui")
    p.add_argument("--data-dir", help="data root (default $TELEOP_DATA_DIR or ./sessions)")
    p.add_argument("--screenshot", metavar="PNG", help="render the window to PNG and exit")
    args = p.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = SessionsWindow(resolve_data_root(args.data_dir))
    if args.screenshot:
        window.show()
        app.processEvents()
        window.grab().save(args.screenshot)
        return 0
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
