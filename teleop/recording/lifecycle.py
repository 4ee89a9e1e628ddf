"""The episode lifecycle that the CLI and the GUI share.

    IDLE --arm--> ARMED --start--> RECORDING --stop--> FINALIZING --> ARMED
      ^             |                                                   |
      +---disarm----+<--------------------------------------------------+

After ``stop`` the episode's file is finished and listed in session.json as ``recorded``;
``keep`` makes it ``kept``, ``discard`` moves it aside (``discarded/``, deleted when the
session closes), ``rerecord`` discards the last episode and starts the next one. Episode
numbers come from the session and are never reused. A recording also stops by itself on a
control fault, a failed write or low disk space (``poll``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from teleop.clock import iso_utc
from teleop.errors import TeleopError
from teleop.recording.recorder import EpisodeResult, Recorder
from teleop.session import Session

log = logging.getLogger(__name__)


class RunnerState(StrEnum):
    IDLE = "idle"
    ARMED = "armed"
    RECORDING = "recording"
    FINALIZING = "finalizing"


class TransitionError(TeleopError):
    """An action that the current state does not allow (e.g. stop while idle)."""


@dataclass(frozen=True)
class RunnerStatus:
    """A snapshot for displays: cheap to take, never blocks on disk."""

    state: RunnerState
    episode_index: int | None  # the episode recording now, else the last one finished
    elapsed_s: float
    kept: int
    discarded: int
    undecided: int | None  # last finished episode still waiting for keep/discard
    last_flags: tuple[str, ...]
    stop_reason: str | None


class EpisodeRunner:
    """Drives a Recorder through the lifecycle above; one per session."""

    def __init__(self, recorder: Recorder, session: Session):
        self.recorder = recorder
        self.session = session
        self.state = RunnerState.IDLE
        self.last: EpisodeResult | None = None
        self._undecided: int | None = None
        self._started_at: float | None = None
        self._recording_index: int | None = None
        self._stop_reason: str | None = None
        self._lock = threading.RLock()

    # -- queries ----------------------------------------------------------------------------
    def status(self) -> RunnerStatus:
        counts = {"kept": 0, "discarded": 0}
        for e in self.session.episodes:
            if e.status in counts:
                counts[e.status] += 1
        elapsed = time.monotonic() - self._started_at if self._started_at else 0.0
        flags = tuple(self.last.quality.flags) if self.last else ()
        return RunnerStatus(
            self.state,
            self._recording_index or (self.last.index if self.last else None),
            elapsed,
            counts["kept"],
            counts["discarded"],
            self._undecided,
            flags,
            self._stop_reason,
        )

    def _require(self, *allowed: RunnerState, action: str) -> None:
        if self.state not in allowed:
            names = " or ".join(s.value for s in allowed)
            raise TransitionError(f"cannot {action} while {self.state.value} (only when {names})")

    # -- transitions ------------------------------------------------------------------------
    def arm(self) -> None:
        with self._lock:
            self._require(RunnerState.IDLE, action="arm")
            if self.recorder.fault is not None:
                raise TransitionError(f"cannot arm: {self.recorder.fault}")
            self.recorder.disk_guard.check_can_start()
            self.state = RunnerState.ARMED

    def disarm(self) -> None:
        with self._lock:
            self._require(RunnerState.ARMED, action="disarm")
            self.state = RunnerState.IDLE

    def start(self) -> int:
        """Start recording the next episode; returns its number."""
        with self._lock:
            self._require(RunnerState.ARMED, action="start")
            if self._undecided is not None:
                self.keep()  # starting the next one is the operator's "that one was fine"
            path = self.recorder.start_episode()
            self._recording_index = int(path.stem.split("_")[1])
            self._started_at = time.monotonic()
            self._stop_reason = None
            self.state = RunnerState.RECORDING
            return self._recording_index

    def stop(self) -> EpisodeResult:
        """Finish the episode's file; it then waits for keep or discard."""
        with self._lock:
            self._require(RunnerState.RECORDING, action="stop")
            self.state = RunnerState.FINALIZING
            try:
                result = self.recorder.stop_episode()
            finally:
                self._started_at = None
                self._recording_index = None
                self.state = RunnerState.ARMED
            self.last = result
            entry = self.session.entry(result.index)
            if entry.status == "kept":  # a finished file: the operator decides next
                self.session.set_status(result.index, "recorded")
                self._undecided = result.index
            if self.recorder.fault is not None or self.recorder.write_error is not None:
                self.state = RunnerState.IDLE  # nothing more until the cause is fixed
            return result

    def poll(self) -> EpisodeResult | None:
        """Stop a recording that must stop (fault, failed write, low disk); call often."""
        with self._lock:
            if self.state is not RunnerState.RECORDING:
                return None
            reason = self.recorder.stop_reason
            if reason is None:
                return None
            self._stop_reason = reason
            # A failed write is reported once, whole, by whoever ran the episode.
            (log.info if reason.startswith("write failed") else log.warning)(
                "stopping episode: %s", reason
            )
            result = self.stop()
            if reason.startswith("disk_low"):
                if reason not in result.quality.flags:
                    result = dataclasses.replace(result, quality=result.quality.flagged(reason))
                    self.last = result
                    self.session.set_status(
                        result.index,
                        self.session.entry(result.index).status,
                        quality=result.quality,
                    )
                self.state = RunnerState.IDLE
            return result

    def record(self, seconds: float, *, keep: bool = True) -> EpisodeResult:
        """Unattended: start, record ``seconds`` (or until something must stop it), stop, keep."""
        if self.state is RunnerState.IDLE:
            self.arm()
        self.start()
        deadline = time.monotonic() + seconds
        result = None
        while result is None and time.monotonic() < deadline:
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
            result = self.poll()
        if result is None:
            result = self.stop()
        if keep and self._undecided == result.index:
            self.keep()
        return result

    def keep(self, index: int | None = None) -> None:
        with self._lock:
            index = self._decided_index(index)
            self.session.set_status(index, "kept")
            if index == self._undecided:
                self._undecided = None

    def discard(self, index: int | None = None) -> None:
        with self._lock:
            index = self._decided_index(index)
            self.session.discard(index)
            if index == self._undecided:
                self._undecided = None

    def rerecord(self) -> int:
        """Discard the last episode and start the next one."""
        with self._lock:
            self._require(RunnerState.ARMED, action="re-record")
            self.discard()
            return self.start()

    def _decided_index(self, index: int | None) -> int:
        if index is None:
            index = (
                self._undecided
                if self._undecided is not None
                else (self.last.index if self.last else None)
            )
        if index is None:
            raise TransitionError("no episode to keep or discard yet")
        status = self.session.entry(index).status
        if status not in ("recorded", "kept", "discarded"):
            raise TransitionError(
                f"episode {index} is {status}; only finished episodes can be kept or discarded"
            )
        return index

    def close(self) -> None:
        """End of session: an undecided episode is kept, discarded files are deleted."""
        with self._lock:
            if self.state is RunnerState.RECORDING:
                self.stop()
            if self._undecided is not None:
                self.keep()
            self.state = RunnerState.IDLE
            self.session.close(iso_utc(self.recorder.clock.now_utc_ns()))
