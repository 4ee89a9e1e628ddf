"""Benchmark: does the operator's record screen slow recording down?

Run: ``.venv/bin/python bench/gui_rate.py [--seconds 30] [--rig sim-bimanual]``

On the virtual rig, calibrated into a temporary data root by the real procedure, one session
records two episodes of ``--seconds`` each: the first headless (no Qt event loop, as
``teleop record`` runs), the second with the record screen shown offscreen
(``QT_QPA_PLATFORM=offscreen``) and its 20 Hz timer pulling previews, plots and health. Each
episode's own quality record gives the achieved control rate, the p99 period error and every
camera's written fps; the script prints both and the difference in %. Figures are from one
run on one machine; compare, do not assert.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from teleop.calibrating import run_calibrate  # noqa: E402
from teleop.operators import Operator  # noqa: E402
from teleop.recording.lifecycle import RunnerState  # noqa: E402
from teleop.recording.policy import RecordingPolicy
from teleop.tasks import Task  # noqa: E402
from ui.record import RecordScreen  # noqa: E402
from ui.station import SignIn, Station  # noqa: E402
from ui.worker import EngineWorker  # noqa: E402


def pump(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.005)


def figures(quality: dict[str, Any]) -> dict[str, Any]:
    cams = quality["cameras"]
    assert isinstance(cams, dict)
    return {
        "rate_hz": float(quality["achieved_rate_hz"]),
        "requested_hz": float(quality["requested_rate_hz"]),
        "p99_ms": float(quality["period_error_ms"]["p99"]),
        "duration_s": float(quality["duration_s"]),
        "fps": {name: float(c["fps"]) for name, c in sorted(cams.items())},
        "dropped": sum(int(c["dropped"]) for c in cams.values()),
        "flags": list(quality["flags"]),
    }


def headless(station: Station, seconds: float) -> dict[str, Any]:
    runner = station.runner
    assert runner is not None
    runner.start()
    time.sleep(seconds)
    return figures(runner.stop().quality.record())


def with_screen(
    app: QApplication, station: Station, worker: EngineWorker, seconds: float
) -> tuple[dict[str, Any], dict[str, int]]:
    runner = station.runner
    assert runner is not None
    screen = RecordScreen(station, worker, sound=False)
    screen.resize(1400, 900)
    screen.show()
    screen.attach()
    pump(app, 2.0)  # tiles and plots laid out, the timer running
    shown0 = {n: t.shown for n, t in screen.tiles.items()}
    # Start and stop through the engine thread, as the screen's keys do.
    started = worker.submit(runner.start)
    while not started.done():
        pump(app, 0.01)
    started.result()
    pump(app, seconds)
    stopped = worker.submit(runner.stop)
    while not stopped.done():
        pump(app, 0.01)
    result = stopped.result()
    previews = {n: t.shown - shown0[n] for n, t in screen.tiles.items()}
    screen.detach()
    screen.close()
    return figures(result.quality.record()), previews


def pct(a: float, b: float) -> str:
    return f"{(b - a) / a * 100:+.2f} %" if a else "n/a"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="length of each episode")
    p.add_argument("--rig", default="sim-bimanual", help="a virtual rig preset or .toml")
    args = p.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    root = Path(tempfile.mkdtemp(prefix="gui-rate-"))
    worker = EngineWorker()
    station = Station(root, policy=RecordingPolicy(min_free_gb=0.1, stop_free_gb=0.05))
    try:
        run_calibrate(
            args.rig, all_targets=True, operator="bench", data_dir=str(root),
        )  # fmt: skip
        task = Task(name="bench", target_episodes=10, episode_s=args.seconds + 600)
        station.open_rig(SignIn(Operator(id="bench", name="Bench"), task, args.rig))
        station.start_session()
        assert station.runner is not None and station.runner.state is RunnerState.ARMED
        head = headless(station, args.seconds)
        station.runner.keep()
        gui, previews = with_screen(app, station, worker, args.seconds)
        station.runner.keep()
    finally:
        worker.shutdown(wait=True)
        station.close()
        shutil.rmtree(root, ignore_errors=True)

    print(f"rig {args.rig}, {args.seconds:g} s per episode, requested {head['requested_hz']:g} Hz")
    print(f"{'':24}{'headless':>12}{'record screen':>16}{'difference':>14}")
    print(
        f"{'control rate (Hz)':24}{head['rate_hz']:12.2f}{gui['rate_hz']:16.2f}"
        f"{pct(head['rate_hz'], gui['rate_hz']):>14}"
    )
    print(
        f"{'p99 period error (ms)':24}{head['p99_ms']:12.3f}{gui['p99_ms']:16.3f}"
        f"{pct(head['p99_ms'], gui['p99_ms']):>14}"
    )
    for name in head["fps"]:
        a, b = head["fps"][name], gui["fps"].get(name, 0.0)
        print(f"{'fps ' + name:24}{a:12.2f}{b:16.2f}{pct(a, b):>14}")
    print(f"{'frames dropped':24}{head['dropped']:12d}{gui['dropped']:16d}")
    print(
        "preview frames shown per camera (screen run): "
        + ", ".join(f"{n} {c / args.seconds:.1f}/s" for n, c in previews.items())
    )
    for label, f in (("headless", head), ("record screen", gui)):
        if f["flags"]:
            print(f"{label} flags: {'; '.join(f['flags'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
