"""Records episodes from an opened rig into a session.

Streams (control loop, cameras) run for the whole session; an episode is the span during
which their output is routed to an episode writer. Each episode file gets provenance metadata
and the rig spec at start, a quality record at the end.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from calibration.store import provenance_metadata
from rigs.dynamixel.bus import BusError
from teleop.clock import SessionClock, iso_utc
from teleop.control.loop import ControlSample
from teleop.control.process import ControlProcess
from teleop.control.ring import LoopCounters
from teleop.episode.cdr import DiagnosticStatus
from teleop.episode.verify import file_sha256
from teleop.episode.writer import EpisodeWriter
from teleop.errors import TeleopError
from teleop.recording.capture import CameraEvent, CaptureThread, EncodedFrame
from teleop.recording.disk import DiskGuard
from teleop.recording.policy import RecordingPolicy
from teleop.recording.preflight import Calibration, PreflightError, evaluate, uncalibrated
from teleop.recording.provenance import host, software
from teleop.recording.quality import Quality, quality_record
from teleop.recording.writer_thread import EpisodeWriterThread, metadata_values
from teleop.rig_runtime import RigRuntime
from teleop.session import Session
from teleop.session_manifest import EpisodeEntry

if TYPE_CHECKING:
    from teleop.live.publisher import LivePublisher

log = logging.getLogger(__name__)

SETTLE_FRAMES = 30  # about a second at 30 fps
SETTLE_TIMEOUT_S = 10.0


class EpisodeWriteFailed(TeleopError):
    """Writing an episode failed; it was kept as a recoverable .partial."""


@dataclass(frozen=True)
class _OpenEpisode:
    index: int
    path: Path
    writer: EpisodeWriter
    thread: EpisodeWriterThread
    start_utc_ns: int
    counters_before: dict[str, int]


@dataclass(frozen=True)
class EpisodeResult:
    index: int
    path: Path
    quality: Quality


class Recorder:
    """Owns the control loop and capture threads of one session on one opened rig."""

    def __init__(
        self,
        runtime: RigRuntime,
        clock: SessionClock,
        *,
        policy: RecordingPolicy,
        disk_guard: DiskGuard,
        calibration: Calibration | Callable[[], Calibration] | None = None,
        live: LivePublisher | None = None,
    ):
        self.runtime = runtime
        self.policy = policy
        # The live view, if any: attach or detach it at any time, episodes pick it up at once.
        self.live: LivePublisher | None = live
        self.session: Session | None = None
        self.clock = clock
        spec = runtime.spec
        self.rate_hz = policy.rate_hz or spec.control_rate_hz
        # A callable is loaded after the buses answered, so a port problem is reported first.
        self._calibration_source = calibration or uncalibrated(spec)
        self.calibration: Calibration = uncalibrated(spec)
        self.control = ControlProcess(
            spec,
            ports=runtime.ports,
            rate_hz=self.rate_hz,
            sink=self._on_sample,
        )
        self.captures = {
            name: CaptureThread(cam, self._on_frame, self._on_camera_event)
            for name, cam in runtime.cameras.items()
        }
        self._active: EpisodeWriterThread | None = None
        self._diag_last: dict[str, tuple[int, int, int]] = {}
        self.write_error: EpisodeWriteFailed | None = None
        self.disk_guard = disk_guard
        self._episode: _OpenEpisode | None = None
        self._intrinsics = {name: cam.intrinsics() for name, cam in runtime.cameras.items()}

    # -- streams --------------------------------------------------------------------------
    def _on_sample(self, sample: ControlSample, counters: LoopCounters) -> None:
        active = self._active
        if active is not None:
            active.put_sample(sample)

    def _on_frame(self, frame: EncodedFrame) -> None:
        active = self._active
        if active is not None:
            active.put_frame(frame)

    def _on_camera_event(self, event: CameraEvent) -> None:
        active = self._active
        if active is not None:
            active.camera_event(event.camera, event.kind, event.detail, event.at_ns)

    def _live_tap(
        self, topic: str, type_name: str, log_time_ns: int, data: bytes | bytearray
    ) -> None:
        # The episode writer's tap (its thread): hands the bytes just written to the live view.
        live = self.live
        if live is not None:
            live.tap(topic, type_name, log_time_ns, data)

    def open_session(self, session: Session) -> None:
        """Record into ``session`` (made once the buses answered and the checks passed); the
        disk guard now watches its folder."""
        self.session = session
        self.disk_guard.path = session.root

    def start(self) -> None:
        """Connect the buses and start the control loop and the cameras.

        Bus problems (missing port, motor not answering, wrong model) raise here, before any
        session exists. Nothing is recorded until ``start_episode``.
        """
        self.control.start()
        source = self._calibration_source
        try:
            self.calibration = source() if callable(source) else source
        except BaseException:
            self.control.stop()
            raise
        # An uncalibrated Calibration was allowed by whoever gave it (identity mappings).
        calibrated = self.calibration.calibrated
        problems = evaluate(
            self.runtime.spec,
            {r.target: r for r in self.calibration.records},
            motors=self.control.motors,
            positions=self.control.initial_positions,
            policy=self.policy if calibrated else replace(self.policy, allow_uncalibrated=True),
        ).failures
        if problems:
            self.control.stop()
            raise PreflightError(problems)
        self.control.go(self.calibration.mappings)
        if self.runtime.virtual is not None:
            self.runtime.virtual.hold_operator(False)  # the operator starts moving the leaders
        for cap in self.captures.values():
            cap.start()

    def stop(self) -> None:
        try:
            if self._active is not None:
                self.stop_episode()
        finally:
            self.control.stop()
            for cap in self.captures.values():
                cap.stop()

    def frames_dropped_this_episode(self) -> dict[str, int]:
        """Per camera, frames dropped for a full writer queue in the episode recording now."""
        active = self._active
        if active is None:
            return {}
        return {name: c.dropped for name, c in list(active.stats.cameras.items())}

    @property
    def fault(self) -> BusError | None:
        return self.control.fault

    # -- episodes -------------------------------------------------------------------------
    def _counters(self) -> dict[str, int]:
        c = self.control.counters
        return {
            "overruns": c.overruns,
            "bus_retries": c.bus_retries,
            "bus_failed_reads": c.bus_failed_reads,
            "clamp_hits": c.clamp_hits,
        }

    def _diagnostics(self) -> list[DiagnosticStatus]:
        c = self.control.counters
        latest = self.control.latest
        fault = self.control.fault
        level = 2 if fault else (1 if c.bus_failed_reads else 0)
        loop_values = {
            "rate_hz": f"{self.rate_hz:g}",
            "cycles": str(latest.cycle + 1 if latest else 0),
            "overruns": str(c.overruns),
            "bus_retries": str(c.bus_retries),
            "bus_failed_reads": str(c.bus_failed_reads),
            "clamp_hits": str(c.clamp_hits),
            "samples_lost": str(self.control.samples_lost),
        }
        statuses: list[DiagnosticStatus] = [
            DiagnosticStatus(level, "control/loop", str(fault or "ok"), "", loop_values)
        ]
        active = self._active
        now = time.monotonic_ns()
        for name, cap in self.captures.items():
            st = cap.stats
            before_n, before_t, before_gaps = self._diag_last.get(
                name, (st.captured, now, st.frame_gaps)
            )
            fps = (st.captured - before_n) / ((now - before_t) / 1e9) if now > before_t else 0.0
            new_gaps = st.frame_gaps - before_gaps
            self._diag_last[name] = (st.captured, now, st.frame_gaps)
            dropped = active.stats.camera(name).dropped if active else 0
            if cap.error is not None:
                level, msg = 2, f"stopped: {cap.error}"
            elif cap.frozen:
                level, msg = 2, "frozen: identical frames"
            elif new_gaps:
                level, msg = (
                    1,
                    f"{new_gaps} frames missing in the last {(now - before_t) / 1e9:.1f} s",
                )
            else:
                level, msg = 0, "ok"
            values = {
                "fps": f"{fps:.1f}",
                "captured": str(st.captured),
                "device_gaps": str(st.frame_gaps),
                "duplicates": str(st.duplicates),
                "freezes": str(st.freezes),
                "stalls": str(st.stalls),
                "dropped_this_episode": str(dropped),
            }
            statuses.append(
                DiagnosticStatus(level, f"camera/{name}", msg, cap.camera.info().serial, values)
            )
        live = self.live
        if live is not None:
            statuses.append(
                DiagnosticStatus(0, "live/view", live.url, "", live.diagnostic_values())
            )
        return statuses

    def _provenance(self, index: int, start_utc_ns: int) -> dict[str, str]:
        spec = self.runtime.spec
        loaded = self.runtime.loaded
        assert self.session is not None
        m = self.session.manifest
        return {
            "session_id": self.session.id,
            "episode_id": f"{self.session.id}/episode_{index:04d}",
            "episode_index": str(index),
            "operator": m.operator,
            "task": m.task,
            "rig_id": spec.id,
            "embodiment": spec.embodiment or spec.id,
            "rig_source": loaded.source,
            "rig_sha256": loaded.sha256,
            "rig_virtual": str(spec.virtual).lower(),
            "control_rate_hz": f"{self.rate_hz:g}",
            "calibration": (
                ", ".join(r.id for r in self.calibration.records)
                if self.calibration.calibrated
                else "none: identity leader-to-follower mapping (recorded uncalibrated)"
            ),
            "host": host(),
            "start_utc": iso_utc(start_utc_ns),
            "start_utc_ns": str(start_utc_ns),
            "clock_offset_ns": str(self.clock.offset_ns),
            "clock_uncertainty_ns": str(self.clock.uncertainty_ns),
            **software(),
        }

    def _hardware(self) -> dict[str, str]:
        info: dict[str, str] = {}
        for name, bus_info in self.control.hardware.items():
            for k, v in bus_info.items():
                info[f"{name}.{k}"] = v
        for name, cam in self.runtime.cameras.items():
            ci = cam.info()
            info[f"{name}.driver"] = ci.driver
            info[f"{name}.model"] = ci.model
            info[f"{name}.serial"] = ci.serial
            info[f"{name}.firmware"] = ci.firmware
        return info

    def start_episode(self) -> Path:
        """Open the next episode file and start routing streams into it."""
        if self.session is None:
            raise RuntimeError("attach a session before recording")
        if self._active is not None:
            raise RuntimeError("an episode is already recording")
        if self.control.fault is not None:
            raise self.control.fault
        if self.write_error is not None:
            raise self.write_error
        self.disk_guard.check_can_start()
        index, path = self.session.next_episode()
        start_utc = self.clock.now_utc_ns()
        writer = EpisodeWriter(path, tap=self._live_tap)
        writer.add_metadata("provenance", self._provenance(index, start_utc))
        writer.add_metadata("hardware", self._hardware())
        if self.calibration.calibrated:
            writer.add_metadata("calibration", provenance_metadata(self.calibration.records))
            for r in self.calibration.records:
                writer.add_attachment(
                    r.attachment_name, "application/json", r.canonical_bytes, start_utc
                )
        writer.add_attachment(
            "rig.toml", "application/toml", self.runtime.loaded.toml_text.encode(), start_utc
        )
        writer.flush_to_disk()
        thread = EpisodeWriterThread(
            writer, self.runtime.spec, self.clock, self._intrinsics, self._diagnostics
        )
        thread.set_rate(self.rate_hz)
        thread.event("start", f"episode {index}")
        self._episode = _OpenEpisode(index, path, writer, thread, start_utc, self._counters())
        thread.start()
        self._active = thread
        log.info("recording episode %d to %s", index, path)
        return path

    def settle(self, frames: int = SETTLE_FRAMES, timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
        """Let the streams run before the first episode: until every camera has delivered
        ``frames`` more frames (libraries loaded, caches warm, exposure settled) or
        ``timeout_s`` passes. True if every camera got there."""
        start = {name: cap.stats.captured for name, cap in self.captures.items()}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(cap.stats.captured - start[n] >= frames for n, cap in self.captures.items()):
                return True
            time.sleep(0.02)
        return False

    @property
    def samples_written(self) -> int:
        """Control cycles written into the episode recording now (0 between episodes)."""
        active = self._active
        return active.stats.samples_written if active is not None else 0

    def stop_episode(self) -> EpisodeResult:
        """Stop routing, drain, write the quality record and close the file."""
        ep = self._episode
        if self._active is None or ep is None:
            raise RuntimeError("no episode is recording")
        ep.thread.event("stop", "fault" if self.control.fault else "")
        self._active = None
        self._episode = None
        try:
            ep.thread.close()
        except Exception as exc:  # the disk or the file failed under the writer
            return self._close_partial(ep, exc)
        after = self._counters()
        delta = {k: after[k] - ep.counters_before[k] for k in after}
        thread, writer, path, index = ep.thread, ep.writer, ep.path, ep.index
        assert self.session is not None
        fps = {name: float(cam.spec.fps) for name, cam in self.runtime.cameras.items()}
        quality = quality_record(
            thread.stats, camera_fps=fps, gates=self.runtime.spec.quality, **delta
        )
        if self.control.fault is not None:
            quality = quality.flagged(f"fault: {self.control.fault}")
        if not self.calibration.calibrated:
            quality = quality.flagged("uncalibrated: identity mapping")
        try:
            writer.add_metadata("quality", metadata_values(quality.record()))
            writer.finish()
        except Exception as exc:
            return self._close_partial(ep, exc)
        self.session.add_episode(
            EpisodeEntry(
                index=index,
                file=path.name,
                status="kept",
                start_utc=iso_utc(ep.start_utc_ns),
                duration_s=quality.duration_s,
                bytes=path.stat().st_size,
                sha256=file_sha256(path),
                quality=quality,
            )
        )
        return EpisodeResult(index, path, quality)

    def _close_partial(self, ep: _OpenEpisode, exc: BaseException) -> EpisodeResult:
        """A write failed: keep what is on disk as a recoverable ``.partial`` and say so."""
        partial = ep.writer.abort()
        reason = (
            f"{exc.strerror} ({errno.errorcode.get(exc.errno or 0, '')})"
            if isinstance(exc, OSError)
            else str(exc)
        )
        self.write_error = EpisodeWriteFailed(
            f"episode {ep.index}: writing {ep.path.name} failed: {reason}; it was closed as "
            f"partial and can be rebuilt with `teleop recover {partial}`; free space or fix the "
            "disk before recording more"
        )
        log.debug("%s", self.write_error)  # reported once by the CLI or the GUI
        quality = Quality(flags=[f"write_failed: {reason}"])
        assert self.session is not None
        with contextlib.suppress(OSError):  # the manifest may be on the same failing disk
            self.session.add_episode(
                EpisodeEntry(
                    index=ep.index,
                    file=partial.name,
                    status="partial",
                    start_utc=iso_utc(ep.start_utc_ns),
                    error=reason,
                    quality=quality,
                )
            )
        return EpisodeResult(ep.index, partial, quality)

    @property
    def stop_reason(self) -> str | None:
        """Why recording must stop now: a control fault, a write failure or a full disk."""
        if self.control.fault is not None:
            return f"fault: {self.control.fault}"
        active = self._active
        if active is not None and active.error is not None:
            return f"write failed: {active.error}"
        if self.write_error is not None:
            return str(self.write_error)
        if active is not None and self.disk_guard.below_stop():
            return f"disk_low: {self.disk_guard.describe()}"
        return None
