"""The one thread that owns an episode's MCAP writer.

The control thread and the capture threads hand over samples and frames without blocking:
joint samples go to an unbounded deque (never dropped), frames to a bounded one (a frame that
finds it full is dropped and counted). This thread drains both, writes, writes /diagnostics
once a second and makes everything so far durable (flush + fsync) twice a second.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from rigs.cameras.base import Intrinsics
from rigs.spec import RigSpec
from teleop.clock import SessionClock
from teleop.control.loop import ControlSample
from teleop.episode.cdr import DiagnosticStatus
from teleop.episode.schemas import DEPTH_PNG_FORMAT, arm_frame, color_frame, depth_frame
from teleop.episode.writer import EpisodeWriter
from teleop.recording.capture import EncodedFrame
from teleop.recording.quality import EpisodeStats

log = logging.getLogger(__name__)


class EpisodeWriterThread:
    """Writes one episode. ``put_*`` may be called from any thread; they never block."""

    def __init__(
        self,
        writer: EpisodeWriter,
        rig: RigSpec,
        clock: SessionClock,
        intrinsics: dict[str, Intrinsics],
        diagnostics: Callable[[], list[DiagnosticStatus]],
        *,
        frame_queue_max: int = 64,
        durable_every_s: float = 0.5,
    ):
        self.writer = writer
        self.clock = clock
        self.stats = EpisodeStats(rig.control_rate_hz, rig.quality.idle_speed_rad_s)
        self._leaders = [a.name for a in rig.leaders]
        self.error: BaseException | None = None
        self._intrinsics = intrinsics
        self._diagnostics = diagnostics
        self._frame_queue_max = frame_queue_max
        self._durable_every_s = durable_every_s
        self._samples: deque[ControlSample] = deque()
        self._frames: deque[EncodedFrame] = deque()
        self._events: deque[tuple[int, str, str]] = deque()
        self._camera_events: deque[tuple[str, str, int, str]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._joint_names = {a.name: a.joint_names for a in rig.arms}
        self._arm_frames = {a.name: arm_frame(a.name) for a in rig.arms}
        self._rig_frame = rig.id
        self._thread = threading.Thread(target=self._run, name="episode-writer", daemon=True)

    def set_rate(self, rate_hz: float) -> None:
        self.stats.requested_rate_hz = rate_hz

    # -- producers --------------------------------------------------------------------------
    def put_sample(self, sample: ControlSample) -> None:
        if self.error is not None:
            return  # the writer died; the recorder is about to close the episode as partial
        self._samples.append(sample)
        self._wake.set()

    def put_frame(self, frame: EncodedFrame) -> bool:
        if self.error is not None:
            return False
        if len(self._frames) >= self._frame_queue_max:
            # Counted here, read by this thread only after close(): an int add is atomic enough.
            counts = self.stats.camera(frame.camera)
            counts.dropped += 1
            counts.device_gaps += frame.gap_before
            return False
        self._frames.append(frame)
        self._wake.set()
        return True

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Drain what is queued and stop. The caller then finishes the writer."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError("episode writer did not drain within 30 s")
        if self.error is not None:
            raise self.error

    @property
    def backlog(self) -> tuple[int, int]:
        return len(self._samples), len(self._frames)

    def event(self, kind: str, detail: str = "", mono_ns: int | None = None) -> None:
        """Record an episode event (start, stop, mark, fault) at ``mono_ns`` (default: now)."""
        utc = self.clock.now_utc_ns() if mono_ns is None else self.clock.to_utc_ns(mono_ns)
        self._events.append((utc, kind, detail))
        self._wake.set()

    def camera_event(self, camera: str, kind: str, detail: str, mono_ns: int) -> None:
        """A camera health event: on /episode/events and in the camera's quality counts."""
        self.event(kind, f"{camera}: {detail}", mono_ns)
        self._camera_events.append((camera, kind, mono_ns, detail))

    def _run(self) -> None:
        next_durable = time.monotonic() + self._durable_every_s
        next_diagnostics = time.monotonic() + 1.0
        try:
            while True:
                self._wake.wait(0.05)
                self._wake.clear()
                stopping = self._stop.is_set()
                self._drain()
                now = time.monotonic()
                if now >= next_diagnostics:
                    self._write_diagnostics()
                    next_diagnostics = now + 1.0
                if now >= next_durable:
                    self.writer.flush_to_disk()
                    next_durable = now + self._durable_every_s
                if stopping:
                    self._drain()
                    self._write_diagnostics()
                    return
        except BaseException as exc:  # handed to close(): the recorder decides what to do
            self.error = exc
            if isinstance(exc, OSError):  # the disk: the recorder reports it in one line
                log.debug("episode writer failed: %s", exc)
            else:
                log.exception("episode writer failed")

    def _drain(self) -> None:
        while self._events:
            utc, kind, detail = self._events.popleft()
            self.writer.write_event(utc, utc, kind, detail, frame_id=self._rig_frame)
        while self._camera_events:
            camera, kind, mono_ns, detail = self._camera_events.popleft()
            self.stats.add_camera_event(camera, kind, mono_ns, detail)
        while self._samples:
            self._write_sample(self._samples.popleft())
            # Interleave frames so neither stream waits behind a long burst of the other.
            if self._frames:
                self._write_frame(self._frames.popleft())
        while self._frames:
            self._write_frame(self._frames.popleft())

    def _write_sample(self, s: ControlSample) -> None:
        utc = self.clock.to_utc_ns
        w = self.writer
        for arm, a in s.arms.items():
            r = a.reading
            w.write_joint_state(
                f"/{arm}/joint_states",
                utc(a.stamp_ns),
                utc(a.receipt_ns),
                self._joint_names[arm],
                r.position_rad,
                r.velocity_rad_s,
                r.current_ma,
                frame_id=self._arm_frames[arm],
            )
        cmd_utc = utc(s.command_ns)
        for follower, target in s.targets_rad.items():
            names, frame = self._joint_names[follower], self._arm_frames[follower]
            w.write_joint_state(
                f"/{follower}/joint_targets", cmd_utc, cmd_utc, names, target, frame_id=frame
            )
            w.write_joint_state(
                f"/{follower}/joint_commands",
                cmd_utc,
                cmd_utc,
                names,
                s.commands_rad[follower],
                frame_id=frame,
            )
        leaders = np.concatenate([s.arms[name].reading.position_rad for name in self._leaders])
        self.stats.add_sample(s.cycle, s.start_ns, s.period_ns, leaders)

    def _write_frame(self, f: EncodedFrame) -> None:
        utc = self.clock.to_utc_ns
        stamp, log_time = utc(f.capture_ns), utc(f.receipt_ns)
        w = self.writer
        frame_id = color_frame(f.camera)
        w.write_compressed_image(
            f"/cameras/{f.camera}/color/compressed", stamp, log_time, frame_id, "jpeg", f.jpeg,
            sequence=f.frame_number,
        )  # fmt: skip
        k = self._intrinsics[f.camera]
        w.write_camera_info(
            f"/cameras/{f.camera}/camera_info",
            stamp,
            log_time,
            frame_id,
            k.width,
            k.height,
            [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0],
            list(k.coeffs),
            k.distortion_model,
            [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            sequence=f.frame_number,
        )
        if f.depth_png is not None:
            w.write_compressed_image(
                f"/cameras/{f.camera}/depth",
                stamp,
                log_time,
                depth_frame(f.camera),
                DEPTH_PNG_FORMAT,
                f.depth_png,
                sequence=f.frame_number,
            )
        self.stats.add_frame(
            f.camera,
            f.frame_number,
            f.capture_ns,
            gap_before=f.gap_before,
            duplicate=f.duplicate,
            latency_ns=time.monotonic_ns() - f.capture_ns,
        )

    def _write_diagnostics(self) -> None:
        now = self.clock.now_utc_ns()
        statuses = self._diagnostics()
        backlog_s, backlog_f = self.backlog
        statuses.append(
            DiagnosticStatus(
                0,
                "recorder/writer",
                "ok",
                "",
                {"queued_samples": str(backlog_s), "queued_frames": str(backlog_f)},
            )
        )
        self.writer.write_diagnostics("/diagnostics", now, now, statuses, frame_id=self._rig_frame)


def metadata_values(record: dict[str, object]) -> dict[str, str]:
    """MCAP metadata maps strings to strings: nested values become JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in record.items()}
