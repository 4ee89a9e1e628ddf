"""``teleop-gui``: the operator's app, and with ``--review`` the QA reviewer's.

Screens in one window (a QStackedWidget): sign-in → pre-flight → record for the operator;
the sessions browser → Review / Export for QA (:mod:`ui.qa`), reachable from the operator's
screens too. The engine (``teleop``) does the work; every call that touches a device or a
disk runs on an engine thread (:class:`ui.worker.EngineWorker`) and reports back as a queued
signal, so the window never freezes.

``teleop-gui --screenshot PNG`` renders the sessions browser; ``--screenshots DIR`` drives
every screen live on the virtual rig and saves one PNG per screen.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QStackedWidget, QWidget

from rigs.pedal import PedalError, SerialPedal, parse_mapping, parse_port
from teleop.arguments import (
    SEED,
    OneLineParser,
    add_data_dir,
    add_policy_arguments,
    number,
    policy_from,
)
from teleop.doctor import CheckResult
from teleop.live import LiveAddress, LiveViewError, parse_live_address
from teleop.operators import OPERATORS_FILE
from teleop.recording.policy import DEFAULT_POLICY, RecordingPolicy
from teleop.session import Session, resolve_data_root
from teleop.tasks import TASKS_FILE
from teleop.user_errors import describe
from ui.export import HoldingRelay, ProgressRelay
from ui.keys import ACTIONS, Keymap, KeymapError
from ui.preflight import PreflightScreen
from ui.qa import QaScreens
from ui.record import RecordScreen
from ui.sessions import SessionsWindow
from ui.signin import SignInScreen
from ui.station import SignIn, Station
from ui.worker import EngineWorker

__all__ = ["MainWindow", "ReviewerWindow", "SessionsWindow", "main"]

log = logging.getLogger(__name__)

PEDAL_ACTIONS = (*ACTIONS, "start", "stop")


class MainWindow(QMainWindow):
    """The operator's window: sign-in, pre-flight, record and sessions screens."""

    def __init__(
        self,
        data_root: Path,
        *,
        rig: str | None = None,
        keymap: Keymap | None = None,
        seed: int = 0,
        policy: RecordingPolicy = DEFAULT_POLICY,
        countdown_s: float = 0.0,
        sound: bool = True,
        pedal: SerialPedal | None = None,
        export_relay: ProgressRelay | None = None,
        live: LiveAddress | None = None,
    ):
        super().__init__()
        self.data_root = data_root
        self.setWindowTitle("teleop — recording")
        self.worker = EngineWorker(self)
        self.station = Station(
            data_root,
            seed=seed,
            policy=policy,
            live=live,
        )
        self.signin = SignInScreen(data_root, rig=rig)
        self.preflight = PreflightScreen()
        self.record = RecordScreen(
            self.station, self.worker, keymap, countdown_s=countdown_s, sound=sound
        )
        # The serial pedal reads on its own thread; the signal queues each action to this one.
        self.pedal = pedal
        if pedal is not None:
            pedal.on_action = self.record.action_requested.emit
        self.stack = QStackedWidget()
        for screen in (self.signin, self.preflight, self.record):
            self.stack.addWidget(screen)
        self.qa = QaScreens(data_root, self.stack, export_relay=export_relay, parent=self)
        self.setCentralWidget(self.stack)
        self._sessions_return: QWidget = self.signin
        self.last_closed: Session | None = None
        self._shut_down = False

        self.signin.signed_in.connect(self.open_preflight)
        self.signin.show_sessions.connect(self.open_sessions)
        self.preflight.back.connect(self.back_to_signin)
        self.preflight.rerun.connect(self.run_checks)
        self.preflight.record.connect(self.start_session)
        self.record.end_session.connect(self.end_session)
        self.record.show_sessions.connect(self.open_sessions)
        self.qa.left.connect(lambda: self.stack.setCurrentWidget(self._sessions_return))
        self.resize(1400, 900)

    # -- navigation -------------------------------------------------------------------------
    def open_preflight(self, signin: SignIn) -> None:
        """Open the rig on the engine thread, then run the checks."""
        self.preflight.title.setText(f"Pre-flight checks: {signin.rig}")
        self.preflight.table.setRowCount(0)
        self.preflight.results = []
        self.preflight.set_busy(f"Opening rig {signin.rig}…")
        self.stack.setCurrentWidget(self.preflight)
        self.worker.submit(
            lambda: self.station.open_rig(signin),
            lambda _: self.run_checks(),
            lambda exc: self.preflight.set_error(f"Cannot open the rig: {describe(exc)}"),
        )

    def run_checks(self) -> None:
        self.preflight.set_busy("Running checks: buses, motors, calibration, pose, cameras, disk…")
        self.worker.submit(
            self.station.preflight,
            self._checks_done,
            lambda exc: self.preflight.set_error(f"The checks could not run: {describe(exc)}"),
        )

    def _checks_done(self, results: list[CheckResult]) -> None:
        self.preflight.set_results(results)

    def start_session(self) -> None:
        self.preflight.set_busy("Connecting the arms and starting the session…")
        self.worker.submit(
            self.station.start_session,
            lambda _s: self._session_started(),
            lambda exc: self.preflight.set_error(f"Cannot start: {describe(exc)}"),
        )

    def _session_started(self) -> None:
        self.stack.setCurrentWidget(self.record)
        self.record.attach()
        self.record.setFocus()

    def end_session(self) -> None:
        """Close the session (undecided episode kept, discarded files deleted) and the rig."""
        self.record.say("Ending the session…")

        def close() -> Session | None:
            session = self.station.end_session()
            self.station.close()
            return session

        def done(session: Session | None) -> None:
            self.record.detach()
            self.last_closed = session
            self.stack.setCurrentWidget(self.signin)
            if session is not None:
                kept = sum(e.status == "kept" for e in session.episodes)
                self.signin.notice.setText(
                    f"Session {session.id} closed: {kept} episode{'s' * (kept != 1)} kept."
                )

        self.worker.submit(close, done, self.record.show_error)

    def back_to_signin(self) -> None:
        self.worker.submit(self.station.close)
        self.stack.setCurrentWidget(self.signin)

    def open_sessions(self) -> None:
        """The sessions browser; its Back returns to the screen it was opened from."""
        self._sessions_return = self.stack.currentWidget() or self.signin
        self.qa.open_browser()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Close session and rig (waits for the engine thread: the app is exiting)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.record.detach()
        if self.pedal is not None:
            self.pedal.close()
        self.qa.shutdown()
        future = self.worker.submit(self.station.close)
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:  # exiting anyway; say why the close was not clean
            log.error("closing the rig failed: %s", exc)
        self.worker.shutdown(wait=False)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)


class ReviewerWindow(QMainWindow):
    """``teleop-gui --review``: the QA reviewer's window, straight into the sessions browser.

    Without ``reviewer`` it first asks who reviews; the browser's Back switches reviewer.
    """

    def __init__(
        self,
        data_root: Path,
        *,
        reviewer: str | None = None,
        export_relay: ProgressRelay | None = None,
    ):
        super().__init__()
        self.data_root = data_root
        self.setWindowTitle(f"teleop — review: {data_root}")
        self.stack = QStackedWidget()
        self.setCentralWidget(self.stack)
        self.qa = QaScreens(
            data_root, self.stack, reviewer=reviewer, export_relay=export_relay, parent=self
        )
        self.qa.left.connect(self.qa.ask_reviewer)
        self.qa.browser.back_button.setText("Switch reviewer")
        if reviewer is None:
            self.qa.ask_reviewer()
        else:
            self.qa.open_browser()
        self.resize(1400, 900)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.qa.shutdown()
        super().closeEvent(event)


# -- screenshots -------------------------------------------------------------------------------


def wait_until(
    app: QCoreApplication, done: Callable[[], bool], timeout_s: float, what: str
) -> None:
    """Run the event loop until ``done()``; raise naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshots: timed out after {timeout_s:g} s waiting for {what}")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def pump(app: QCoreApplication, seconds: float) -> None:
    """Keep the event loop (and the live timer) running for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


SCREENSHOT_PREFIX = "teleop-gui-shots-"
SCREENSHOT_OPERATORS = (
    '[[operators]]\nid = "op7"\nname = "Ada Lovelace"\n\n'
    '[[operators]]\nid = "op12"\nname = "Grace Hopper"\n'
)
SCREENSHOT_TASKS = (
    '[[tasks]]\nname = "pick_place"\ndescription = "Pick the cube and place it in the bowl"\n'
    "target_episodes = 50\nepisode_s = 20\nreset_s = 5\n"
)


def screenshot_root(data_dir: str | None, rig: str) -> tuple[Path, bool]:
    """The data root to shoot in and whether it was made here: the given one if it has
    calibration, operators and tasks; else a temporary one, calibrated on the virtual rig
    and given example lists (the caller removes it)."""
    from rigs.spec import load_rig
    from teleop.calibrating import run_calibrate

    if data_dir:
        root = Path(data_dir)
        rig_id = load_rig(rig).spec.id
        if (
            (root / "calibration" / rig_id).is_dir()
            and (root / OPERATORS_FILE).is_file()
            and (root / TASKS_FILE).is_file()
        ):
            return root, False
    root = Path(tempfile.mkdtemp(prefix=SCREENSHOT_PREFIX))
    try:
        run_calibrate(rig, all_targets=True, operator="op7", data_dir=str(root))
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # the caller never got it to remove
        raise
    (root / OPERATORS_FILE).write_text(SCREENSHOT_OPERATORS, encoding="utf-8")
    (root / TASKS_FILE).write_text(SCREENSHOT_TASKS, encoding="utf-8")
    return root, True


def _state(w: MainWindow) -> str | None:
    return w.record.status.state.value if w.record.status else None


def take_screenshots(out_dir: Path, data_root: Path, rig: str, keymap: Keymap) -> list[Path]:
    """Drive every screen live on ``rig`` and save one PNG per screen; returns the files."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    out_dir.mkdir(parents=True, exist_ok=True)
    relay = HoldingRelay(hold_at=0.4)  # holds the export for its mid-progress shot
    w = MainWindow(
        data_root, rig=rig, keymap=keymap, policy=RecordingPolicy(min_free_gb=0.5),
        export_relay=relay,
    )  # fmt: skip
    w.show()
    shots: list[Path] = []

    def shot(name: str) -> None:
        pump(app, 0.2)
        path = out_dir / f"{name}.png"
        w.grab().save(str(path))
        shots.append(path)

    try:
        shot("1-sign-in")
        w.signin.proceed.click()
        wait_until(
            app,
            lambda: bool(w.preflight.results) and w.preflight.rerun_button.isEnabled(),
            90,
            "pre-flight checks",
        )
        shot("2-preflight")
        if not w.preflight.record_button.isEnabled():
            raise RuntimeError("screenshots: pre-flight failed:\n" + w.preflight.status.text())
        w.preflight.record_button.click()
        wait_until(app, lambda: w.record.status is not None, 60, "the session to start")
        pump(app, 1.0)
        shot("3-record-ready")
        w.record.start_stop()
        wait_until(
            app,
            lambda: w.record.status is not None and w.record.status.state.value == "recording",
            30,
            "recording",
        )
        pump(app, 4.0)  # long enough for previews, 1 s rates and a few seconds of plot
        shot("4-record-recording")
        w.record.start_stop()
        wait_until(
            app,
            lambda: w.record.status is not None and w.record.status.undecided is not None,
            30,
            "the episode to finish",
        )
        pump(app, 0.5)
        shot("5-record-keep-or-discard")
        w.record.keep()
        wait_until(
            app, lambda: w.record.status is not None and w.record.status.kept == 1, 30, "keep"
        )
        pump(app, 0.5)
        shot("6-record-reset")
        runtime = w.station.runtime
        virtual = runtime.virtual if runtime else None
        if runtime is not None and virtual is not None:  # a fault: a follower bus goes silent
            w.record.start_stop()
            wait_until(app, lambda: _state(w) == "recording", 30, "recording")
            pump(app, 1.0)
            virtual.inject_bus_silent(runtime.spec.followers[0].name)
            wait_until(app, lambda: _state(w) == "idle", 30, "the fault to stop the episode")
            pump(app, 0.5)
            shot("7-record-fault")
        w.end_session()
        wait_until(app, lambda: w.stack.currentWidget() is w.signin, 60, "the session to close")
        w.open_sessions()
        wait_until(app, lambda: not w.qa.browser.loading, 60, "the catalog")
        shot("8-sessions")
        qa_screenshots(app, w.qa, relay, shot)
    finally:
        w.shutdown()
        w.close()
    return shots


def qa_screenshots(
    app: QApplication, qa: QaScreens, relay: HoldingRelay, shot: Callable[[str], None]
) -> None:
    """Shoot the browser with filters, the Review screen, and an export mid-way and done
    (written to a temporary folder, removed after)."""
    browser = qa.browser
    browser.search.setText("fault")  # the episode the injected bus fault stopped
    browser.label.setCurrentText("unlabelled")
    browser.flagged.setChecked(True)
    browser.sql.setText("duration_s > 0.5 AND task = 'pick_place'")
    browser.reload()
    wait_until(app, lambda: not browser.loading, 60, "the catalog query")
    browser.table.selectRow(0)
    shot("9-sessions-filtered")
    for reset in (browser.search.clear, browser.sql.clear):
        reset()
    browser.label.setCurrentText("any")
    browser.flagged.setChecked(False)
    browser.reload()
    wait_until(app, lambda: not browser.loading, 60, "the catalog query")
    rows = browser.shown_rows()
    qa.reviewer = "qa1"
    # The longest episode (the other one ends in the injected fault), seen mid-way.
    longest = max(range(len(rows)), key=lambda i: rows[i].get("duration_s") or 0.0)
    qa.open_review(rows, longest)
    pump(app, 1.0)  # the replay opens the file and draws its first frames
    replay = qa.review.replay
    replay.seek(int(replay.duration_ns * 0.45))
    pump(app, 1.5)
    shot("10-review")
    browser.table.selectAll()
    qa.open_export(browser.selected_rows(), rows, "")
    out_dir = Path(tempfile.mkdtemp(prefix=SCREENSHOT_PREFIX))
    try:
        qa.export.out.setText(str(out_dir / "bundle-pick_place"))
        qa.export.start()
        wait_until(app, relay.held.is_set, 60, "the export to get under way")
        shot("11-export-progress")
        relay.release()
        wait_until(app, lambda: not qa.export.running, 120, "the export to finish")
        shot("12-export-done")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def build_parser() -> OneLineParser:
    """The options of ``teleop-gui``."""
    p = OneLineParser(prog="teleop-gui")
    add_data_dir(p)
    p.add_argument("--rig", help="rig preset or .toml path to preselect (default: first preset)")
    p.add_argument("--seed", type=SEED, default=0, help="virtual rig: scripted operator seed")
    add_policy_arguments(p, recording=False)  # the start checks, as `teleop record` has them
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="ACTION=KEYS",
        help="bind keys (a foot pedal is a keyboard) to start_stop, keep, discard or rerecord, "
        "e.g. --key start_stop=Space,F13 (defaults: Space, K, D, R)",
    )
    p.add_argument(
        "--review",
        action="store_true",
        help="QA reviewer mode: open the sessions browser (review, label, export), no recording",
    )
    p.add_argument("--reviewer", metavar="ID", help="with --review: the reviewer id (else asked)")
    p.add_argument(
        "--screenshot", metavar="PNG", help="render the sessions browser to PNG and exit"
    )
    p.add_argument(
        "--screenshots",
        metavar="DIR",
        help="drive every screen live on the virtual rig (or --rig) and save PNGs in DIR",
    )
    p.add_argument(
        "--countdown",
        type=number(0.0, 60.0),
        default=0.0,
        metavar="S",
        help="count down S seconds (shown big) before each episode starts (default 0: none)",
    )
    p.add_argument("--no-sound", action="store_true", help="no beep at start and stop")
    p.add_argument(
        "--serial-pedal",
        metavar="PORT[:BAUD]",
        help="a foot pedal on a serial port (pyserial), e.g. /dev/ttyACM0:9600",
    )
    p.add_argument(
        "--serial-pedal-map",
        metavar="TOKEN=ACTION,...",
        default="1=start_stop,2=keep,3=discard",
        help="what the serial pedal's bytes mean (default 1=start_stop,2=keep,3=discard); "
        f"actions: {', '.join(PEDAL_ACTIONS)}",
    )
    p.add_argument(
        "--live",
        nargs="?",
        const="",
        metavar="HOST:PORT",
        help="start every session with the live Foxglove view on (default 127.0.0.1:8765; "
        "the record screen's Live view switch turns it on and off, at this address)",
    )
    p.add_argument("--debug", action="store_true", help="log engine details")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    try:
        keymap = Keymap().with_options(args.key)
    except KeymapError as exc:
        p.error(str(exc))
    if args.countdown < 0:
        p.error("--countdown: give 0 or more seconds")
    if args.reviewer is not None and not args.reviewer.strip():
        p.error("--reviewer: give a non-empty id, e.g. --reviewer qa1")
    if args.reviewer and not args.review:
        p.error("--reviewer goes with --review")
    live = None
    if args.live is not None:
        try:
            live = parse_live_address(args.live)
        except LiveViewError as exc:
            p.error(str(exc))
    pedal = None
    if args.serial_pedal:
        try:
            mapping = parse_mapping(args.serial_pedal_map)
        except PedalError as exc:
            p.error(f"--serial-pedal-map: {exc}")
        unknown = sorted(set(mapping.values()) - set(PEDAL_ACTIONS))
        if unknown:
            p.error(
                f"--serial-pedal-map: unknown action {unknown[0]!r}; "
                f"use one of {', '.join(PEDAL_ACTIONS)}"
            )
        port, baud = parse_port(args.serial_pedal)
        pedal = SerialPedal(port, baud, dict(mapping))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if args.screenshot:
        sessions = SessionsWindow(resolve_data_root(args.data_dir))
        sessions.show()
        wait_until(app, lambda: not sessions.view.loading, 60, "the catalog")
        pump(app, 0.1)
        sessions.grab().save(args.screenshot)
        sessions.view.worker.shutdown()
        return 0
    if args.review:
        reviewer_window = ReviewerWindow(
            resolve_data_root(args.data_dir),
            reviewer=args.reviewer.strip() if args.reviewer else None,
        )
        reviewer_window.show()
        return app.exec()
    if args.screenshots:
        rig = args.rig or "sim-bimanual"
        root, made = None, False
        try:
            root, made = screenshot_root(args.data_dir, rig)
            files = take_screenshots(Path(args.screenshots), root, rig, keymap)
        except Exception as exc:
            sys.stderr.write(f"teleop-gui: error: {describe(exc)}\n")
            return 2
        finally:
            if root is not None and made:
                shutil.rmtree(root, ignore_errors=True)  # the temporary data root we made
        for f in files:
            sys.stdout.write(f"{f}\n")
        return 0
    window = MainWindow(
        resolve_data_root(args.data_dir), rig=args.rig, keymap=keymap,
        seed=args.seed, policy=policy_from(args), countdown_s=args.countdown,
        sound=not args.no_sound, pedal=pedal, live=live,
    )  # fmt: skip
    if pedal is not None:
        try:
            pedal.start()
        except PedalError as exc:
            sys.stderr.write(f"teleop-gui: error: {exc}\n")
            return 2
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
