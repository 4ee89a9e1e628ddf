"""The record screen: live cameras, leader-vs-follower plots, health, state and the controls.

Everything live is *pulled* by one QTimer (``TICK_MS``): the newest camera frame per camera
(``CaptureThread.latest``), the newest control sample (``ControlProcess.latest``) and the
runner's status snapshot. Those are attribute reads that never block, so the screen cannot
slow the control loop (its own process) or the capture threads; no Qt signal is ever sent per
frame or per sample. Actions (start, stop, keep, discard, re-record) run on the engine thread.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from teleop.recording.lifecycle import RunnerState, RunnerStatus
from teleop.user_errors import describe
from ui.camera_tile import CameraTile
from ui.health_bar import HealthBar
from ui.keys import Keymap
from ui.live_plot import HISTORY_S, ArmPlot
from ui.squeeze import SqueezeDetector, leader_grippers
from ui.station import Station, advice
from ui.style import (
    BANNER_STYLE,
    GREEN,
    RED,
    STATE_BASE,
    STATE_STYLE,
    WARN_BANNER_STYLE,
)
from ui.worker import EngineWorker

log = logging.getLogger(__name__)

TICK_MS = 50  # 20 Hz: previews at >= 15 fps with headroom, cheap on a 2-core machine
# Plots redraw at 5 Hz: a 10 s window does not need more, and pyqtgraph's repaint was the
# largest cost of the screen (measured: most of the GUI's CPU at 10 Hz with autorange).
PLOT_EVERY = 4
HOUSEKEEPING_S = 0.5  # engine-thread poll (fault / disk) and free-space reading


class RecordScreen(QWidget):
    """The operator's screen while recording; ``end_session`` and ``show_sessions`` leave it."""

    end_session = Signal()
    show_sessions = Signal()
    # An action name from another thread (the serial pedal's reader); queued to the GUI thread.
    action_requested = Signal(str)

    def __init__(
        self,
        station: Station,
        worker: EngineWorker,
        keymap: Keymap | None = None,
        parent: QWidget | None = None,
        *,
        countdown_s: float = 0.0,
        sound: bool = True,
    ):
        super().__init__(parent)
        self.station = station
        self.worker = worker
        self.keymap = keymap or Keymap()
        self.countdown_s = countdown_s
        self.sound = sound
        self.cues: list[str] = []  # "start"/"stop" cues given, in order (for tests)
        self._countdown_until: float | None = None
        self._was_recording = False
        self.squeeze: SqueezeDetector | None = None
        self.action_requested.connect(self.do_action)
        self.tiles: dict[str, CameraTile] = {}
        self.plots: dict[str, ArmPlot] = {}
        self._history: dict[str, deque[tuple[float, np.ndarray, np.ndarray]]] = {}
        self._last_cycle: int | None = None
        self._last_housekeeping = 0.0
        self._tick_count = 0
        self._auto_stopped: int | None = None
        self._stopped_at: float | None = None
        self._message_until = 0.0
        self._shown_state = ""
        self.status: RunnerStatus | None = None
        self.marks: dict[int, str] = {}  # episode -> the operator's success/failure mark

        # -- top: state, timer, counter, who/what ------------------------------------------
        self.state_label = QLabel("—")
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.state_label.setMinimumWidth(260)
        self.timer_label = QLabel("")
        self.timer_label.setStyleSheet("font-size: 20pt; font-family: monospace;")
        self.counter_label = QLabel("")
        self.counter_label.setStyleSheet("font-size: 20pt; font-weight: bold;")
        self.who_label = QLabel("")
        self.who_label.setStyleSheet("color: #444;")
        top = QHBoxLayout()
        top.addWidget(self.state_label)
        top.addSpacing(16)
        top.addWidget(self.timer_label)
        top.addStretch(1)
        top.addWidget(self.counter_label)
        self.hint_label = QLabel("")
        self.hint_label.setStyleSheet("font-size: 13pt;")
        self.countdown_label = QLabel("")
        self.countdown_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.countdown_label.setStyleSheet(
            f"font-size: 96pt; font-weight: bold; color: {RED}; background: #fff4d6;"
        )
        self.countdown_label.hide()

        # -- banners -----------------------------------------------------------------------
        self.fault_banner = QLabel()
        self.fault_banner.setWordWrap(True)
        self.fault_banner.setStyleSheet(BANNER_STYLE)
        self.fault_banner.hide()
        self.warn_banner = QLabel()
        self.warn_banner.setWordWrap(True)
        self.warn_banner.setStyleSheet(WARN_BANNER_STYLE)
        self.warn_banner.hide()

        # -- middle: cameras and plots ------------------------------------------------------
        self.camera_grid = QGridLayout()
        self.plot_box = QVBoxLayout()
        middle = QHBoxLayout()
        cams = QWidget()
        cams.setLayout(self.camera_grid)
        plots = QWidget()
        plots.setLayout(self.plot_box)
        middle.addWidget(cams, 3)
        middle.addWidget(plots, 2)

        # -- bottom: last flags, health, buttons --------------------------------------------
        self.flags_label = QLabel("")
        self.flags_label.setWordWrap(True)
        self.health_label = HealthBar()
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for action, text, key_action in (
            ("start", "Start", "start_stop"),
            ("stop", "Stop", "start_stop"),
            ("keep", "Keep", "keep"),
            ("discard", "Discard", "discard"),
            ("rerecord", "Re-record", "rerecord"),
            ("mark_success", "Success", "mark_success"),
            ("mark_failure", "Failure", "mark_failure"),
        ):
            b = QPushButton(f"{text}  [{self.keymap.label(key_action)}]")
            # Buttons never take focus: Space must reach the shortcut, not press a button.
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setMinimumHeight(44)
            b.setStyleSheet("font-size: 13pt;")
            row.addWidget(b)
            self.buttons[action] = b
        self.buttons["start"].clicked.connect(self.start)
        self.buttons["stop"].clicked.connect(self.stop)
        self.buttons["keep"].clicked.connect(self.keep)
        self.buttons["discard"].clicked.connect(self.discard)
        self.buttons["rerecord"].clicked.connect(self.rerecord)
        self.buttons["mark_success"].clicked.connect(self.mark_success)
        self.buttons["mark_failure"].clicked.connect(self.mark_failure)
        row.addStretch(1)
        # The live Foxglove view of this session: on/off at any time, never a key (it is not
        # part of recording); the URL and counters are in the health bar.
        self.live_box = QCheckBox("Live view")
        self.live_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.live_box.setToolTip(
            f"Serve this session to Foxglove (Open connection → Foxglove WebSocket) at "
            f"{station.live_address.url}"
        )
        self.live_box.toggled.connect(self.set_live)
        row.addWidget(self.live_box)
        self.sessions_button = QPushButton("Sessions…")
        self.sessions_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.sessions_button.clicked.connect(self.show_sessions)
        self.end_button = QPushButton("End session")
        self.end_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.end_button.clicked.connect(self.end_session)
        row.addWidget(self.sessions_button)
        row.addWidget(self.end_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.who_label)
        layout.addWidget(self.fault_banner)
        layout.addWidget(self.warn_banner)
        layout.addWidget(self.hint_label)
        layout.addWidget(self.countdown_label)
        layout.addLayout(middle, 1)
        layout.addWidget(self.flags_label)
        layout.addWidget(self.health_label)
        layout.addLayout(row)

        # Application-wide: they work whatever widget has focus, but only while this screen
        # is visible (Qt ignores shortcuts whose parent is hidden), so sign-in typing is safe.
        self.shortcuts: list[QShortcut] = []
        for action, slot in (
            ("start_stop", self.start_stop),
            ("keep", self.keep),
            ("discard", self.discard),
            ("rerecord", self.rerecord),
            ("mark_success", self.mark_success),
            ("mark_failure", self.mark_failure),
        ):
            for seq in self.keymap.sequences(action):
                sc = QShortcut(QKeySequence(seq), self)
                sc.setContext(Qt.ShortcutContext.ApplicationShortcut)
                sc.setAutoRepeat(False)  # a held pedal is one press
                sc.activated.connect(slot)
                self.shortcuts.append(sc)

        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    # -- session set-up ---------------------------------------------------------------------
    def attach(self) -> None:
        """Build tiles and plots for the station's open session and start the timer."""
        runtime = self.station.runtime
        assert runtime is not None and self.station.signin is not None
        spec = runtime.spec
        for w in list(self.tiles.values()) + list(self.plots.values()):
            w.setParent(None)
            w.deleteLater()
        self.tiles.clear()
        self.plots.clear()
        self._history.clear()
        columns = 2 if len(spec.cameras) > 1 else 1
        for i, cam in enumerate(spec.cameras):
            tile = CameraTile(cam.name)
            self.camera_grid.addWidget(tile, i // columns, i % columns)
            self.tiles[cam.name] = tile
        for f in spec.followers:
            y_range = (min(j.min_rad for j in f.joints), max(j.max_rad for j in f.joints))
            plot = ArmPlot(f.name, f.follows or "leader", f.joint_names, y_range)
            self.plot_box.addWidget(plot)
            self.plots[f.name] = plot
            self._history[f.name] = deque()
        s = self.station.signin
        session = self.station.session
        self.who_label.setText(
            f"Operator {s.operator.label}   ·   task {s.task.name}   ·   rig {spec.id}   ·   "
            f"session {session.id if session else '—'}"
        )
        self.marks.clear()
        self.squeeze = None
        recorder = self.station.recorder
        if spec.controls.squeeze_to_start and recorder is not None:
            grippers = leader_grippers(spec, recorder.calibration.records)
            if grippers is not None:
                self.squeeze = SqueezeDetector(grippers, spec.controls.squeeze_hold_s)
            else:
                self.say(
                    "Squeeze-to-start is off: it needs every leader's gripper calibrated "
                    "(run `teleop calibrate`).",
                    error=True,
                )
        self._countdown_until = None
        self.countdown_label.hide()
        self._was_recording = False
        self.health_label.reset()
        self._auto_stopped = None
        self._stopped_at = None
        self._last_cycle = None
        self._show_live_box(self.station.live is not None)
        if self.station.live_error:
            self.say(f"Live view is off: {self.station.live_error}", error=True)
        self.tick()
        self.timer.start()

    def detach(self) -> None:
        """Stop pulling (the session is closing)."""
        self.timer.stop()
        self._cancel_countdown()

    # -- actions (GUI thread: decide, then hand the device/disk work to the engine) -------
    def _submit(self, fn: Callable[[], Any], done: Callable[[Any], None] | None = None) -> None:
        if self.station.runner is None:
            return
        self.worker.submit(fn, done, self.show_error)

    def set_live(self, on: bool) -> None:
        """The Live view switch: start or stop the session's live view on the engine thread."""

        def done(_stats: Any) -> None:
            if on and self.station.live is not None:
                self.say(f"Live view on: open {self.station.live.url} in Foxglove.")
            elif not on:
                self.say("Live view off.")

        def failed(exc: BaseException) -> None:
            self._show_live_box(self.station.live is not None)
            self.show_error(exc)

        if self.station.runner is None:
            self._show_live_box(False)
            return
        self.worker.submit(lambda: self.station.set_live(on), done, failed)

    def _show_live_box(self, on: bool) -> None:
        self.live_box.blockSignals(True)
        self.live_box.setChecked(on)
        self.live_box.blockSignals(False)

    def do_action(self, action: str) -> None:
        """Run a keymap action by name (``start_stop``, ``keep``, ...), e.g. from a pedal."""
        slot = {
            "start_stop": self.start_stop,
            "start": self.start,
            "stop": self.stop,
            "keep": self.keep,
            "discard": self.discard,
            "rerecord": self.rerecord,
            "mark_success": self.mark_success,
            "mark_failure": self.mark_failure,
        }.get(action)
        if slot is None:
            log.warning("unknown action %r", action)
            return
        slot()

    def start_stop(self) -> None:
        """Space (or the pedal): start when ready, stop when recording.

        With a countdown, a start begins the countdown; pressing again during it cancels.
        """
        st = self.status
        if self._countdown_until is not None:
            self._cancel_countdown()
            self.say("Countdown cancelled.")
            return
        armed = st is not None and st.state is RunnerState.ARMED
        if self.countdown_s > 0 and armed and self.station.runner is not None:
            self._countdown_until = time.monotonic() + self.countdown_s
            self._show_countdown(time.monotonic())
            return
        self._submit(self.station.toggle, self._after_toggle)

    def start(self) -> None:
        st = self.status
        if st is not None and st.state is RunnerState.ARMED and self._countdown_until is None:
            self.start_stop()

    def _show_countdown(self, now: float) -> None:
        assert self._countdown_until is not None
        left = max(0.0, self._countdown_until - now)
        self.countdown_label.setText(f"Recording in {math.ceil(left - 1e-6):d}")
        self.countdown_label.show()

    def _cancel_countdown(self) -> None:
        self._countdown_until = None
        self.countdown_label.hide()

    def _tick_countdown(self, st: RunnerStatus, now: float) -> None:
        if self._countdown_until is None:
            return
        if st.state is not RunnerState.ARMED:
            self._cancel_countdown()  # a fault, or the episode was started another way
            return
        if now >= self._countdown_until:
            self._cancel_countdown()
            self._submit(self.station.toggle, self._after_toggle)
        else:
            self._show_countdown(now)

    def _tick_squeeze(self, st: RunnerStatus, recorder: Any, now: float) -> None:
        squeeze = self.squeeze
        if squeeze is None:
            return
        ready = (
            st.state is RunnerState.ARMED and st.undecided is None and self._countdown_until is None
        )
        sample = recorder.control.latest
        if not ready or sample is None:
            squeeze.reset()
            return
        positions = {name: arm.reading.position_rad for name, arm in sample.arms.items()}
        if squeeze.update(positions, now):
            self.say("Both grippers squeezed: starting.")
            self.start_stop()

    def cue(self, what: str) -> None:
        """A short sound at start and stop (the system beep; no sound files)."""
        self.cues.append(what)
        if self.sound:
            QApplication.beep()

    def stop(self) -> None:
        self._submit(self.station.stop_if_recording, lambda stopped: self._after_stop())

    def keep(self) -> None:
        self._submit(self.station.keep, lambda n: self.say(f"Kept. {n} kept so far."))

    def discard(self) -> None:
        self._submit(self.station.discard, lambda n: self.say("Discarded."))

    def rerecord(self) -> None:
        self._submit(self.station.rerecord, lambda i: self.say(f"Discarded; recording {i}."))

    def mark_success(self) -> None:
        """The operator's own verdict: the last episode did the task."""
        self._submit(lambda: self.station.mark(True), lambda i: self._marked(i, "success"))

    def mark_failure(self) -> None:
        """The operator's own verdict: the last episode did not do the task."""
        self._submit(lambda: self.station.mark(False), lambda i: self._marked(i, "failure"))

    def _marked(self, index: int, mark: str) -> None:
        self.marks[index] = mark
        self.say(f"Episode {index:04d} marked {mark} (QA confirms later).")

    def _after_toggle(self, what: str) -> None:
        if what == "stopped":
            self._after_stop()

    def _after_stop(self) -> None:
        self._stopped_at = time.monotonic()

    def show_error(self, exc: BaseException) -> None:
        """An engine call failed: its one-line message in the hint line for a while."""
        self.say(describe(exc), error=True)

    def say(self, text: str, *, error: bool = False) -> None:
        """A short message in the hint line for a few seconds."""
        colour = RED if error else GREEN
        self.hint_label.setStyleSheet(f"font-size: 13pt; color: {colour}; font-weight: bold;")
        self.hint_label.setText(text)
        self._message_until = time.monotonic() + 4.0

    # -- the pull loop -------------------------------------------------------------------------
    def tick(self) -> None:
        """Pull snapshots and refresh the screen; never blocks."""
        runner, recorder = self.station.runner, self.station.recorder
        if runner is None or recorder is None:
            return
        self._tick_count += 1
        now = time.monotonic()
        st = runner.status()
        self.status = st
        task = self.station.signin.task if self.station.signin else None
        recording = st.state is RunnerState.RECORDING
        if recording != self._was_recording:  # whatever started or stopped it
            self._was_recording = recording
            self.cue("start" if recording else "stop")
        self._tick_countdown(st, now)
        self._tick_squeeze(st, recorder, now)

        # A recording that reached the task's episode length stops by itself.
        if (
            task is not None
            and st.state is RunnerState.RECORDING
            and st.elapsed_s >= task.episode_s
            and self._auto_stopped != st.episode_index
        ):
            self._auto_stopped = st.episode_index
            self._submit(self.station.stop_if_recording, lambda stopped: self._after_stop())
        if now - self._last_housekeeping >= HOUSEKEEPING_S and not self.worker.busy:
            self._last_housekeeping = now
            self.worker.submit(self.station.housekeeping, self._on_free_bytes, lambda e: None)

        visible = self.isVisible()  # hidden behind the sessions view: no drawing
        for name, cap in recorder.captures.items():
            frame = cap.latest if visible else None
            tile = self.tiles.get(name)
            if frame is not None and tile is not None:
                tile.show_frame(frame.color, frame.frame_number)
        self._sample_control(recorder)
        if visible and self._tick_count % PLOT_EVERY == 0:
            self._draw_plots()
        self._show_state(st, task, now)
        self._show_banners(st, recorder)
        self.health_label.show_health(
            recorder, now, self.station.session, self.station.live_stats()
        )

    def _on_free_bytes(self, free: int | None) -> None:
        self.health_label.free_bytes = free

    def _sample_control(self, recorder: Any) -> None:
        sample = recorder.control.latest
        if sample is None or sample.cycle == self._last_cycle:
            return
        self._last_cycle = sample.cycle
        t = sample.start_ns / 1e9
        self.health_label.add_period(sample.period_ns)
        for follower, hist in self._history.items():
            if follower not in sample.arms or follower not in sample.targets_rad:
                continue
            hist.append(
                (
                    t,
                    np.asarray(sample.targets_rad[follower]),
                    sample.arms[follower].reading.position_rad,
                )
            )
            while hist and hist[0][0] < t - HISTORY_S:
                hist.popleft()

    def _draw_plots(self) -> None:
        for follower, hist in self._history.items():
            if len(hist) < 2:
                continue
            t_now = hist[-1][0]
            t = np.fromiter((h[0] - t_now for h in hist), dtype=float, count=len(hist))
            leader = np.stack([h[1] for h in hist])
            fol = np.stack([h[2] for h in hist])
            self.plots[follower].update_history(t, leader, fol)

    def _show_state(self, st: RunnerStatus, task: Any, now: float) -> None:
        target = task.target_episodes if task else 0
        self.counter_label.setText(
            f"Kept {st.kept} / {target}"
            + (f"   ·   discarded {st.discarded}" if st.discarded else "")
        )
        key = self.keymap.label
        resetting = (
            task is not None
            and self._stopped_at is not None
            and st.undecided is None
            and now - self._stopped_at < task.reset_s
        )
        if st.state is RunnerState.RECORDING:
            state, text = "recording", f"● RECORDING  {st.episode_index:04d}"
            hint = f"{key('start_stop')}: stop   ·   {key('discard')}: stop and discard"
            self.timer_label.setText(
                f"{st.elapsed_s:5.1f} s / {task.episode_s:g} s" if task else ""
            )
        elif st.state is RunnerState.FINALIZING:
            state, text, hint = "finalizing", "FINALIZING", "Finishing the episode file…"
        elif st.state is RunnerState.IDLE:
            state, text = "idle", "STOPPED"
            hint = "Recording stopped (see the banner): End session to go on."
            if st.undecided is not None:
                hint = (
                    f"Recording stopped (see the banner). {key('keep')}: keep or "
                    f"{key('discard')}: discard episode {st.undecided:04d}, then End session."
                )
        elif self._countdown_until is not None:
            state, text = "resetting", "GET READY"
            hint = f"Recording starts when the count reaches 0; {key('start_stop')}: cancel"
        elif st.undecided is not None:
            state, text = "decide", f"KEEP EPISODE {st.undecided:04d}?"
            hint = (
                f"{key('keep')}: keep   ·   {key('discard')}: discard   ·   "
                f"{key('rerecord')}: discard and record again   ·   "
                f"{key('start_stop')}: keep and start the next   ·   "
                f"{key('mark_success')}/{key('mark_failure')}: mark success/failure"
            )
        elif resetting:
            assert task is not None and self._stopped_at is not None
            left = task.reset_s - (now - self._stopped_at)
            state, text = "resetting", f"RESET SCENE  {left:3.0f} s"
            hint = f"Put the scene back; {key('start_stop')} starts the next episode."
        else:
            state, text = "armed", "READY"
            hint = f"{key('start_stop')}: start episode"
            if self.squeeze is not None:
                hint += f"   ·   or squeeze both grippers for {self.squeeze.hold_s:g} s"
            if self.countdown_s > 0:
                hint += f"   (after a {self.countdown_s:g} s countdown)"
        if st.state is not RunnerState.RECORDING:
            self.timer_label.setText(f"{task.episode_s:g} s episodes" if task else "")
        self.state_label.setText(text)
        self.state_label.setStyleSheet(STATE_BASE + STATE_STYLE[state])
        if state != self._shown_state:
            self._shown_state = state
            self._message_until = min(self._message_until, now + 1.0)  # old news, cut short
        if now >= self._message_until:
            self.hint_label.setStyleSheet("font-size: 13pt; color: black;")
            self.hint_label.setText(hint)
        recording = st.state is RunnerState.RECORDING
        armed = st.state is RunnerState.ARMED
        decidable = st.undecided is not None or recording
        self.buttons["start"].setEnabled(armed and self._countdown_until is None)
        self.buttons["stop"].setEnabled(recording)
        self.buttons["keep"].setEnabled(decidable)
        self.buttons["discard"].setEnabled(decidable)
        self.buttons["rerecord"].setEnabled(decidable and st.state is not RunnerState.IDLE)
        markable = not recording and st.episode_index is not None
        self.buttons["mark_success"].setEnabled(markable)
        self.buttons["mark_failure"].setEnabled(markable)
        self.end_button.setEnabled(not recording)
        if st.episode_index is not None and st.state is not RunnerState.RECORDING:
            flags = "; ".join(st.last_flags) if st.last_flags else "no quality flags"
            mark = self.marks.get(st.episode_index)
            marked = f"marked {mark} by the operator; " if mark else ""
            self.flags_label.setText(f"Last episode {st.episode_index:04d}: {marked}{flags}")
            colour = "#b26a00" if st.last_flags else GREEN
            self.flags_label.setStyleSheet(f"color: {colour}; font-weight: bold;")
        elif st.episode_index is None:
            self.flags_label.setText("No episode recorded yet in this session.")
            self.flags_label.setStyleSheet("color: black;")

    def _show_banners(self, st: RunnerStatus, recorder: Any) -> None:
        reason = st.stop_reason
        fault = recorder.control.fault
        if fault is not None:
            reason = f"fault: {fault}"
        if reason:
            cause, fix = advice(reason)
            self.fault_banner.setText(f"⚠ {cause}\nFix: {fix}")
            self.fault_banner.show()
        else:
            self.fault_banner.hide()
        problems = []
        for name, cap in recorder.captures.items():
            if cap.error is not None:
                problems.append(f"camera {name} stopped: {cap.error}")
            elif cap.frozen:
                problems.append(f"camera {name} shows identical frames (frozen)")
        if problems:
            self.warn_banner.setText(
                "; ".join(problems) + ". Recording goes on and the episode is flagged; "
                "check the camera's cable."
            )
            self.warn_banner.show()
        else:
            self.warn_banner.hide()
