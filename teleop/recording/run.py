"""``teleop record``: open the rig, create a session, record N episodes of S seconds."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rigs.spec import LoadedRig, load_rig
from teleop.clock import SessionClock, iso_utc
from teleop.episode.recover import recover
from teleop.errors import TeleopError
from teleop.recording.disk import DiskGuard, DiskSpaceError
from teleop.recording.lifecycle import EpisodeRunner
from teleop.recording.policy import DEFAULT_POLICY, RecordingPolicy
from teleop.recording.preflight import Calibration, load_calibration
from teleop.recording.recorder import EpisodeResult, Recorder
from teleop.rig_runtime import RigRuntime
from teleop.session import Session, check_writable_root, find_unfinished, resolve_data_root

if TYPE_CHECKING:
    from teleop.live import LiveAddress, LivePublisher

log = logging.getLogger(__name__)

# Streams run this long before the first episode so cameras and the loop are in step.


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def describe_result(result: EpisodeResult) -> str:
    """One progress line per episode."""
    q = result.quality
    flags = "; ".join(q.flags) or "none"
    if q.duration_s is None or q.achieved_rate_hz is None:
        return f"episode {result.index}: partial ({result.path.name}); flags: {flags}"
    return (
        f"episode {result.index}: {q.duration_s:.1f} s, {q.achieved_rate_hz:.1f} Hz, flags: {flags}"
    )


def start_session(
    runtime: RigRuntime,
    data_root: Path,
    *,
    operator: str,
    task: str,
    policy: RecordingPolicy = DEFAULT_POLICY,
    resume: Path | None = None,
    live: LivePublisher | None = None,
) -> tuple[Recorder, Session]:
    """Start the control loop and cameras, run the start checks, then create (or reopen)
    the session folder: a Recorder complete and recording into it.

    Bus problems (missing port, motor not answering, wrong model) and failed start checks
    raise before the session folder exists, so a failed start leaves nothing behind. ``live``,
    a started :class:`~teleop.live.LivePublisher`, is given every message the episodes write.
    """
    existing = data_root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    guard = DiskGuard(
        existing, int(policy.min_free_gb * 1024**3), int(policy.stop_free_gb * 1024**3)
    )
    guard.check_can_start()  # before anything moves or any folder is made

    def calibration() -> Calibration:
        return load_calibration(
            runtime.spec, data_root, allow_uncalibrated=policy.allow_uncalibrated
        )

    clock = SessionClock.measure()
    recorder = Recorder(
        runtime, clock, policy=policy, disk_guard=guard, calibration=calibration, live=live
    )
    recorder.start()
    try:
        if resume is not None:
            session = Session.open(resume)
            if session.manifest.rig_id != runtime.spec.id:
                raise TeleopError(
                    f"{resume}: recorded on rig {session.manifest.rig_id!r}, not "
                    f"{runtime.spec.id!r}; resume it with --rig {session.manifest.rig_id}"
                )
            session.manifest.closed_utc = None
            session.save()
        else:
            session = Session.create(
                data_root,
                operator=operator,
                task=task,
                rig_id=runtime.spec.id,
                rig_sha256=runtime.loaded.sha256,
                started_utc=iso_utc(clock.now_utc_ns()),
            )
    except BaseException:
        recorder.stop()
        raise
    recorder.open_session(session)
    return recorder, session


def recover_unfinished(session: Session) -> list[Path]:
    """Rebuild every crash-truncated episode of ``session`` and list it as ``recovered``."""
    done = []
    for partial in session.unfinished():
        report = recover(partial)
        session.register_recovered(
            partial, report.output, duration_s=report.duration_s, stopped_at=report.stopped_at
        )
        partial.unlink()  # its content now lives, complete, in the recovered file
        done.append(report.output)
    return done


def run_record(
    *,
    rig: str,
    operator: str,
    task: str,
    episodes: int,
    seconds: float,
    data_dir: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    policy: RecordingPolicy = DEFAULT_POLICY,
    resume: str | None = None,
    recover_partial: bool = False,
    live: LiveAddress | None = None,
) -> Path:
    """Record and return the session directory. Any file already closed stays valid.

    With ``live``, a Foxglove WebSocket server listens there for the whole session (its
    address is checked by binding, before the rig opens or any folder is made) and serves
    what the episodes write; its counters are the last progress line.
    """
    say = progress or (lambda line: None)
    loaded = load_rig(rig)
    if policy.rate_hz is not None and not 1.0 <= policy.rate_hz <= 1000.0:
        raise TeleopError(
            f"--rate {policy.rate_hz:g}: the control rate must be between 1 and 1000 Hz"
        )
    data_root = resolve_data_root(data_dir)
    check_writable_root(data_root)
    publisher: LivePublisher | None = None
    if live is not None:
        from teleop.live import LivePublisher

        publisher = LivePublisher(live, camera_fps=loaded.spec.live.camera_fps).start()
        say(f"live view: {publisher.url} (in Foxglove: Open connection, Foxglove WebSocket)")
    try:
        return _record_session(
            loaded,
            data_root,
            operator=operator,
            task=task,
            episodes=episodes,
            seconds=seconds,
            seed=seed,
            say=say,
            policy=policy,
            resume=resume,
            recover_partial=recover_partial,
            live=publisher,
        )
    finally:
        if publisher is not None:
            say(publisher.stop().describe())


def _record_session(
    loaded: LoadedRig,
    data_root: Path,
    *,
    operator: str,
    task: str,
    episodes: int,
    seconds: float,
    seed: int,
    say: Callable[[str], None],
    policy: RecordingPolicy,
    resume: str | None,
    recover_partial: bool,
    live: LivePublisher | None,
) -> Path:
    resume_root = Path(resume) if resume else None
    for partial in find_unfinished(data_root):
        if recover_partial and resume_root is not None and partial.parent == resume_root:
            continue  # recovered below, once the session is open
        say(f"unfinished episode {partial}: rebuild it with `teleop recover {partial}`")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with RigRuntime(loaded, seed=seed) as runtime:
            recorder, session = start_session(
                runtime,
                data_root,
                operator=operator,
                task=task,
                policy=policy,
                resume=resume_root,
                live=live,
            )
            if recover_partial:
                for out in recover_unfinished(session):
                    say(f"recovered {out}")
            runner = EpisodeRunner(recorder, session)
            say(f"session {session.root}")
            try:
                recorder.settle()  # streams warm before the first episode
                for _ in range(episodes):
                    result = runner.record(seconds)
                    say(describe_result(result))
                    if recorder.fault is not None:
                        raise recorder.fault
                    if recorder.write_error is not None:
                        raise recorder.write_error
                    reason = runner.status().stop_reason
                    if reason is not None and reason.startswith("disk_low"):
                        raise DiskSpaceError(f"stopped after episode {result.index}: {reason}")
            finally:
                try:
                    runner.close()
                finally:
                    recorder.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return session.root
