"""The sessions browser: every catalogued episode in one sortable, filterable table.

Rows come from the catalog (:func:`teleop.catalog.query`), which is refreshed and queried on
the browser's own worker thread (:class:`ui.worker.EngineWorker`): the GUI thread never reads
a file. The table model holds the catalog rows as they came; a
:class:`EpisodeFilter` (a ``QSortFilterProxyModel``) sorts by any column and applies the quick
filters (text, task, operator, rig, label status, flagged only) without another query. The
"advanced" field is a SQL ``WHERE`` clause run by the catalog itself; its errors show inline.

What a reviewer sees in the table (filtered and sorted) is the order the Review screen steps
through with next/previous.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from teleop.catalog import CatalogError, query
from teleop.catalog import problems as catalog_problems
from teleop.user_errors import describe
from ui.style import AMBER, AMBER_BG, ERROR_STYLE, GREY, RED, RED_BG, TITLE_STYLE
from ui.worker import EngineWorker

Row = dict[str, Any]
"""One catalog row (:data:`teleop.catalog.COLUMN_NAMES` plus ``path``)."""

COLUMNS = ("date", "session", "operator", "rig", "task", "duration", "quality flags", "label")
ANY = "any"
MAX_COLUMN_PX = 320  # wider cells are cut; their whole text is in the row's tooltip
LABEL_FILTERS = (ANY, "unlabelled", "success", "failure", "unsure", "disagreement")


def label_status(row: Row) -> str:
    """What the label column says: latest label and who gave it, or that reviewers differ."""
    if not row.get("labelled"):
        return "unlabelled"
    text = f"{row['label']} ({row['label_reviewer']})"
    if row.get("disagreement"):
        text += f" · {row.get('reviewers', 2)} reviewers disagree"
    return text


def format_bytes(n: float) -> str:
    """``1.5 GB``-style sizes for counts of bytes."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def flag_list(row: Row) -> list[str]:
    """The row's quality flags, each with its details."""
    return [f.strip() for f in str(row.get("flags") or "").split("; ") if f.strip()]


def _cell(row: Row, column: int) -> tuple[str, Any]:
    """(display text, sort key) of one cell."""
    match COLUMNS[column]:
        case "date":
            start = row.get("start_utc") or ""
            return start[:16].replace("T", " "), start
        case "session":
            index = row.get("episode_index") or 0
            return f"{row['session']} · ep {index}", (row["session"], index)
        case "duration":
            d = row.get("duration_s")
            return ("?" if d is None else f"{d:.1f} s"), (d if d is not None else -1.0)
        case "quality flags":
            # The flag names only ("rate_low; jitter_high"); the details are in the tooltip.
            text = "; ".join(f.split(":")[0].strip() for f in flag_list(row))
            if not row.get("readable", 1):
                text = "DAMAGED" + (f"; {text}" if text else "")
            return text, (not row.get("readable", 1), row.get("flag_count") or 0, text)
        case "label":
            text = label_status(row)
            return text, text
        case name:
            value = str(row.get(name) or "")
            return value, value


class EpisodeTableModel(QAbstractTableModel):
    """Catalog rows as a read-only table."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: list[Row] = []
        # Per row: each cell's (text, sort key), and the lower-case text the search looks in.
        # Worked out once per row: sorting and filtering call for them many times per row.
        self.cells: list[list[tuple[str, Any]]] = []
        self.haystacks: list[str] = []
        self.sorted_by: tuple[int, Qt.SortOrder] | None = None

    def set_rows(self, rows: Sequence[Row]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.cells = [self._cells(r) for r in self.rows]
        self.haystacks = [self._haystack(r, c) for r, c in zip(self.rows, self.cells, strict=True)]
        self.endResetModel()
        if self.sorted_by is not None:
            self.sort(*self.sorted_by)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Reorder the rows by ``column`` (stable), keeping selections on their rows."""
        self.sorted_by = (column, order)
        self.layoutAboutToBeChanged.emit()
        new_order = sorted(
            range(len(self.rows)),
            key=lambda i: self.cells[i][column][1],
            reverse=order == Qt.SortOrder.DescendingOrder,
        )
        moved_to = {old: new for new, old in enumerate(new_order)}
        self.rows = [self.rows[i] for i in new_order]
        self.cells = [self.cells[i] for i in new_order]
        self.haystacks = [self.haystacks[i] for i in new_order]
        before = self.persistentIndexList()
        after = [self.index(moved_to[i.row()], i.column()) for i in before]
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    def replace_row(self, row: Row) -> bool:
        """Swap in a fresh copy of the row with the same ``episode_id``; False if not shown."""
        for i, old in enumerate(self.rows):
            if old["episode_id"] == row["episode_id"]:
                self.rows[i] = row
                self.cells[i] = self._cells(row)
                self.haystacks[i] = self._haystack(row, self.cells[i])
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))
                if self.sorted_by is not None:  # e.g. a new label moves it in the label order
                    self.sort(*self.sorted_by)
                return True
        return False

    @staticmethod
    def _cells(row: Row) -> list[tuple[str, Any]]:
        return [_cell(row, c) for c in range(len(COLUMNS))]

    @staticmethod
    def _haystack(row: Row, cells: list[tuple[str, Any]]) -> str:
        extra = [str(row.get(k) or "") for k in ("tags", "notes", "failure_reason", "flags")]
        return " ".join([*(text for text, _ in cells), *extra, row["episode_id"]]).lower()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(  # noqa: N802 (Qt's name)
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        damaged = not row.get("readable", 1)
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cells[index.row()][index.column()][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            if damaged:
                return f"Damaged file: {row.get('read_error')}\nOpen it to recover it."
            return "\n".join([row["episode_id"], str(row.get("path", "")), *flag_list(row)])
        if role == Qt.ItemDataRole.ForegroundRole and damaged:
            return QColor(RED)
        if role == Qt.ItemDataRole.BackgroundRole:
            if damaged:
                return QColor(RED_BG)
            if COLUMNS[index.column()] == "label" and row.get("disagreement"):
                return QColor(AMBER_BG)
        return None


class EpisodeFilter(QSortFilterProxyModel):
    """The quick filters over :class:`EpisodeTableModel`; sorting is the source model's."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.text = ""
        """Lower-case search text."""
        self.task = ANY
        self.operator = ANY
        self.rig = ANY
        self.label = ANY
        self.flagged_only = False

    def set_filters(self, **values: Any) -> None:
        """Change any of text, task, operator, rig, label, flagged_only and re-filter."""
        self.beginFilterChange()
        for name, value in values.items():
            if not hasattr(self, name):
                raise AttributeError(f"no filter named {name!r}")
            setattr(self, name, value)
        self.endFilterChange()

    def filterAcceptsRow(  # noqa: N802 (Qt's name)
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        assert isinstance(model, EpisodeTableModel)
        row = model.rows[source_row]
        for name in ("task", "operator", "rig"):
            want = getattr(self, name)
            if want != ANY and row.get(name) != want:
                return False
        if self.flagged_only and not (row.get("flagged") or not row.get("readable", 1)):
            return False
        if self.label != ANY:
            if self.label == "unlabelled" and row.get("labelled"):
                return False
            if self.label == "disagreement" and not row.get("disagreement"):
                return False
            if self.label in ("success", "failure", "unsure") and row.get("label") != self.label:
                return False
        return not self.text or self.text in model.haystacks[source_row]

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        # The source model sorts (one Python sort by cached keys, ~10 ms for 10,000 rows); the
        # proxy's own sort would call back into Python for every comparison (~1 s), and its
        # keys are tuples and floats a QVariant cannot order. The proxy keeps the source order.
        model = self.sourceModel()
        assert isinstance(model, EpisodeTableModel)
        model.sort(column, order)


class SessionsView(QWidget):
    """The browser screen: catalog rows in a table, filters, and the QA actions.

    Signals:
        review_requested(rows, index): open the Review screen on ``rows[index]``; ``rows``
            are the shown rows in the shown order.
        export_requested(selected, shown, where): open the Export screen with the selected
            rows, every shown row, and the SQL clause that selected them ("" when none).
        back: leave the browser.
    """

    review_requested = Signal(object, int)
    export_requested = Signal(object, object, str)
    back = Signal()

    def __init__(self, data_root: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.data_root = Path(data_root)
        # Its own thread: a catalog refresh must not wait behind a rig opening, nor block one.
        self.worker = EngineWorker(self)
        self._generation = 0
        self.loaded_where: str | None = None
        """The clause of the last query that succeeded (None before the first)."""

        self.model = EpisodeTableModel(self)
        self.proxy = EpisodeFilter(self)
        self.proxy.setSourceModel(self.model)

        title = QLabel("Sessions")
        title.setStyleSheet(TITLE_STYLE)
        self.where_root = QLabel(f"Data root: {self.data_root}")
        self.where_root.setStyleSheet(f"color: {GREY};")

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search episode, session, operator, task, tags, notes…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda t: self.proxy.set_filters(text=t.strip().lower()))
        self.task = self._combo("task")
        self.operator = self._combo("operator")
        self.rig = self._combo("rig")
        self.label = QComboBox()
        self.label.addItems(LABEL_FILTERS)
        self.label.currentTextChanged.connect(lambda t: self.proxy.set_filters(label=t))
        self.flagged = QCheckBox("Flagged only")
        self.flagged.toggled.connect(lambda on: self.proxy.set_filters(flagged_only=on))

        self.sql = QLineEdit()
        self.sql.setPlaceholderText("Advanced: SQL where, e.g. duration_s > 10 AND label IS NULL")
        self.sql.setClearButtonEnabled(True)
        self.sql.returnPressed.connect(self.reload)
        self.sql_error = QLabel()
        self.sql_error.setStyleSheet(ERROR_STYLE)
        self.sql_error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # One line, cut at the window's edge (the whole message is its tooltip): a long
        # message must not widen the window.
        self.sql_error.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.sql_error.hide()

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)  # newest first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)  # one line per episode; cut text is in the tooltip
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setResizeContentsPrecision(200)  # widths from 200 rows, not every row
        # Enter and double-click both "activate" a row (Qt's platform-neutral signal).
        self.table.activated.connect(lambda _i: self.open_review())

        self.count = QLabel()
        self.status = QLabel()
        self.status.setStyleSheet(f"color: {GREY};")
        self.problems = QLabel()
        self.problems.setStyleSheet(f"color: {AMBER};")
        self.review_button = QPushButton("Review")
        self.review_button.clicked.connect(self.open_review)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._export)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.reload)
        self.back_button = QPushButton("Back")
        self.back_button.clicked.connect(self.back)
        # The count sums every shown row: once per event-loop turn, not once per signal (a
        # filter change removes rows range by range, which made it quadratic).
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(0)
        self._count_timer.timeout.connect(self._update_count)
        for signal in (
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
            self.proxy.modelReset,
            self.proxy.layoutChanged,
            self.table.selectionModel().selectionChanged,
        ):
            signal.connect(self._count_timer.start)

        filters = QHBoxLayout()
        filters.addWidget(self.search, 3)
        for name, widget in (
            ("Task", self.task),
            ("Operator", self.operator),
            ("Rig", self.rig),
            ("Label", self.label),
        ):
            filters.addWidget(QLabel(name))
            filters.addWidget(widget, 1)
        filters.addWidget(self.flagged)
        buttons = QHBoxLayout()
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.count)
        buttons.addStretch(1)
        buttons.addWidget(self.problems)
        buttons.addWidget(self.status)
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.review_button)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.where_root)
        layout.addLayout(filters)
        layout.addWidget(self.sql)
        layout.addWidget(self.sql_error)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._update_count()

    def _combo(self, column: str) -> QComboBox:
        combo = QComboBox()
        combo.addItem(ANY)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        combo.currentTextChanged.connect(lambda t: self.proxy.set_filters(**{column: t or ANY}))
        return combo

    # -- loading (worker thread) --------------------------------------------------------------
    @property
    def loading(self) -> bool:
        """True while a refresh or query has not come back."""
        return self.worker.busy

    def reload(self) -> None:
        """Refresh the catalog from the files and run the SQL clause, off the GUI thread."""
        self._generation += 1
        generation = self._generation
        where = self.sql.text().strip()
        root = self.data_root
        self.status.setText("Loading…")

        def load() -> tuple[list[Row], list[str]]:
            rows = query(root, where or None)  # refreshes the catalog from the files first
            return rows, catalog_problems(root)

        self.worker.submit(
            load,
            lambda got: self._loaded(generation, where, *got),
            lambda exc: self._failed(generation, exc),
        )

    def _loaded(self, generation: int, where: str, rows: list[Row], problems: list[str]) -> None:
        if generation != self._generation:
            return  # a newer query was asked for; its answer is the one to show
        self.loaded_where = where
        self.sql_error.hide()
        self.status.setText("")
        # Unreadable manifests, malformed label lines, damaged files: counted here, each one
        # in the tooltip (the rest of the data root still loads).
        self.problems.setText(
            f"{len(problems)} problem{'s' * (len(problems) != 1)} in the data root (hover)"
            if problems
            else ""
        )
        self.problems.setToolTip("\n".join(problems))
        for column, combo in (("task", self.task), ("operator", self.operator), ("rig", self.rig)):
            keep = combo.currentText()
            values = sorted({str(r[column]) for r in rows if r.get(column)})
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([ANY, *values])
            combo.setCurrentText(keep if keep in values else ANY)
            combo.blockSignals(False)
            self.proxy.set_filters(**{column: combo.currentText()})
        self.model.set_rows(rows)
        self.table.resizeColumnsToContents()
        for c in range(len(COLUMNS) - 1):  # the last column stretches
            self.table.setColumnWidth(c, min(self.table.columnWidth(c), MAX_COLUMN_PX))
        self._update_count()

    def _failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        # The table keeps the rows of the last query that ran; the error says why this one did
        # not. The catalog words it for the CLI's --where; here the field is the clause.
        self.status.setText("(rows of the last query that ran)")
        text = str(exc) if isinstance(exc, CatalogError) else describe(exc)
        line = (text.splitlines() or [type(exc).__name__])[0].replace("--where ", "where ", 1)
        self.sql_error.setText(line)
        self.sql_error.setToolTip(line)
        self.sql_error.show()

    def refresh_episode(self, episode_id: str) -> None:
        """Re-read one episode's row (e.g. after a label was saved) and update it in place."""
        clause = "episode_id = '{}'".format(episode_id.replace("'", "''"))
        root = self.data_root
        self.worker.submit(lambda: query(root, clause), self._replace_rows)

    def _replace_rows(self, rows: list[Row]) -> None:
        for row in rows:
            self.model.replace_row(row)
        self.proxy.set_filters()  # a new label may move the row in or out of the label filter
        self._update_count()

    # -- what is shown ----------------------------------------------------------------------
    def shown_rows(self) -> list[Row]:
        """The rows as shown: filtered and in the table's sort order."""
        return [
            self.model.rows[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
            for r in range(self.proxy.rowCount())
        ]

    def selected_rows(self) -> list[Row]:
        """The selected rows, in the table's order."""
        picked = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [
            self.model.rows[self.proxy.mapToSource(self.proxy.index(r, 0)).row()] for r in picked
        ]

    def _update_count(self) -> None:
        shown = self.proxy.rowCount()
        total = len(self.model.rows)
        size = sum(int(r.get("bytes") or 0) for r in self.shown_rows())
        selected = len(self.table.selectionModel().selectedRows())
        text = f"{shown} of {total} episodes shown ({format_bytes(size)})"
        if selected:
            text += f", {selected} selected"
        if not total and self.loaded_where == "":
            text = f"No episodes in {self.data_root} yet: record some here or with `teleop record`."
        self.count.setText(text)
        self.review_button.setEnabled(shown > 0)
        self.export_button.setEnabled(shown > 0)

    # -- actions ----------------------------------------------------------------------------
    def open_review(self) -> None:
        """Review the current row, with the shown rows as the list to step through."""
        rows = self.shown_rows()
        if not rows:
            return
        current = self.table.currentIndex()
        self.review_requested.emit(rows, current.row() if current.isValid() else 0)

    def _export(self) -> None:
        self.export_requested.emit(self.selected_rows(), self.shown_rows(), self.loaded_where or "")


class SessionsWindow(QMainWindow):
    """The browser as a window of its own (``teleop-gui --screenshot``)."""

    def __init__(self, data_root: Path):
        super().__init__()
        self.setWindowTitle(f"teleop — sessions in {data_root}")
        self.view = SessionsView(data_root)
        self.view.back_button.hide()
        self.setCentralWidget(self.view)
        self.resize(1300, 600)
        self.view.reload()
