"""The record screen's health bar: how the recording is doing, measured, in a few lines.

Control loop rate and period error, overruns and bus retries; each camera's capture rate and
the frames dropped this episode; free disk space and the hours of recording it holds; the live
view's counters when it is on. Rates are measured over about one second from the counters
the screen pulls; nothing here blocks.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import QLabel, QWidget

from teleop.live import LiveStats
from teleop.session import Session


@dataclass
class _Rates:
    """What the health bar shows, measured over about one second."""

    at: float = 0.0
    cycle: int | None = None
    captured: dict[str, int] | None = None
    loop_hz: float = 0.0
    jitter_ms: float = 0.0
    camera_fps: dict[str, float] | None = None


class HealthBar(QLabel):
    """The health lines of a recording; :meth:`show_health` on every tick."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("", parent)
        self.setWordWrap(True)
        self.setStyleSheet(
            "font-family: monospace; background: #f0f0f0; color: black; padding: 4px;"
        )
        self.free_bytes: int | None = None
        """Free space where the session is written (the engine thread measures it)."""
        self._periods: deque[tuple[float, int]] = deque(maxlen=200)
        self._rates = _Rates()

    def reset(self) -> None:
        """Start measuring afresh (a new session)."""
        self._rates = _Rates()

    def add_period(self, period_ns: int) -> None:
        """A control cycle's period, as the newest control sample reports it."""
        self._periods.append((time.monotonic(), period_ns))

    def show_health(
        self, recorder: Any, now: float, session: Session | None, live: LiveStats | None
    ) -> None:
        """Measure the rates if a second has passed, then show every line."""
        if now - self._rates.at >= 1.0:
            self._measure_rates(recorder, now)
        r = self._rates
        c = recorder.control.counters
        loop = "STOPPED (fault)" if recorder.control.fault else f"{r.loop_hz:5.1f} Hz"
        parts = [
            f"loop {loop} (target {recorder.rate_hz:g})  period error up to "
            f"{r.jitter_ms:.2f} ms (sampled)"
            f"  overruns {c.overruns}  bus retries {c.bus_retries}"
        ]
        fps = r.camera_fps or {}
        drops = recorder.frames_dropped_this_episode()
        cams = []
        for name in recorder.captures:
            dropped = drops.get(name, 0)
            cams.append(
                f"{name} {fps.get(name, 0.0):4.1f} fps"
                + (f" ({dropped} dropped)" if dropped else "")
            )
        parts.append("cameras: " + ", ".join(cams))
        parts.append(f"disk: {self._disk_text(session)}")
        if live is not None:
            parts.append(live.describe())
        self.setText("\n".join(parts))

    def _measure_rates(self, recorder: Any, now: float) -> None:
        r = self._rates
        latest = recorder.control.latest
        captured = {name: cap.stats.captured for name, cap in recorder.captures.items()}
        dt = now - r.at
        if r.captured is not None and dt > 0:
            r.camera_fps = {
                n: (captured[n] - r.captured.get(n, captured[n])) / dt for n in captured
            }
        if latest is not None and r.cycle is not None and dt > 0:
            r.loop_hz = (latest.cycle - r.cycle) / dt
        nominal_ns = 1e9 / recorder.rate_hz
        recent = [p for at, p in self._periods if at > now - 1.0 and p > 0]
        r.jitter_ms = max((abs(p - nominal_ns) for p in recent), default=0.0) / 1e6
        r.at, r.cycle, r.captured = now, latest.cycle if latest else None, captured

    def _disk_text(self, session: Session | None) -> str:
        free = self.free_bytes
        if free is None:
            return "measuring…"
        text = f"{free / 1e9:.1f} GB free"
        rates = [
            e.bytes / e.duration_s
            for e in (session.episodes if session else [])
            if e.bytes and e.duration_s
        ]
        if rates:
            text += f", about {free / rates[-1] / 3600:.1f} h of recording left"
        return text
