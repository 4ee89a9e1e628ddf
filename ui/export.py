"""The export screen: chosen episodes → a bundle, a LeRobot v3 dataset or ACT/ALOHA HDF5.

The export runs on the screen's own worker thread. The exporter reports
``progress(done, total, what)`` on that thread, as often as it likes; :class:`ProgressRelay`
passes at most ~10 updates a second to the GUI thread by a queued signal, and raises
:class:`ExportCancelled` from inside the exporter's call once Cancel was pressed, so the
exporter's ``atomic_output`` removes its temporary output and nothing is left under the final
name. A bundle is verified again after it is written, with the same check an import runs.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from teleop.user_errors import describe
from ui.sessions import Row, format_bytes
from ui.style import ERROR_STYLE, GREEN, GREY, TITLE_STYLE
from ui.worker import EngineWorker

FORMATS = {
    "bundle": "Bundle (MCAP + manifest, checksums, datasheet)",
    "lerobot": "LeRobot dataset v3",
    "hdf5": "ACT/ALOHA HDF5",
}
PROGRESS_INTERVAL_S = 0.1  # ~10 Hz: a smooth bar without flooding the GUI thread's queue
BAR_STEPS = 1000


class ExportCancelled(Exception):
    """Raised inside the exporter's progress call when the user pressed Cancel."""

    output_exists = False
    """Set on the worker thread after the exporter unwound: whether the final name exists."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export, as chosen on the screen."""

    kind: str
    """One of :data:`FORMATS`."""
    rows: list[Row]
    out: Path
    where: str = ""
    pseudonymize: bool = False
    fps: float = 30.0


@dataclass(frozen=True)
class ExportOutcome:
    """What was written and how it was checked."""

    out: Path
    checked: str
    """One line: the bundle's verification, or the counts the exporter returned."""


def _stale(stale_frames: dict[str, int], flagged_episodes: tuple[str, ...]) -> str:
    n = sum(stale_frames.values())
    if not n:
        return "every row has a frame within half a period"
    return (
        f"{n} rows without a frame within half a period (an earlier frame used) in "
        f"{len(flagged_episodes)} episodes"
    )


def run_export(request: ExportRequest, data_root: Path, progress: ProgressRelay) -> ExportOutcome:
    """Run one export (on a worker thread) and check what it wrote.

    The exporters are imported here, when used: they pull in pyarrow, PyAV and h5py, which
    the recording screens never need.
    """
    paths = [Path(r["path"]) for r in request.rows]
    if request.kind == "bundle":
        from teleop.export.bundle import export_bundle
        from teleop.export.bundle_import import verify_bundle

        export_bundle(
            request.rows,
            data_root,
            request.out,
            pseudonymize=request.pseudonymize,
            progress=progress,
            query=request.where or None,
        )
        # The same check an import runs, on what was written. Not cancellable: the bundle is
        # already complete under its final name.
        verified = verify_bundle(
            request.out, progress=lambda d, t, what: progress.report(d, t, f"verifying {what}")
        )
        return ExportOutcome(
            request.out,
            f"verified: {verified.files} files, sha256 OK ({format_bytes(verified.bytes)})",
        )
    if request.kind == "lerobot":
        from teleop.export.lerobot import export_lerobot

        lr = export_lerobot(paths, request.out, fps=request.fps, progress=progress)
        return ExportOutcome(
            request.out,
            f"{lr.episodes} episodes, {lr.frames} frames at {request.fps:g} fps, {lr.tasks} "
            f"tasks, {len(lr.cameras)} camera videos ({lr.codec}); "
            + _stale(lr.stale_frames, lr.flagged_episodes),
        )
    if request.kind == "hdf5":
        from teleop.export.hdf5_aloha import export_hdf5_aloha

        h5 = export_hdf5_aloha(paths, request.out, progress=progress)
        return ExportOutcome(
            request.out,
            f"{len(h5.files)} files, {h5.rows} rows, {len(h5.cameras)} cameras; "
            + _stale(h5.stale_frames, h5.flagged_episodes),
        )
    raise ValueError(f"unknown export format {request.kind!r}")


class ProgressRelay(QObject):
    """The exporter's ``progress`` callback: throttled, queued to the GUI, cancellable.

    Called on the worker thread. ``progressed`` carries ``(done, total, what)`` as one tuple
    (byte counts may not fit a C++ int).
    """

    progressed = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.cancel = threading.Event()
        self._last_s = 0.0

    def reset(self) -> None:
        self.cancel.clear()
        self._last_s = 0.0

    def __call__(self, done: int, total: int, what: str) -> None:
        if self.cancel.is_set():
            raise ExportCancelled("cancelled by the user")
        self.report(done, total, what)

    def report(self, done: int, total: int, what: str) -> None:
        """Pass an update on (throttled), without the cancel check."""
        now = time.monotonic()
        if now - self._last_s >= PROGRESS_INTERVAL_S or done >= total:
            self._last_s = now
            self.progressed.emit((done, total, what))


class HoldingRelay(ProgressRelay):
    """A relay that holds the export once ``hold_at`` (0..1) of it is done, until
    :meth:`release`: for the mid-export screenshot and for cancelling mid-way in tests."""

    def __init__(self, hold_at: float, parent: QObject | None = None):
        super().__init__(parent)
        self.hold_at = hold_at
        self.held = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def __call__(self, done: int, total: int, what: str) -> None:
        super().__call__(done, total, what)
        if self._released.is_set() or total <= 0 or done < self.hold_at * total:
            return
        self.progressed.emit((done, total, what))  # the bar shows where it holds
        self.held.set()
        deadline_s = time.monotonic() + 60.0
        while not (self._released.wait(0.05) or self.cancel.is_set()):
            if time.monotonic() > deadline_s:
                break
        if self.cancel.is_set():
            raise ExportCancelled("cancelled by the user")


class ExportView(QWidget):
    """The export screen; :meth:`set_episodes` fills it from the browser, ``back`` leaves."""

    back = Signal()

    def __init__(
        self, data_root: Path, parent: QWidget | None = None, *, relay: ProgressRelay | None = None
    ):
        super().__init__(parent)
        self.data_root = Path(data_root)
        self.worker = EngineWorker(self)
        self.relay = relay or ProgressRelay(self)
        # Queued: the relay emits on the worker thread; the bar lives on the GUI thread.
        self.relay.progressed.connect(self._progress, Qt.ConnectionType.QueuedConnection)
        self.selected: list[Row] = []
        self.matching: list[Row] = []
        self.where = ""
        self.outcome: ExportOutcome | None = None
        self._running: ExportRequest | None = None

        title = QLabel("Export")
        title.setStyleSheet(TITLE_STYLE)

        self.use_selected = QRadioButton()
        self.use_matching = QRadioButton()
        self.scope = QButtonGroup(self)
        self.scope.addButton(self.use_selected)
        self.scope.addButton(self.use_matching)
        self.use_matching.setChecked(True)
        self.scope.buttonToggled.connect(lambda *_: self._update_summary())
        self.summary = QLabel()

        self.kind = QComboBox()
        for key, text in FORMATS.items():
            self.kind.addItem(text, key)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.as_tar = QCheckBox("One .tar file instead of a folder")
        self.as_tar.toggled.connect(lambda _on: self._fix_suffix())
        self.pseudonymize = QCheckBox("Pseudonymize operators (operator-1, operator-2, …)")
        self.fps = QDoubleSpinBox()
        self.fps.setRange(1.0, 1000.0)
        self.fps.setDecimals(1)
        self.fps.setValue(30.0)
        self.fps.setSuffix(" fps")
        self.fps.setMaximumWidth(160)
        self.options = QStackedWidget()
        bundle_box = QWidget()
        bundle_layout = QVBoxLayout(bundle_box)
        bundle_layout.setContentsMargins(0, 0, 0, 0)
        bundle_layout.addWidget(self.as_tar)
        bundle_layout.addWidget(self.pseudonymize)
        lerobot_box = QWidget()
        lerobot_layout = QFormLayout(lerobot_box)
        lerobot_layout.setContentsMargins(0, 0, 0, 0)
        lerobot_layout.addRow("Frame rate", self.fps)
        hdf5_note = QLabel("One episode_N.hdf5 per episode, one row per control cycle.")
        hdf5_note.setStyleSheet(f"color: {GREY};")
        for page in (bundle_box, lerobot_box, hdf5_note):
            self.options.addWidget(page)

        self.out = QLineEdit()
        self.out.setPlaceholderText("Where to write: a new folder (or .tar file)")
        self.out.textChanged.connect(lambda _t: self._update_buttons())
        self.out.editingFinished.connect(self._fix_suffix)
        self.browse = QPushButton("Choose…")
        self.browse.clicked.connect(self._choose)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(self.browse)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, BAR_STEPS)
        self.progress_what = QLabel()
        self.progress_what.setStyleSheet(f"color: {GREY};")
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.back_button = QPushButton("Back")
        self.back_button.clicked.connect(self.back)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)

        form = QFormLayout()
        scope_box = QVBoxLayout()
        scope_box.addWidget(self.use_selected)
        scope_box.addWidget(self.use_matching)
        scope_box.addWidget(self.summary)
        form.addRow("Episodes", scope_box)
        form.addRow("Format", self.kind)
        form.addRow("", self.options)
        form.addRow("Output", out_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.back_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addSpacing(12)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_what)
        layout.addWidget(self.result)
        layout.addStretch(1)
        layout.addLayout(buttons)
        self._kind_changed()

    # -- filling -----------------------------------------------------------------------------
    def set_episodes(self, selected: list[Row], matching: list[Row], where: str = "") -> None:
        """The browser's selected rows and every row its filters show (and its SQL clause)."""
        self.selected = list(selected)
        self.matching = list(matching)
        self.where = where
        self.use_selected.setText(f"Selected rows ({len(self.selected)})")
        self.use_matching.setText(f"All rows matching the current filter ({len(self.matching)})")
        self.use_selected.setEnabled(bool(self.selected))
        (self.use_selected if self.selected else self.use_matching).setChecked(True)
        if not self._running:
            self.progress_bar.setValue(0)
            self.progress_what.setText("")
            self.result.setText("")
            if not self.out.text().strip():
                self._suggest_out()
        self._update_summary()

    @property
    def rows(self) -> list[Row]:
        """The episodes the export will take."""
        return self.selected if self.use_selected.isChecked() else self.matching

    @property
    def kind_key(self) -> str:
        return str(self.kind.currentData())

    def _update_summary(self) -> None:
        rows = self.rows
        size = sum(int(r.get("bytes") or 0) for r in rows)
        damaged = sum(not r.get("readable", 1) for r in rows)
        text = f"{len(rows)} episode{'s' * (len(rows) != 1)}, {format_bytes(size)}"
        if self.where and rows is self.matching:
            text += f", selected by: {self.where}"
        if damaged:
            text += f" — {damaged} damaged (recover them first, or the export stops on them)"
        self.summary.setText(text)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self._running is not None
        self.export_button.setEnabled(
            not running and bool(self.rows) and bool(self.out.text().strip())
        )
        self.cancel_button.setEnabled(running)
        self.back_button.setEnabled(not running)
        for w in (
            self.kind,
            self.options,
            self.out,
            self.browse,
            self.use_selected,
            self.use_matching,
        ):
            w.setEnabled(not running)
        if not running:
            self.use_selected.setEnabled(bool(self.selected))

    def _kind_changed(self) -> None:
        self.options.setCurrentIndex(self.kind.currentIndex())
        self._fix_suffix()

    def _suggest_out(self) -> None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out.setText(str(Path.home() / f"teleop-{self.kind_key}-{stamp}"))
        self._fix_suffix()

    def output_path(self) -> Path:
        """The output path typed, with ``.tar`` added or removed to match the tar option."""
        text = self.out.text().strip()
        if self.kind_key == "bundle" and self.as_tar.isChecked():
            text = text if text.endswith(".tar") else text + ".tar"
        else:
            text = text.removesuffix(".tar")
        return Path(text).expanduser()

    def _fix_suffix(self) -> None:
        if self.out.text().strip():
            self.out.setText(str(self.output_path()))

    def _choose(self) -> None:
        tar = self.kind_key == "bundle" and self.as_tar.isChecked()
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export to (a new .tar file)" if tar else "Export to (a new folder)",
            self.out.text().strip() or str(Path.home()),
            "Tar files (*.tar)" if tar else "",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.out.setText(path)
            self._fix_suffix()

    # -- running -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running is not None

    def request(self) -> ExportRequest:
        """The export as currently chosen on the screen."""
        return ExportRequest(
            kind=self.kind_key,
            rows=list(self.rows),
            out=self.output_path(),
            where=self.where,
            pseudonymize=self.pseudonymize.isChecked(),
            fps=self.fps.value(),
        )

    def start(self) -> None:
        """Start the export on the worker thread."""
        if self._running is not None or not self.rows or not self.out.text().strip():
            return
        request = self.request()
        self._running = request
        self.outcome = None
        self.relay.reset()
        self.progress_bar.setValue(0)
        self.progress_what.setText("Starting…")
        self.result.setText("")
        self._update_buttons()
        root = self.data_root
        relay = self.relay

        def job() -> ExportOutcome:
            try:
                return run_export(request, root, relay)
            except ExportCancelled as exc:
                exc.output_exists = request.out.exists()  # checked here: no disk on the GUI
                raise

        self.worker.submit(job, self._done, self._failed)

    def cancel(self) -> None:
        """Stop the export at the exporter's next progress call."""
        if self._running is not None:
            self.relay.cancel.set()
            self.progress_what.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    @Slot(object)
    def _progress(self, update: tuple[int, int, str]) -> None:
        if self._running is None or self.relay.cancel.is_set():
            return  # a late update from an export that ended or is being cancelled
        done, total, what = update
        self.progress_bar.setValue(int(BAR_STEPS * done / total) if total > 0 else 0)
        # Bundles count bytes; the training exports count frames.
        if self._running.kind == "bundle":
            amount = f"{format_bytes(done)} of {format_bytes(total)}"
        else:
            amount = f"{done} of {total}"
        self.progress_what.setText(f"{amount} · {what}")

    def _done(self, outcome: ExportOutcome) -> None:
        self._running = None
        self.outcome = outcome
        self.progress_bar.setValue(BAR_STEPS)
        self.progress_what.setText("Done.")
        self.result.setStyleSheet(f"color: {GREEN}; font-weight: bold;")
        self.result.setText(f"Written: {outcome.out}\n{outcome.checked}")
        self._update_buttons()

    def _failed(self, exc: BaseException) -> None:
        request = self._running
        self._running = None
        self._update_buttons()
        self.progress_bar.setValue(0)
        self.result.setStyleSheet(ERROR_STYLE)
        if isinstance(exc, ExportCancelled) and request is not None:
            self.progress_what.setText("Cancelled.")
            if exc.output_exists:
                self.result.setText(f"Cancelled, but {request.out} exists: check it before use.")
                return
            self.result.setText(f"Cancelled: nothing was written under {request.out}.")
            self.result.setStyleSheet(f"color: {GREY};")
            return
        self.progress_what.setText("Failed.")
        self.result.setText(describe(exc))
