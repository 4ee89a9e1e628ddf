"""The recording station: one opened rig, its pre-flight checks and one recording session.

No Qt here: every method that touches a device or a disk is called on the GUI's engine
thread (:class:`ui.worker.EngineWorker`); the screens only read snapshots (``runner.status()``,
``captures[..].latest``, ``control.latest``), which never block.

The rig is opened once, at pre-flight: the checks open and ping the buses through the same
ports and compare the same opened cameras that recording then uses, so what was checked is
what records.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rigs.cameras.base import Camera, CameraError
from rigs.spec import LoadedRig, load_rig
from teleop.clock import iso_utc
from teleop.doctor import CheckResult, Status, run_checks
from teleop.live import LiveAddress, LivePublisher, LiveStats, LiveViewError
from teleop.live.publisher import DEFAULT_CAMERA_FPS
from teleop.operators import Operator
from teleop.recording.lifecycle import EpisodeRunner, RunnerState, TransitionError
from teleop.recording.policy import DEFAULT_POLICY, RecordingPolicy
from teleop.recording.recorder import Recorder
from teleop.recording.run import start_session
from teleop.rig_runtime import RigRuntime
from teleop.session import Session
from teleop.tasks import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignIn:
    """Who records what on which rig."""

    operator: Operator
    task: Task
    rig: str  # a preset name or a rig .toml path


def measure_camera_fps(
    cameras: dict[str, Camera], expected_fps: dict[str, float], *, window_s: float = 0.5
) -> list[CheckResult]:
    """Read every camera for ``window_s`` (all at once) and compare delivery with its fps.

    The first frames are thrown away for 0.2 s: a device that was idle may hand over a short
    backlog at once, which would overstate its rate.
    """
    counts: dict[str, tuple[int, float] | str] = {}

    def read(name: str, cam: Camera) -> None:
        try:
            flush_until = time.monotonic() + 0.2
            while time.monotonic() < flush_until:
                cam.read(timeout_s=1.0)
            n = 0
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < window_s:
                cam.read(timeout_s=1.0)
                n += 1
            counts[name] = (n, elapsed)
        except CameraError as exc:
            counts[name] = str(exc)

    threads = [
        threading.Thread(target=read, args=(n, c), name=f"fps-{n}", daemon=True)
        for n, c in cameras.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(window_s + 3.0)
    out = []
    for name in cameras:
        want = expected_fps.get(name, 0.0)
        got = counts.get(name, "no frame within 3 s")
        if isinstance(got, str):
            out.append(
                CheckResult(
                    Status.FAIL,
                    "camera fps",
                    name,
                    measured=got,
                    fix="check the camera's cable and that no other program holds it",
                )  # fmt: skip
            )
            continue
        fps = got[0] / got[1] if got[1] > 0 else 0.0
        ok = fps >= 0.9 * want
        out.append(
            CheckResult(
                Status.OK if ok else Status.WARN,
                "camera fps",
                name,
                measured=f"{fps:.1f} fps (camera set to {want:g})",
                threshold=f"{0.9 * want:.0f} fps",
                fix="" if ok else "use a USB 3 port, shorter cable, or a lower resolution",
            )  # fmt: skip
        )
    return out


class Station:
    """The rig, the session and its episode runner, opened and closed in order."""

    def __init__(
        self,
        data_root: Path,
        *,
        seed: int = 0,
        policy: RecordingPolicy = DEFAULT_POLICY,
        live: LiveAddress | None = None,
    ):
        self.data_root = data_root
        self.seed = seed
        self.policy = policy
        # The live Foxglove view: where it listens, whether sessions start with it, and the
        # running publisher (one per session, started and stopped on the engine thread).
        self.live_address = live or LiveAddress()
        self.live_wanted = live is not None
        self.live: LivePublisher | None = None
        self.live_error: str | None = None
        self.loaded: LoadedRig | None = None
        self.runtime: RigRuntime | None = None
        self.recorder: Recorder | None = None
        self.session: Session | None = None
        self.runner: EpisodeRunner | None = None
        self.signin: SignIn | None = None

    # -- engine thread only ---------------------------------------------------------------
    def open_rig(self, signin: SignIn) -> None:
        """Open the rig of ``signin`` (the virtual rig and cameras too), closing any other."""
        if self.runtime is not None and self.signin is not None and self.signin.rig == signin.rig:
            self.signin = signin
            return
        self.close()
        loaded = load_rig(signin.rig)
        self.runtime = RigRuntime(loaded, seed=self.seed).open()
        self.loaded = loaded
        self.signin = signin

    def preflight(self) -> list[CheckResult]:
        """``teleop doctor``'s checks on the opened rig, plus each camera's delivered fps."""
        assert self.runtime is not None and self.loaded is not None, "open_rig first"
        results = run_checks(
            self.loaded,
            self.data_root,
            ports=self.runtime.ports,
            cameras=self.runtime.cameras,
            open_buses=True,
            policy=self.policy,
        )
        fps = {c.name: float(c.fps) for c in self.loaded.spec.cameras}
        return results + measure_camera_fps(self.runtime.cameras, fps)

    def start_session(self) -> Session:
        """Connect the buses (control process), create the session, arm the first episode."""
        assert self.runtime is not None and self.signin is not None, "open_rig first"
        recorder, session = start_session(
            self.runtime,
            self.data_root,
            operator=self.signin.operator.id,
            task=self.signin.task.name,
            policy=self.policy,
        )
        self.recorder, self.session = recorder, session
        self.runner = EpisodeRunner(recorder, session)
        self.live_error = None
        if self.live_wanted:
            try:
                self.set_live(True)
            except LiveViewError as exc:  # recording matters more: start without the view
                self.live_error = str(exc)
                self.live_wanted = False
        recorder.settle()  # streams warm before the first episode, as in the CLI
        self.runner.arm()
        return session

    def set_live(self, on: bool) -> LiveStats | None:
        """Start (``on``) or stop the live view of this session; returns its counters.

        Started, it serves every message the episodes write from then on (the episode
        recording now included). Raises :class:`LiveViewError` when it cannot listen.
        """
        if on:
            if self.live is None:
                spec = self.loaded.spec if self.loaded else None
                fps = spec.live.camera_fps if spec else DEFAULT_CAMERA_FPS
                self.live = LivePublisher(self.live_address, camera_fps=fps).start()
            if self.recorder is not None:
                self.recorder.live = self.live
            self.live_wanted = True
            return self.live.stats()
        self.live_wanted = False
        publisher, self.live = self.live, None
        if self.recorder is not None:
            self.recorder.live = None  # the writer stops handing over before the server goes
        return publisher.stop() if publisher is not None else None

    def live_stats(self) -> LiveStats | None:
        """The live view's counters now, or None when it is off (any thread; never blocks)."""
        live = self.live
        return live.stats() if live is not None else None

    def toggle(self) -> str:
        """Start when armed, stop when recording; says which it did."""
        runner = self._runner()
        if runner.state is RunnerState.RECORDING:
            runner.stop()
            return "stopped"
        runner.start()
        return "started"

    def stop_if_recording(self) -> bool:
        """Stop a running episode (the task's episode length is up); False if none ran."""
        runner = self._runner()
        if runner.state is RunnerState.RECORDING:
            runner.stop()
            return True
        return False

    def keep(self) -> int:
        """Keep the episode just recorded (stopping it first if it still records)."""
        runner = self._runner()
        self.stop_if_recording()
        runner.keep()
        return runner.status().kept

    def discard(self) -> int:
        """Discard the episode just recorded (stopping it first if it still records)."""
        runner = self._runner()
        self.stop_if_recording()
        runner.discard()
        return runner.status().discarded

    def rerecord(self) -> int:
        """Discard the episode just recorded and start the next one at once."""
        runner = self._runner()
        self.stop_if_recording()
        return runner.rerecord()

    def mark(self, success: bool) -> int:
        """The operator's own success/failure mark on the last finished episode.

        Stored in its session.json entry (``operator_mark``, ``operator_mark_utc``); QA
        confirms or overrules it later with a label of its own.
        """
        runner = self._runner()
        if runner.state is RunnerState.RECORDING:
            raise TransitionError("stop the episode first, then mark it")
        st = runner.status()
        index = st.undecided if st.undecided is not None else st.episode_index
        if index is None or self.session is None:
            raise TransitionError("no episode to mark yet")
        entry = self.session.entry(index)
        self.session.set_status(
            index,
            entry.status,
            operator_mark="success" if success else "failure",
            operator_mark_utc=iso_utc(runner.recorder.clock.now_utc_ns()),
        )
        return index

    def housekeeping(self) -> int | None:
        """Stop an episode that must stop (fault, write failure, low disk); free bytes."""
        if self.runner is not None:
            self.runner.poll()
        where = self.session.root if self.session is not None else self.data_root
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            return shutil.disk_usage(where).free
        except OSError:
            return None

    def end_session(self) -> Session | None:
        """Close the session: an undecided episode is kept, discarded files are deleted."""
        session = self.session
        try:
            if self.runner is not None:
                self.runner.close()
        finally:
            self.runner = None
            try:
                if self.recorder is not None:
                    self.recorder.stop()
            finally:
                wanted = self.live_wanted
                self.set_live(False)
                self.live_wanted = wanted  # the next session starts with the view as this one
                self.recorder = None
                self.session = None
        return session

    def close(self) -> None:
        """End any session and release the rig."""
        try:
            self.end_session()
        finally:
            if self.runtime is not None:
                self.runtime.close()
            self.runtime = None
            self.loaded = None
            self.signin = None

    def _runner(self) -> EpisodeRunner:
        if self.runner is None:
            raise RuntimeError("no session is open")
        return self.runner


def advice(reason: str) -> tuple[str, str]:
    """Split an engine stop reason into (cause, fix) for the fault banner."""
    if reason.startswith("fault:"):
        cause = reason.removeprefix("fault:").strip()
        return cause, (
            "Followers hold or are torqued off. Check power and cable of the bus named above, "
            "then End session and run the pre-flight checks again."
        )
    if reason.startswith("disk_low"):
        return reason.removeprefix("disk_low:").strip() + " (below the stop limit)", (
            "The episode was finished cleanly. Free space, or End session and pick a larger "
            "data disk."
        )
    if reason.startswith("write failed"):
        return reason, "End session; the file can be rebuilt with `teleop recover`."
    cause, sep, fix = reason.partition("; ")
    return cause, fix if sep else "End session and run the pre-flight checks again."
