"""``teleop bench record``: record on the virtual rig at several rates and print figures.

A benchmark, not a test: it prints what it measured and asserts nothing.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from rigs.spec import LoadedRig, load_rig
from rigs.virtual.video import write_view_video
from teleop.recording.lifecycle import EpisodeRunner
from teleop.recording.policy import RecordingPolicy
from teleop.recording.run import start_session
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


def with_uvc_files(loaded: LoadedRig, folder: Path) -> LoadedRig:
    """The rig with its synthetic cameras replaced by OpenCV cameras playing rendered video files.

    No virtual V4L2 device exists without a kernel module, so the UVC path is measured on
    files: the same driver, decoding and pacing as a webcam, fed from disk.
    """
    cameras = []
    for cam in loaded.spec.cameras:
        if cam.driver == "synthetic" and cam.view is not None:
            video = write_view_video(loaded.spec, cam.view, folder / f"{cam.name}.avi",
                                     width=cam.width, height=cam.height, fps=cam.fps)  # fmt: skip
            cam = cam.model_copy(
                update={"driver": "opencv", "path": str(video), "loop": True, "view": None}
            )
        cameras.append(cam)
    spec = loaded.spec.model_copy(update={"cameras": cameras})
    return LoadedRig(
        spec=spec,
        source=f"{loaded.source} (UVC cameras on video files)",
        toml_text=loaded.toml_text,
    )


def bench_one(
    rig: str, rate_hz: float, seconds: float, data_root: Path, *, uvc_files: bool = False
) -> dict[str, object]:
    loaded = load_rig(rig)
    if uvc_files:
        videos = data_root / "videos"
        videos.mkdir(exist_ok=True)
        loaded = with_uvc_files(loaded, videos)
    with RigRuntime(loaded) as runtime:
        recorder, session = start_session(
            runtime,
            data_root,
            operator="bench",
            task="bench",
            policy=RecordingPolicy(rate_hz=rate_hz),
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
            stamp_errors = _stamp_errors(result.path, runtime, recorder.clock.offset_ns)
            drivers = {n: c.camera.spec.driver for n, c in recorder.captures.items()}
        finally:
            runner.close()
            recorder.stop()
    q = result.quality.record()
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
        "stamp_errors": stamp_errors,
        "drivers": drivers,
    }


def _stamp_errors(path: Path, runtime: RigRuntime, offset_ns: int) -> dict[str, dict[str, float]]:
    """Recorded capture stamp minus the virtual device's true exposure time, per camera (ms).

    Only virtual RealSense cameras know the truth; their stamps went through the device clock,
    pyrealsense2 and the device→host clock mapping, so this measures that whole path.
    """
    from teleop.episode.reader import iter_messages

    out: dict[str, dict[str, float]] = {}
    for name, device in runtime.virtual_cameras.items():
        errors = []
        for m in iter_messages(path, [f"/cameras/{name}/color/compressed"]):
            truth = device.capture_time_ns(m.sequence)
            if truth is None:
                continue
            stamp = m.message.header.stamp
            recorded_mono = stamp.sec * 1_000_000_000 + stamp.nanosec - offset_ns
            errors.append((recorded_mono - truth) / 1e6)
        if errors:
            a = np.asarray(errors)
            out[name] = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(np.abs(a), 99)),
                         "max": float(np.abs(a).max())}  # fmt: skip
    return out


def format_result(r: dict[str, Any]) -> str:
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
        lat, skew = c["latency_ms"], c["skew_ms"]
        lines.append(
            f"  camera {name} ({r['drivers'][name]}): {c['fps']:.2f} fps, written {c['written']}, "
            f"dropped {c['dropped']}, device gaps {c['device_gaps']}, duplicates {c['duplicates']}; "
            f"capture->write ms p50 {lat['p50']:.1f} p99 {lat['p99']:.1f}; "
            f"skew to joints ms p50 {skew['p50']:.1f} max {skew['max']:.1f}"
        )
        err = r["stamp_errors"].get(name)
        if err:
            lines.append(
                f"    capture stamp vs true exposure (virtual device): median {err['p50']:+.3f} ms, "
                f"|error| p99 {err['p99']:.3f} ms, max {err['max']:.3f} ms"
            )
    lines.append(
        f"  CPU {r['cpu_percent']:.0f} % of one core (app + virtual rig, {r['cpu_cores']} cores), "
        f"peak RSS {r['peak_rss_mb']:.0f} MB, RSS growth {r['rss_growth_mb']:+.1f} MB, "
        f"written {r['mb_per_s']:.2f} MB/s ({r['file_mb']:.1f} MB)"
    )
    lines.append(f"  flags: {'; '.join(q['flags']) or 'none'}")
    return "\n".join(lines)


def run_bench_record(
    *,
    rig: str,
    seconds: float,
    rates: list[float],
    out: Callable[[str], None],
    uvc_files: bool = False,
) -> None:
    extra = ", UVC cameras on video files" if uvc_files else ""
    out(f"teleop bench record: rig {rig}{extra}, {seconds:g} s per rate, rates {rates}")
    with tempfile.TemporaryDirectory(prefix="teleop-bench-") as tmp:
        _calibrate_quietly(rig, Path(tmp))
        for rate in rates:
            out(format_result(bench_one(rig, rate, seconds, Path(tmp), uvc_files=uvc_files)))


LIVE_CLIENT = Path(__file__).resolve().parent.parent / "tests" / "foxglove" / "live_client.mjs"


def _live_client_command(url: str, seconds: float) -> list[str]:
    """The Node Foxglove client (tests/foxglove) subscribing to every topic for ``seconds``."""
    import shutil

    from teleop.errors import TeleopError

    node = shutil.which("node")
    installed = LIVE_CLIENT.parent / "node_modules" / "@foxglove" / "ws-protocol"
    if node is None or not installed.is_dir():
        raise TeleopError(
            "the live bench needs Node and Foxglove's client: run `bash setup.sh test` "
            "(or `npm ci --prefix tests/foxglove`)"
        )
    return [node, str(LIVE_CLIENT), url, "--all", "--seconds", f"{seconds:g}"]


def bench_live(
    rig: str, rate_hz: float, seconds: float, data_root: Path
) -> list[dict[str, object]]:
    """Three episodes in one session: live view off; on, nobody watching; on, a client
    subscribed to every topic. Returns per episode the quality record, CPU and live counters."""
    import json
    import subprocess

    from teleop.live import LiveAddress, LivePublisher

    loaded = load_rig(rig)
    publisher = LivePublisher(LiveAddress("127.0.0.1", 0), camera_fps=loaded.spec.live.camera_fps)
    publisher.start()
    rows: list[dict[str, object]] = []
    try:
        with RigRuntime(loaded) as runtime:
            recorder, session = start_session(
                runtime,
                data_root,
                operator="bench",
                task="bench-live",
                policy=RecordingPolicy(rate_hz=rate_hz),
            )
            runner = EpisodeRunner(recorder, session)
            me = psutil.Process()
            procs = [me, *me.children(recursive=True)]
            client: subprocess.Popen[str] | None = None
            try:
                time.sleep(1.0)
                for label in ("live view off", "live view on, no client", "live view on, 1 client"):
                    recorder.live = None if label == "live view off" else publisher
                    if label.endswith("1 client"):
                        client = subprocess.Popen(
                            _live_client_command(publisher.url, seconds + 10.0),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True,
                        )
                        deadline = time.monotonic() + 60
                        while publisher.stats().clients < 1:
                            if time.monotonic() > deadline or client.poll() is not None:
                                raise RuntimeError("the live client did not subscribe within 60 s")
                            time.sleep(0.05)
                    before = publisher.stats()
                    cpu0, wall0 = _cpu_seconds(procs), time.monotonic()
                    result = runner.record(seconds)
                    cpu1, wall1 = _cpu_seconds(procs), time.monotonic()
                    after = publisher.stats()
                    rows.append({
                        "label": label,
                        "quality": result.quality.record(),
                        "cpu_percent": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
                        "published": after.published - before.published,
                        "throttled": after.throttled - before.throttled,
                        "live_dropped": after.dropped - before.dropped,
                    })  # fmt: skip
                if client is not None:
                    out, _err = client.communicate(timeout=seconds + 60)
                    got = json.loads(out) if out.strip() else {"topics": {}}
                    topics = got["topics"].values()
                    rows[-1]["client_received"] = sum(t["received"] for t in topics)
                    rows[-1]["client_decoded"] = sum(t["decoded"] for t in topics)
                    rows[-1]["client_topics"] = len(got["topics"])
            finally:
                if client is not None and client.poll() is None:
                    client.kill()
                    client.wait()
                runner.close()
                recorder.stop()
    finally:
        publisher.stop()
    return rows


def format_live(rows: list[dict[str, object]], rate_hz: float, camera_fps: float) -> str:
    """The live bench's episodes side by side, one line each."""
    lines = [
        f"{'episode':<26} {'achieved Hz':>11} {'overruns':>8} {'p99 period err ms':>18} "
        f"{'frames dropped':>15} {'CPU %':>6}  live: published / throttled / dropped"
    ]
    for r in rows:
        q = r["quality"]
        assert isinstance(q, dict)
        dropped = sum(c["dropped"] for c in q["cameras"].values())
        lines.append(
            f"{r['label']:<26} {q['achieved_rate_hz']:>11.2f} {q['overruns']:>8d} "
            f"{q['period_error_ms']['p99']:>18.3f} {dropped:>15d} {r['cpu_percent']:>6.0f}  "
            f"{r['published']} / {r['throttled']} / {r['live_dropped']}"
        )
    last = rows[-1]
    if "client_received" in last:
        lines.append(
            f"client (Node, @foxglove/ws-protocol, every topic): received "
            f"{last['client_received']} messages on {last['client_topics']} topics, decoded "
            f"{last['client_decoded']}"
        )
    lines.append(
        f"(requested {rate_hz:g} Hz; live cameras at {camera_fps:g} fps; CPU: app + virtual rig, "
        "not the client; frames dropped: by the recorder, summed over the cameras)"
    )
    return "\n".join(lines)


def run_bench_live(*, rig: str, seconds: float, rate_hz: float, out: Callable[[str], None]) -> None:
    """``teleop bench record --live``: the recording's figures without and with a live client."""
    camera_fps = load_rig(rig).spec.live.camera_fps
    import os

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out(
        f"teleop bench record --live: rig {rig}, {rate_hz:g} Hz, {seconds:g} s per episode; "
        "live view off, on with nobody watching, on with a client subscribed to every topic "
        f"(load average at start {load})"
    )
    with tempfile.TemporaryDirectory(prefix="teleop-bench-live-") as tmp:
        _calibrate_quietly(rig, Path(tmp))
        out(format_live(bench_live(rig, rate_hz, seconds, Path(tmp)), rate_hz, camera_fps))


def _calibrate_quietly(rig: str, data_root: Path) -> None:
    """Calibrate every arm of a virtual rig into ``data_root`` (recording requires it)."""

    from teleop.calibrating import run_calibrate

    spec = load_rig(rig).spec
    arms = [a.name for a in spec.arms]
    run_calibrate(rig, arms=arms, operator="bench", data_dir=str(data_root))


def _independent_read(path: Path) -> tuple[bool, str]:
    """Read every message with a reader that is not ours: rosbags if installed, else mcap's."""
    try:
        from rosbags.highlevel import AnyReader
    except ImportError:
        from mcap.reader import make_reader

        with open(path, "rb") as f:
            n = sum(1 for _ in make_reader(f).iter_messages())
        return True, f"mcap reader: {n} messages"
    try:
        with AnyReader([path]) as reader:
            n = 0
            for conn, _t, raw in reader.messages():
                reader.deserialize(raw, conn.msgtype)
                n += 1
        return True, f"rosbags: {n} messages"
    except Exception as exc:  # a benchmark reports failures, it does not stop at them
        return False, f"rosbags failed: {exc}"


def bench_crash_trial(rig: str, data_root: Path, kill_after_s: float) -> dict[str, object]:
    """Record, kill -9 the whole process group mid-episode, recover, read independently."""
    import os
    import signal
    import subprocess
    import sys

    from teleop.episode.reader import summarize
    from teleop.episode.recover import recover

    before = set(data_root.glob("*/"))
    cmd = [sys.executable, "-m", "teleop.cli", "record", "--rig", rig, "--operator", "bench",
           "--task", "crash", "--episodes", "1", "--seconds", "600", "--data-dir", str(data_root),
           "--min-free-gb", "0", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    partial = None
    deadline = time.monotonic() + 60
    while partial is None and time.monotonic() < deadline:
        found = [p for p in data_root.glob("*/episode_0001.mcap.partial") if p.parent not in before]
        partial = found[0] if found else None
        time.sleep(0.02)
    if partial is None:
        proc.kill()
        err = proc.stderr.read().decode() if proc.stderr is not None else ""
        raise RuntimeError(f"recording did not start: {err[-500:]}")
    time.sleep(kill_after_s)
    kill_utc_ns = time.time_ns()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    report = recover(partial)
    s = summarize(report.output)
    # With nothing recovered, everything since the episode began is lost.
    lost_s = (kill_utc_ns - s.end_ns) / 1e9 if s.message_count else kill_after_s
    ok, how = _independent_read(report.output)
    return {"kill_after_s": kill_after_s, "recorded_s": s.duration_s, "lost_s": lost_s,
            "messages": report.messages, "readable": ok, "reader": how}  # fmt: skip


def run_bench_crash(*, rig: str, trials: int, seed: int, out: Callable[[str], None]) -> None:
    import random

    rnd = random.Random(seed)
    out(f"teleop bench crash: rig {rig}, {trials} trials of kill -9 during recording")
    lost: list[float] = []
    readable = 0
    with tempfile.TemporaryDirectory(prefix="teleop-crash-") as tmp:
        _calibrate_quietly(rig, Path(tmp))
        for i in range(trials):
            r = bench_crash_trial(rig, Path(tmp), rnd.uniform(1.0, 6.0))
            lost.append(float(r["lost_s"]))  # type: ignore[arg-type]
            readable += bool(r["readable"])
            out(
                f"  trial {i + 1}: killed {r['kill_after_s']:.2f} s in, recovered {r['recorded_s']:.2f} s "
                f"({r['messages']} messages), lost {r['lost_s']:.2f} s, {r['reader']}"
            )
    out(
        f"recoverable and readable: {readable}/{trials}; seconds lost: "
        f"mean {sum(lost) / len(lost):.2f}, max {max(lost):.2f}"
    )
