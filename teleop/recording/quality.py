"""What the writer learns about an episode while writing it, and the quality record from it.

The quality record is stored in the episode (metadata ``quality``) and in session.json. Its
``flags`` list every gate of the rig's ``[quality]`` table that the episode failed, with the
numbers, so an operator and QA see why.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from rigs.spec import QualityGates


@dataclass
class CameraCounts:
    written: int = 0
    dropped: int = 0  # dropped by the recorder because the writer queue was full
    device_gaps: int = 0  # frames missing in the device's own numbering
    duplicates: int = 0  # frames identical in content to the one before
    first_number: int | None = None
    stamps_backwards: int = 0
    last_stamp_ns: int = 0
    capture_ns: array = field(default_factory=lambda: array("q"))  # monotonic capture stamps
    latencies_ns: array = field(default_factory=lambda: array("q"))  # capture -> written
    events: list[tuple[str, int, str]] = field(default_factory=list)  # (kind, monotonic ns, detail)


@dataclass
class EpisodeStats:
    """Accumulated by the writer thread (the only thread that touches it while recording)."""

    requested_rate_hz: float
    idle_speed_rad_s: float = 0.05
    samples_written: int = 0
    first_cycle: int | None = None
    last_cycle: int | None = None
    first_start_ns: int | None = None
    last_start_ns: int | None = None
    sample_ns: array = field(default_factory=lambda: array("q"))  # cycle start times
    periods_ns: array = field(default_factory=lambda: array("q"))
    idle_samples: int = 0
    joint_stamps_backwards: int = 0
    cameras: dict[str, CameraCounts] = field(default_factory=dict)
    _last_leaders: np.ndarray | None = None

    def camera(self, name: str) -> CameraCounts:
        if name not in self.cameras:
            self.cameras[name] = CameraCounts()
        return self.cameras[name]

    def add_sample(
        self, cycle: int, start_ns: int, period_ns: int, leaders_rad: np.ndarray | None = None
    ) -> None:
        """One control cycle; ``leaders_rad`` (all leader joints) feeds the idle fraction."""
        if self.first_cycle is None:
            self.first_cycle, self.first_start_ns = cycle, start_ns
        elif period_ns:
            self.periods_ns.append(period_ns)
        if self.last_start_ns is not None and start_ns < self.last_start_ns:
            self.joint_stamps_backwards += 1
        if leaders_rad is not None:
            if (
                self._last_leaders is not None
                and self.last_start_ns is not None
                and start_ns > self.last_start_ns
            ):
                dt = (start_ns - self.last_start_ns) / 1e9
                if np.max(np.abs(leaders_rad - self._last_leaders)) / dt < self.idle_speed_rad_s:
                    self.idle_samples += 1
            self._last_leaders = leaders_rad
        self.last_cycle, self.last_start_ns = cycle, start_ns
        self.sample_ns.append(start_ns)
        self.samples_written += 1

    def add_camera_event(self, camera: str, kind: str, mono_ns: int, detail: str) -> None:
        self.camera(camera).events.append((kind, mono_ns, detail))

    def add_frame(
        self,
        camera: str,
        number: int,
        capture_ns: int,
        *,
        gap_before: int = 0,
        duplicate: bool = False,
        latency_ns: int = 0,
    ) -> None:
        """One written frame. ``gap_before``: device frames missing just before this one."""
        c = self.camera(camera)
        c.duplicates += duplicate
        c.latencies_ns.append(latency_ns)
        if c.first_number is None:
            c.first_number = number
        else:
            c.device_gaps += gap_before
        if capture_ns < c.last_stamp_ns:
            c.stamps_backwards += 1
        c.last_stamp_ns = capture_ns
        c.capture_ns.append(capture_ns)
        c.written += 1

    # -- summary --------------------------------------------------------------------------
    @property
    def samples_lost(self) -> int:
        if self.first_cycle is None or self.last_cycle is None:
            return 0
        return (self.last_cycle - self.first_cycle + 1) - self.samples_written

    @property
    def duration_s(self) -> float:
        if self.first_start_ns is None or self.last_start_ns is None:
            return 0.0
        return (self.last_start_ns - self.first_start_ns) / 1e9

    def achieved_rate_hz(self) -> float:
        if self.samples_written < 2 or self.duration_s <= 0:
            return 0.0
        return (self.samples_written - 1) / self.duration_s

    def period_error_ms(self) -> dict[str, float]:
        if not self.periods_ns:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}
        nominal = 1e9 / self.requested_rate_hz
        err = np.abs(np.frombuffer(self.periods_ns, dtype=np.int64) - nominal) / 1e6
        return {
            "p50": float(np.percentile(err, 50)),
            "p99": float(np.percentile(err, 99)),
            "max": float(err.max()),
        }

    def jitter_ms(self) -> float:
        if len(self.periods_ns) < 2:
            return 0.0
        return float(np.std(np.frombuffer(self.periods_ns, dtype=np.int64)) / 1e6)

    def idle_fraction(self) -> float:
        return self.idle_samples / (self.samples_written - 1) if self.samples_written > 1 else 0.0

    def skew_ms(self, camera: str) -> dict[str, float]:
        """Distance from each frame's capture time to the nearest joint sample (p50/p99/max).

        Half a control period when both streams flow; large when the joint stream stalled
        around a frame, or a camera's clock mapping is off.
        """
        frames = np.frombuffer(self.camera(camera).capture_ns, dtype=np.int64)
        joints = np.frombuffer(self.sample_ns, dtype=np.int64)
        if joints.size:
            # Frames captured just before the episode's first sample or after its last belong to
            # the episode's edges, not to a misalignment.
            frames = frames[(frames >= joints[0]) & (frames <= joints[-1])]
        if frames.size == 0 or joints.size == 0:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}
        i = (
            np.clip(np.searchsorted(joints, frames), 1, joints.size - 1)
            if joints.size > 1
            else np.zeros_like(frames)
        )
        d = np.abs(frames - joints[i])
        if joints.size > 1:
            d = np.minimum(d, np.abs(frames - joints[i - 1]))
        ms = d / 1e6
        return {
            k: round(float(v), 3)
            for k, v in (
                ("p50", np.percentile(ms, 50)),
                ("p99", np.percentile(ms, 99)),
                ("max", ms.max()),
            )
        }


def _ms_percentiles(values_ns: array) -> dict[str, float]:
    if not values_ns:
        return {"p50": 0.0, "p99": 0.0}
    a = np.frombuffer(values_ns, dtype=np.int64) / 1e6
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
    }


class CameraEventRecord(BaseModel):
    """A camera health event, seconds into the episode."""

    model_config = ConfigDict(frozen=True)

    kind: str
    t_s: float
    detail: str


class CameraQuality(BaseModel):
    """One camera's figures in an episode's quality record."""

    model_config = ConfigDict(frozen=True)

    written: int
    fps: float
    dropped: int
    device_gaps: int
    duplicates: int
    stamps_backwards: int
    latency_ms: dict[str, float]
    skew_ms: dict[str, float]
    events: list[CameraEventRecord]


class Quality(BaseModel):
    """An episode's quality record: its figures and flags, stored in the MCAP (metadata
    ``quality``) and in session.json. A partial episode (a failed write) has flags only."""

    model_config = ConfigDict(frozen=True)

    requested_rate_hz: float | None = None
    achieved_rate_hz: float | None = None
    duration_s: float | None = None
    period_error_ms: dict[str, float] | None = None
    jitter_ms: float | None = None
    overruns: int | None = None
    joint_samples: int | None = None
    joint_samples_lost: int | None = None
    idle_fraction: float | None = None
    cameras: dict[str, CameraQuality] | None = None
    bus_retries: int | None = None
    bus_failed_reads: int | None = None
    clamp_hits: int | None = None
    flags: list[str] = []

    def flagged(self, *flags: str) -> Quality:
        """The same record with ``flags`` added."""
        return self.model_copy(update={"flags": [*self.flags, *flags]})

    def record(self) -> dict[str, Any]:
        """As JSON-ready values (only the fields it has), for session.json and the MCAP."""
        return self.model_dump(mode="json", exclude_none=True)


def quality_record(
    stats: EpisodeStats,
    *,
    camera_fps: dict[str, float] | None = None,
    overruns: int,
    bus_retries: int,
    bus_failed_reads: int,
    clamp_hits: int,
    gates: QualityGates | None = None,
) -> Quality:
    """The episode's quality record (numbers and flags); stored in the MCAP and session.json."""
    g = gates or QualityGates()
    rate = stats.achieved_rate_hz()
    perr = stats.period_error_ms()
    idle = stats.idle_fraction()
    flags: list[str] = []
    if rate < g.min_rate_fraction * stats.requested_rate_hz:
        flags.append(
            f"rate_low: {rate:.1f} Hz achieved of {stats.requested_rate_hz:g} Hz requested"
        )
    if perr["p99"] > g.max_p99_period_error_ms:
        flags.append(
            f"jitter_high: p99 period error {perr['p99']:.2f} ms > {g.max_p99_period_error_ms:g} ms"
        )
    if stats.samples_lost > g.max_joint_samples_lost:
        flags.append(f"samples_lost: {stats.samples_lost}")
    if stats.joint_stamps_backwards:
        flags.append(f"stamps_backwards: joint x{stats.joint_stamps_backwards}")
    if bus_failed_reads:
        flags.append(f"bus_errors: {bus_failed_reads} failed reads")
    if bus_retries > g.max_bus_retries:
        flags.append(f"bus_retries: {bus_retries} > {g.max_bus_retries}")
    if idle > g.max_idle_fraction:
        flags.append(f"idle: leaders still {idle:.0%} of the episode")
    if clamp_hits > g.max_clamp_hits:
        flags.append(f"clamp_hits: {clamp_hits} > {g.max_clamp_hits}")
    cams: dict[str, CameraQuality] = {}
    start_ns = stats.first_start_ns or 0
    duration = stats.duration_s
    for name in sorted(set(stats.cameras) | set(camera_fps or {})):
        c = stats.camera(name)
        skew = stats.skew_ms(name)
        events = [
            CameraEventRecord(kind=kind, t_s=round((t - start_ns) / 1e9, 3), detail=detail)
            for kind, t, detail in c.events
        ]
        cams[name] = CameraQuality(
            written=c.written,
            fps=round(c.written / duration, 2) if duration else 0.0,
            dropped=c.dropped,
            device_gaps=c.device_gaps,
            duplicates=c.duplicates,
            stamps_backwards=c.stamps_backwards,
            latency_ms=_ms_percentiles(c.latencies_ns),
            skew_ms=skew,
            events=events,
        )
        if c.dropped > g.max_frames_dropped:
            flags.append(f"frames_dropped: {name} x{c.dropped}")
        if c.device_gaps > g.max_frames_missing:
            flags.append(f"frames_missing: {name} x{c.device_gaps}")
        if c.duplicates > g.max_duplicate_frames:
            flags.append(f"frames_duplicated: {name} x{c.duplicates}")
        if c.stamps_backwards:
            flags.append(f"stamps_backwards: {name} x{c.stamps_backwards}")
        if skew["max"] > g.max_skew_ms:
            flags.append(f"skew_high: {name} {skew['max']:.1f} ms > {g.max_skew_ms:g} ms")
        for e in events:
            if e.kind in ("camera_stopped", "camera_frozen"):
                flags.append(f"{e.kind}: {name} at {e.t_s:.2f} s")
        fps = (camera_fps or {}).get(name)
        if fps and duration > 1.0 and c.written < 0.9 * fps * duration:
            flags.append(f"frames_low: {name} wrote {c.written} of ~{fps * duration:.0f}")
    return Quality(
        requested_rate_hz=stats.requested_rate_hz,
        achieved_rate_hz=round(rate, 3),
        duration_s=round(duration, 3),
        period_error_ms={k: round(v, 4) for k, v in perr.items()},
        jitter_ms=round(stats.jitter_ms(), 4),
        overruns=overruns,
        joint_samples=stats.samples_written,
        joint_samples_lost=stats.samples_lost,
        idle_fraction=round(idle, 3),
        cameras=cams,
        bus_retries=bus_retries,
        bus_failed_reads=bus_failed_reads,
        clamp_hits=clamp_hits,
        flags=flags,
    )
