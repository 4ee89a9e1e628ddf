"""``teleop bench record``: record on the virtual rig at several rates and print figures.

A benchmark, not a test: it prints what it measured and asserts nothing.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from rigs.spec import load_rig
from teleop.record_command import start_session
from teleop.recording.lifecycle import EpisodeRunner
from teleop.rig_runtime import RigRuntime


class _Sampler:
    """Samples RSS of this process every 100 ms on a background thread."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            rss = self.proc.memory_info().rss
            self.samples.append(rss)
            self.peak = max(self.peak, rss)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def bench_one(rig: str, rate_hz: float, seconds: float, data_root: Path) -> dict[str, object]:
    loaded = load_rig(rig)
    with RigRuntime(loaded) as runtime:
        recorder, session = start_session(
            runtime, data_root, operator="bench", task="bench", rate_hz=rate_hz
        )
        runner = EpisodeRunner(recorder, session)
        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]
        try:
            time.sleep(1.0)
            with _Sampler() as sampler:
                cpu0, wall0 = _cpu_seconds(procs), time.monotonic()
                rss0 = me.memory_info().rss
                result = runner.record(seconds)
                cpu1, wall1 = _cpu_seconds(procs), time.monotonic()
                rss1 = me.memory_info().rss
            captured = {n: c.stats.captured for n, c in recorder.captures.items()}
        finally:
            runner.close()
            recorder.stop()
    q = result.quality
    size = result.path.stat().st_size
    wall = wall1 - wall0
    return {
        "rate_hz": rate_hz,
        "quality": q,
        "cpu_percent": 100.0 * (cpu1 - cpu0) / wall,
        "cpu_cores": psutil.cpu_count(),
        "peak_rss_mb": sampler.peak / 2**20,
        "rss_growth_mb": (rss1 - rss0) / 2**20,
        "mb_per_s": size / 2**20 / wall,
        "file_mb": size / 2**20,
        "captured_total": captured,
    }


def format_result(r: dict[str, object]) -> str:
    q = r["quality"]
    assert isinstance(q, dict)
    pe = q["period_error_ms"]
    lines = [
        f"rate {r['rate_hz']:g} Hz requested: achieved {q['achieved_rate_hz']:.2f} Hz "
        f"({100 * q['achieved_rate_hz'] / r['rate_hz']:.2f} %), overruns {q['overruns']}",
        f"  period error ms: p50 {pe['p50']:.3f}  p99 {pe['p99']:.3f}  max {pe['max']:.3f}  "
        f"(jitter sd {q['jitter_ms']:.3f} ms)",
        f"  joint samples: {q['joint_samples']} written, {q['joint_samples_lost']} lost",
    ]
    for name, c in q["cameras"].items():
        lines.append(
            f"  camera {name}: written {c['written']}, dropped {c['dropped']}, "
            f"device gaps {c['device_gaps']}"
        )
    lines.append(
        f"  CPU {r['cpu_percent']:.0f} % of one core (app + virtual rig, {r['cpu_cores']} cores), "
        f"peak RSS {r['peak_rss_mb']:.0f} MB, RSS growth {r['rss_growth_mb']:+.1f} MB, "
        f"written {r['mb_per_s']:.2f} MB/s ({r['file_mb']:.1f} MB)"
    )
    lines.append(f"  flags: {'; '.join(q['flags']) or 'none'}")
    return "\n".join(lines)


def run_bench_record(
    *, rig: str, seconds: float, rates: list[float], out: Callable[[str], None]
) -> None:
    out(f"teleop bench record: rig {rig}, {seconds:g} s per rate, rates {rates}")
    with tempfile.TemporaryDirectory(prefix="teleop-bench-") as tmp:
        for rate in rates:
            out(format_result(bench_one(rig, rate, seconds, Path(tmp))))
