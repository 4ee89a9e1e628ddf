"""The replay view: every camera and the joint plots of one episode, in sync, with a timeline.

:class:`ReplayView` is a widget the review screen embeds. A :class:`~teleop.playback.Player`
does the work on its own thread (it reads and decodes only the chunks around the playhead);
one QTimer (``TICK_MS``) picks up its newest ready snapshot, so the GUI thread never reads a
chunk or decodes an image, and no signal is sent per frame. Opening reads only the file's
summary, which is why :meth:`ReplayView.open_episode` can raise ``EpisodeReadError`` at once.

:func:`open_with_recovery` opens a file the user picked and, if it is damaged, offers
``teleop recover`` (run off the GUI thread) and returns the rebuilt file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEventLoop, QObject, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from teleop.episode.reader import EpisodeReadError
from teleop.episode.recover import recover
from teleop.errors import TeleopError
from teleop.playback import SPEEDS, EpisodeReader, Frame, JointSeries, Mark, Player, Snapshot
from teleop.session import register_recovered
from ui.camera_tile import frame_to_pixmap
from ui.style import AMBER, GREEN, GREY, RED, WARN_BANNER_STYLE

log = logging.getLogger(__name__)

TICK_MS = 33  # ~30 Hz: every frame of a 30 fps camera at 1x
PLOT_EVERY = 3  # plots redraw at ~10 Hz while playing: pyqtgraph repaints are the GUI's cost
WINDOW_S = 5.0  # the plots show the playhead ± this
_MARK_COLOURS = {"event": GREY, "mark": "#1565c0", "fault": RED, "quality": AMBER}
_ALL_JOINTS = "all joints"


def format_time(t_ns: int) -> str:
    """``m:ss.mmm`` for a position in ns."""
    ms = max(0, int(t_ns)) // 1_000_000
    return f"{ms // 60000}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


class Timeline(QWidget):
    """The episode's time axis: click or drag anywhere to seek; marks for events, quality
    flags and labels; a red playhead."""

    # Signal("qint64") is how PySide spells a 64-bit int; its stubs know only types.
    seekRequested = Signal("qint64")  # type: ignore[arg-type]  # noqa: N815 - Qt naming

    MARGIN = 10

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.duration_ns = 0
        self.position_ns = 0
        self.marks: list[Mark] = []
        self.extra: list[tuple[int, str]] = []
        self.setMinimumHeight(44)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)  # tooltips of marks under the pointer
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_duration(self, duration_ns: int) -> None:
        self.duration_ns = max(0, duration_ns)
        self.update()

    def set_position(self, position_ns: int) -> None:
        if position_ns != self.position_ns:
            self.position_ns = position_ns
            self.update()

    def set_marks(self, marks: list[Mark]) -> None:
        self.marks = list(marks)
        self.update()

    def set_extra_marks(self, marks: list[tuple[int, str]]) -> None:
        self.extra = [(int(t), str(text)) for t, text in marks]
        self.update()

    def x_of(self, t_ns: int) -> int:
        """Pixel column of a time (public so tests can click at a time)."""
        width = max(1, self.width() - 2 * self.MARGIN)
        frac = t_ns / self.duration_ns if self.duration_ns else 0.0
        return self.MARGIN + round(min(max(frac, 0.0), 1.0) * width)

    def t_of(self, x: float) -> int:
        width = max(1, self.width() - 2 * self.MARGIN)
        frac = min(max((x - self.MARGIN) / width, 0.0), 1.0)
        return round(frac * self.duration_ns)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        h = self.height()
        track = QRect(self.MARGIN, h // 2 - 4, self.width() - 2 * self.MARGIN, 8)
        p.fillRect(track, QColor("#d8d8d8"))
        if self.duration_ns:
            p.fillRect(
                QRect(track.left(), track.top(), self.x_of(self.position_ns) - track.left(), 8),
                QColor("#90a4ae"),
            )
        for m in self.marks:
            p.setPen(QPen(QColor(_MARK_COLOURS.get(m.category, GREY)), 2))
            x = self.x_of(m.t_ns)
            p.drawLine(x, 4, x, h - 4)
        p.setPen(QPen(QColor(GREEN), 2))
        p.setBrush(QColor(GREEN))
        for t, _ in self.extra:
            x = self.x_of(t)
            p.drawPolygon([QPoint(x - 5, h - 2), QPoint(x + 5, h - 2), QPoint(x, h - 10)])
        x = self.x_of(self.position_ns)
        p.setPen(QPen(QColor(RED), 3))
        p.drawLine(x, 2, x, h - 2)
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton and self.duration_ns:
            self.seekRequested.emit(self.t_of(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        x = event.position().x()
        if event.buttons() & Qt.MouseButton.LeftButton and self.duration_ns:
            self.seekRequested.emit(self.t_of(x))
            return
        near = [m.text for m in self.marks if abs(self.x_of(m.t_ns) - x) <= 3]
        near += [text for t, text in self.extra if abs(self.x_of(t) - x) <= 5]
        tip = "\n".join(near) if near else format_time(self.t_of(x))
        QToolTip.showText(event.globalPosition().toPoint(), tip, self)


class CameraView(QFrame):
    """One camera: the frame nearest the playhead, its stamp, and a depth toggle."""

    def __init__(self, name: str, has_depth: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(name)
        self.title.setStyleSheet("font-weight: bold;")
        self.stamp_label = QLabel("")
        self.stamp_label.setStyleSheet("color: #555; font-family: monospace;")
        self.depth_box: QCheckBox | None = None
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.stamp_label)
        if has_depth:
            self.depth_box = QCheckBox("depth")
            self.depth_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            head.addWidget(self.depth_box)
        self.image = QLabel("loading…")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(160, 120)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.image.setStyleSheet("background: #202020; color: #bbbbbb;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(head)
        layout.addWidget(self.image, 1)
        self.showing: tuple[int, bool] | None = None
        """(stamp, depth) of the picture on screen."""

    def show_frame(self, frame: Frame, start_ns: int) -> None:
        key = (frame.stamp_ns, frame.depth)
        if key == self.showing and self.image.pixmap() is not None:
            return
        self.showing = key
        size = self.image.size()
        self.image.setPixmap(
            frame_to_pixmap(frame.image, max(size.width(), 16), max(size.height(), 16))
        )
        self.stamp_label.setText(
            ("depth " if frame.depth else "") + format_time(frame.stamp_ns - start_ns)
        )

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.showing = None  # rescale the picture at the next tick


class ArmPlot(pg.PlotWidget):
    """One follower arm around the playhead: follower (thick), its leader (thin) and the
    command written (dashed), for all joints or the selected one."""

    def __init__(self, follower: str, leader: str | None):
        super().__init__()
        self.follower = follower
        self.leader = leader
        self.setBackground("w")
        caption = f"{follower}: thick = follower, thin = {leader or 'leader'}, dashed = command"
        self.setTitle(caption, color="k", size="9pt")
        self.setLabel("left", "rad")
        self.setLabel("bottom", "s")
        self.showGrid(x=True, y=True, alpha=0.3)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.legend = self.addLegend(offset=(-5, 5), labelTextColor="k", colCount=4)
        self.legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.playhead = pg.InfiniteLine(angle=90, pen=pg.mkPen(RED, width=1))
        self.addItem(self.playhead)
        self.curves: list[tuple[pg.PlotCurveItem, pg.PlotCurveItem, pg.PlotCurveItem]] = []
        self.joint_names: tuple[str, ...] = ()
        self.selected: str | None = None

    def set_joints(self, names: tuple[str, ...], selected: str | None) -> None:
        """(Re)build the curves for ``names``; ``selected`` None means every joint."""
        if names == self.joint_names and selected == self.selected:
            return
        for trio in self.curves:
            for c in trio:
                self.removeItem(c)
        self.legend.clear()
        self.curves = []
        self.joint_names, self.selected = names, selected
        single = selected is not None
        for i, joint in enumerate(names):
            if single:
                colours = ("#1565c0", "#ef6c00", "#2e7d32")
            else:
                c = pg.intColor(i, hues=len(names), values=1, maxValue=200)
                colours = (c, c, c)
            thin = pg.mkColor(colours[1])
            thin.setAlpha(170)
            follower = pg.PlotCurveItem(pen=pg.mkPen(colours[0], width=2.5))
            leader = pg.PlotCurveItem(pen=pg.mkPen(thin, width=1))
            command = pg.PlotCurveItem(
                pen=pg.mkPen(colours[2], width=1, style=Qt.PenStyle.DashLine)
            )
            for curve in (follower, leader, command):
                curve.setVisible(not single or joint == selected)
                self.addItem(curve)
            if single and joint == selected:
                self.legend.addItem(follower, "follower")
                self.legend.addItem(leader, "leader")
                self.legend.addItem(command, "command")
            elif not single:
                self.legend.addItem(follower, joint)
            self.curves.append((follower, leader, command))

    def update_window(
        self,
        joints: dict[str, JointSeries],
        start_ns: int,
        position_ns: int,
    ) -> None:
        t_s = position_ns / 1e9
        self.playhead.setValue(t_s)
        self.setXRange(t_s - WINDOW_S, t_s + WINDOW_S, padding=0)
        sources = (
            joints.get(f"/{self.follower}/joint_states"),
            joints.get(f"/{self.leader}/joint_states") if self.leader else None,
            joints.get(f"/{self.follower}/joint_commands"),
        )
        for kind, series in enumerate(sources):
            x = (series.stamp_ns - start_ns) / 1e9 if series is not None else np.zeros(0)
            for j, trio in enumerate(self.curves):
                if (
                    series is None
                    or j >= series.position_rad.shape[1]
                    or not trio[kind].isVisible()
                ):
                    trio[kind].setData([], [])
                    continue
                trio[kind].setData(x, series.position_rad[:, j])


class ReplayView(QWidget):
    """Plays one episode: camera tiles, joint plots, timeline and transport controls."""

    # An int, 64-bit: Signal(int) is a C++ int, which overflows after 2.1 s of nanoseconds.
    positionChanged = Signal("qint64")  # type: ignore[arg-type]  # noqa: N815 - Qt naming
    episodeOpened = Signal(object)  # Path  # noqa: N815 - Qt naming

    def __init__(self, parent: QWidget | None = None, *, player: Player | None = None):
        super().__init__(parent)
        self.player = player or Player()
        self.path: Path | None = None
        self.start_ns = 0
        self.tiles: dict[str, CameraView] = {}
        self.plots: dict[str, ArmPlot] = {}
        self._seq = -1
        self._joints: dict[str, JointSeries] | None = None
        self._marks_shown = False
        self._last_position = -1
        self._ticks = 0
        self._plotted_at = -1

        self.title = QLabel("No episode open")
        self.title.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.flags_label = QLabel("")
        self.flags_label.setWordWrap(True)
        self.flags_label.setStyleSheet(WARN_BANNER_STYLE)
        self.flags_label.hide()

        self.camera_grid = QGridLayout()
        self.camera_grid.setSpacing(4)
        cams = QWidget()
        cams.setLayout(self.camera_grid)
        self.joint_combo = QComboBox()
        self.joint_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.joint_combo.currentIndexChanged.connect(self._joint_selected)
        joint_row = QHBoxLayout()
        joint_row.addWidget(QLabel("Joints:"))
        joint_row.addWidget(self.joint_combo, 1)
        self.plot_box = QVBoxLayout()
        self.plot_box.addLayout(joint_row)
        plots = QWidget()
        plots.setLayout(self.plot_box)
        middle = QHBoxLayout()
        middle.addWidget(cams, 3)
        middle.addWidget(plots, 2)

        self.timeline = Timeline()
        self.timeline.seekRequested.connect(self.seek)

        self.buttons: dict[str, QPushButton] = {}
        controls = QHBoxLayout()
        for name, text, slot in (
            ("back", "◀| frame", lambda: self.step(-1)),
            ("play", "▶ Play", self.toggle_play),
            ("forward", "frame |▶", lambda: self.step(1)),
        ):
            b = QPushButton(text)
            # Buttons never take focus: the review screen's keys must reach its shortcuts.
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setMinimumHeight(36)
            b.clicked.connect(slot)
            controls.addWidget(b)
            self.buttons[name] = b
        self.buttons["play"].setMinimumWidth(110)
        self.speed_combo = QComboBox()
        self.speed_combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for s in SPEEDS:
            self.speed_combo.addItem(f"{s:g}×", s)
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_combo.currentIndexChanged.connect(
            lambda i: self.set_speed(self.speed_combo.itemData(i))
        )
        controls.addWidget(QLabel("Speed"))
        controls.addWidget(self.speed_combo)
        controls.addSpacing(12)
        self.time_label = QLabel(format_time(0))
        self.time_label.setStyleSheet("font-size: 13pt; font-family: monospace;")
        controls.addWidget(self.time_label)
        controls.addStretch(1)
        self.status_label = QLabel("")
        self.status_label.setStyleSheet("color: #555;")
        controls.addWidget(self.status_label)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.flags_label)
        layout.addLayout(middle, 1)
        layout.addWidget(self.timeline)
        layout.addLayout(controls)

        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)
        self._set_enabled(False)

    # -- public API -------------------------------------------------------------------------

    @property
    def position_ns(self) -> int:
        """Playhead, ns since the episode start (0 when nothing is open)."""
        return self.player.position_ns if self.player.is_open else 0

    @property
    def duration_ns(self) -> int:
        return self.player.duration_ns

    def open_episode(self, path: Path) -> None:
        """Show ``path`` at its start, paused.

        Raises:
            EpisodeReadError: not a complete, readable episode (the view is left empty).
        """
        path = Path(path)
        self.close_episode()
        reader = self.player.open(path)
        self.path = path
        self.start_ns = reader.start_ns
        self._build(reader)
        self._set_enabled(True)
        self.timer.start()
        self.tick()
        self.episodeOpened.emit(path)

    def close_episode(self) -> None:
        """Stop playing and forget the episode."""
        self.timer.stop()
        self.player.close()
        self.path = None
        widgets: list[QWidget] = [*self.tiles.values(), *self.plots.values()]
        for widget in widgets:
            # Hidden first: a parentless widget with a pending show pops up as a window.
            widget.hide()
            widget.setParent(None)
            widget.deleteLater()
        self.tiles.clear()
        self.plots.clear()
        self.joint_combo.blockSignals(True)
        self.joint_combo.clear()
        self.joint_combo.blockSignals(False)
        self.timeline.set_duration(0)
        self.timeline.set_marks([])
        self.timeline.set_position(0)
        self.title.setText("No episode open")
        self.flags_label.hide()
        self.time_label.setText(format_time(0))
        self.status_label.setText("")
        self._seq, self._joints, self._marks_shown, self._last_position = -1, None, False, -1
        self._set_enabled(False)

    def seek(self, t_ns: int) -> None:
        self.player.seek(int(t_ns))
        self._show_position()

    def play(self) -> None:
        self.player.play()
        self._show_position()

    def pause(self) -> None:
        self.player.pause()
        self._show_position()

    def toggle_play(self) -> None:
        self.player.toggle()
        self._show_position()

    def set_speed(self, factor: float) -> None:
        """0.25–4× (the selector shows the nearest offered speed)."""
        self.player.set_speed(factor)
        nearest = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.player.speed))
        if self.speed_combo.currentIndex() != nearest:
            self.speed_combo.blockSignals(True)
            self.speed_combo.setCurrentIndex(nearest)
            self.speed_combo.blockSignals(False)

    def step(self, frames: int) -> None:
        """Pause and move ``frames`` frames (of the fastest camera) forward or back."""
        self.player.step(frames)

    def set_extra_marks(self, marks: list[tuple[int, str]]) -> None:
        """Label marks (ns since start, text), drawn on the timeline in green."""
        self.timeline.set_extra_marks(marks)

    # -- the timer ------------------------------------------------------------------------

    def tick(self) -> None:
        """Pick up the player's newest snapshot (never waits, never reads the disk)."""
        if not self.player.is_open:
            return
        self._ticks += 1
        self._show_position()
        snap = self.player.snapshot()
        if snap is None:
            return
        if snap.seq == self._seq:
            # Nothing new, but a tile that was resized (showing None) redraws at its new size.
            self._show_frames(snap, only_cleared=True)
            return
        self._seq = snap.seq
        self._show_frames(snap)
        if snap.marks is not None and not self._marks_shown:
            self._show_marks(snap)
        self._plot(snap)
        skipped = sum(snap.skipped.values())
        text = f"{skipped} frames skipped to keep up" if skipped else ""
        if snap.error:
            text = f"read error: {snap.error}"
        self.status_label.setText(text)

    # -- internals --------------------------------------------------------------------------

    def _show_frames(self, snap: Snapshot, *, only_cleared: bool = False) -> None:
        for camera, tile in self.tiles.items():
            if only_cleared and tile.showing is not None:
                continue
            depth = tile.depth_box is not None and tile.depth_box.isChecked()
            frame = snap.depth.get(camera) if depth else None
            frame = frame or snap.frames.get(camera)
            if frame is not None:
                tile.show_frame(frame, self.start_ns)

    def _build(self, reader: EpisodeReader) -> None:
        prov = reader.metadata.get("provenance", {})
        who = " · ".join(
            v for v in (prov.get("operator"), prov.get("task"), prov.get("rig_id")) if v
        )
        self.title.setText(f"{self.path.name if self.path else ''}   {who}")
        columns = 2 if len(reader.cameras) <= 4 else 3
        for i, camera in enumerate(reader.cameras):
            tile = CameraView(camera, camera in reader.depth_cameras)
            if tile.depth_box is not None:
                tile.depth_box.toggled.connect(lambda on, c=camera: self._toggle_depth(c, on))
            self.camera_grid.addWidget(tile, i // columns, i % columns)
            self.tiles[camera] = tile
        followers = sorted(
            {t.split("/")[1] for t in reader.joint_topics if t.endswith("/joint_commands")}
            | set(reader.leader_of)
        )
        for follower in followers:
            plot = ArmPlot(follower, reader.leader_of.get(follower))
            self.plot_box.addWidget(plot, 1)
            self.plots[follower] = plot
        self.timeline.set_duration(reader.duration_ns)

    def _toggle_depth(self, camera: str, on: bool) -> None:
        self.player.set_depth(camera, on)
        self.tiles[camera].showing = None

    def _show_position(self) -> None:
        pos = self.position_ns
        self.timeline.set_position(pos)
        self.time_label.setText(f"{format_time(pos)} / {format_time(self.duration_ns)}")
        playing = self.player.playing
        self.buttons["play"].setText("❚❚ Pause" if playing else "▶ Play")
        if pos != self._last_position:
            self._last_position = pos
            self.positionChanged.emit(pos)

    def _show_marks(self, snap: Snapshot) -> None:
        assert snap.marks is not None
        self._marks_shown = True
        self.timeline.set_marks(list(snap.marks.marks))
        if snap.marks.flags:
            self.flags_label.setText("Quality flags: " + "; ".join(snap.marks.flags))
            self.flags_label.show()

    def _plot(self, snap: Snapshot) -> None:
        if not snap.joints:
            return
        if snap.joints is not self._joints:
            self._joints = snap.joints
            if self.joint_combo.count() == 0:
                self._fill_joint_combo(snap.joints)
            self._plotted_at = -1
        elif snap.playing and self._ticks % PLOT_EVERY:
            return
        if snap.position_ns == self._plotted_at:
            return
        self._plotted_at = snap.position_ns
        for plot in self.plots.values():
            plot.update_window(snap.joints, self.start_ns, snap.position_ns)

    def _fill_joint_combo(self, joints: dict[str, JointSeries]) -> None:
        names: tuple[str, ...] = ()
        for follower in self.plots:
            series = joints.get(f"/{follower}/joint_states")
            if series is not None and series.joint_names:
                names = series.joint_names
                break
        self.joint_combo.blockSignals(True)
        self.joint_combo.addItem(_ALL_JOINTS)
        self.joint_combo.addItems(list(names))
        self.joint_combo.blockSignals(False)
        for plot in self.plots.values():
            plot.set_joints(names, None)

    def _joint_selected(self, index: int) -> None:
        if index < 0:
            return
        text = self.joint_combo.itemText(index)
        for plot in self.plots.values():
            plot.set_joints(plot.joint_names, None if text == _ALL_JOINTS else text)
        self._plotted_at = -1
        snap = self.player.snapshot()
        if snap is not None:
            self._plot(snap)

    def _set_enabled(self, on: bool) -> None:
        for b in self.buttons.values():
            b.setEnabled(on)
        self.speed_combo.setEnabled(on)
        self.timeline.setEnabled(on)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.close_episode()
        super().closeEvent(event)


# -- opening with recovery ----------------------------------------------------------------


class _Done(QObject):
    finished = Signal()


def _off_gui_thread(parent: QWidget | None, text: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a thread while a busy dialog shows; return its result or exception."""
    done = _Done()
    loop = QEventLoop()
    done.finished.connect(loop.quit, Qt.ConnectionType.QueuedConnection)
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed back to the GUI thread
            outcome.append(exc)
        done.finished.emit()

    busy = QProgressDialog(text, "", 0, 0, parent)
    busy.setCancelButton(None)
    busy.setWindowModality(Qt.WindowModality.WindowModal)
    busy.setMinimumDuration(300)
    thread = threading.Thread(target=run, name="recover", daemon=True)
    thread.start()
    if not outcome:
        loop.exec()
    thread.join()
    busy.close()
    return outcome[0]


def open_with_recovery(parent: QWidget | None, path: Path) -> Path | None:
    """Check that ``path`` opens; if it is damaged, offer to recover it.

    Returns ``path`` when it opens, the recovered file when the user chose Recover and it
    worked, else None (declined, or the failure was shown to the user).
    """
    path = Path(path)
    try:
        EpisodeReader(path).close()
        return path
    except EpisodeReadError as exc:
        message = str(exc)
        recoverable = "teleop recover" in message
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Cannot open episode")
    box.setText(message)
    recover_button = None
    if recoverable:
        box.setInformativeText(
            "Recover writes a complete copy of everything readable next to it; "
            "the damaged file is left as it is."
        )
        recover_button = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    if recover_button is None or box.clickedButton() is not recover_button:
        return None

    def recover_and_register() -> object:
        report = recover(path, None)
        # The copy takes the damaged file's place in session.json, so the catalog lists it.
        register_recovered(
            report.source, report.output, duration_s=report.duration_s, stopped_at=report.stopped_at
        )
        return report

    result = _off_gui_thread(parent, f"Recovering {path.name}…", recover_and_register)
    if isinstance(result, BaseException):
        if not isinstance(result, (TeleopError, OSError)):
            log.error("recovery failed", exc_info=result)
        QMessageBox.warning(parent, "Recovery failed", f"{path}: {result}")
        return None
    try:
        EpisodeReader(result.output).close()
    except EpisodeReadError as exc:
        QMessageBox.warning(parent, "Recovery failed", str(exc))
        return None
    log.info("recovered %s -> %s (%d messages)", path, result.output, result.messages)
    return Path(result.output)
