"""Benchmark: replaying a long episode with the lazy, indexed reader versus reading it all.

Run: ``.venv/bin/python bench/replay.py [--minutes 30] [--source FILE] [--dir /tmp/teleop_replay_bench]``

Builds (once; cached in ``--dir``) an episode of ``--minutes`` minutes with four cameras by
tiling a real recording (``--source``, or a 10 s episode recorded on the virtual rig) with
shifted timestamps through ``teleop.episode.writer.EpisodeWriter``, flushing every 0.5 s of
episode time as the recorder does (so the chunk layout is the recorder's). Then, each in its
own process (so peak RSS is that phase's alone), with the file's pages dropped from the page
cache before each phase (``posix_fadvise(DONTNEED)``, so reads come from the disk):

- open: ``EpisodeReader(path)`` (summary, metadata, rig.toml; no chunk);
- seek: all cameras' frames decoded at 20 random times (p50 / p95 / max);
- play: a Player at 1× for 30 s from a random time, polled at 30 Hz like the GUI (frames
  shown vs expected, skipped, lag of the prepared frames behind the playhead);
- full read: every message of the file, undecoded, (a) record by record with mcap's
  StreamReader (the least any full read costs) and (b) with mcap's indexed ``iter_messages``
  in log-time order (what a replay that loads everything would call).

Prints a table; asserts nothing. Figures are from one run on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from teleop.episode.reader import iter_messages, read_attachment, summarize
from teleop.episode.writer import EpisodeWriter

PERIOD_S = 0.5  # the recorder's flush_to_disk interval: one chunk per half second
SEEKS = 20
PLAY_S = 30.0
POLL_S = 1 / 30


# -- building the long episode --------------------------------------------------------------


def record_source(workdir: Path) -> Path:
    """Record a 10 s episode on the virtual rig (calibrating it first), as a user would."""
    from teleop.calibrating import run_calibrate
    from teleop.recording.run import run_record

    root = workdir / "source_root"
    if root.exists():
        shutil.rmtree(root)
    out = io.StringIO()
    run_calibrate("sim-bimanual", all_targets=True, operator="bench", data_dir=str(root))
    with contextlib.redirect_stdout(out):
        run_record(
            rig="sim-bimanual",
            operator="bench",
            task="replay_bench",
            episodes=1,
            seconds=10.0,
            data_dir=str(root),
        )
    return next(root.glob("*/episode_0001.mcap"))


def _stamp(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def build_long_episode(source: Path, out: Path, minutes: float) -> Path:
    """Tile ``source`` into ``out`` until it lasts ``minutes`` (one start and one stop event)."""
    summary = summarize(source)
    messages = list(iter_messages(source))
    span_ns = summary.end_ns - summary.start_ns + 20_000_000  # one control period of gap
    tiles = max(1, round(minutes * 60e9 / span_ns))
    tmp = out.with_name("building_" + out.name)
    for stale in (tmp, tmp.with_name(tmp.name + ".partial")):
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with EpisodeWriter(tmp) as w:
        for name, values in summary.metadata.items():
            if name != "quality":
                w.add_metadata(name, values)
        for a in summary.attachments:
            w.add_attachment(a.name, a.media_type, read_attachment(source, a.name), a.log_time_ns)
        next_flush = summary.start_ns + int(PERIOD_S * 1e9)
        for k in range(tiles):
            shift = k * span_ns
            for m in messages:
                log_time = m.log_time_ns + shift
                if log_time >= next_flush:
                    w.flush_to_disk()
                    next_flush += int(PERIOD_S * 1e9)
                _write(w, m, shift, k, tiles, len(messages))
            print(f"\r  tile {k + 1}/{tiles}", end="", file=sys.stderr, flush=True)
        w.add_metadata("quality", summary.metadata.get("quality", {}))
    print(file=sys.stderr)
    tmp.rename(out)
    size = out.stat().st_size
    print(
        f"built {out} ({size / 2**30:.2f} GiB, {tiles} tiles) in {time.perf_counter() - t0:.0f} s"
    )
    return out


def _write(w: EpisodeWriter, m: Any, shift: int, tile: int, tiles: int, per_tile: int) -> None:
    msg, topic = m.message, m.topic
    stamp, log_time = _stamp(msg) + shift, m.log_time_ns + shift
    seq = m.sequence + tile * per_tile
    if m.message_type == "sensor_msgs/msg/JointState":
        w.write_joint_state(
            topic, stamp, log_time, list(msg.name), np.array(msg.position),
            np.array(msg.velocity), np.array(msg.effort), frame_id=msg.header.frame_id,
        )  # fmt: skip
    elif m.message_type == "sensor_msgs/msg/CompressedImage":
        w.write_compressed_image(
            topic, stamp, log_time, msg.header.frame_id, msg.format, bytes(msg.data), sequence=seq
        )
    elif m.message_type == "sensor_msgs/msg/CameraInfo":
        w.write_camera_info(
            topic, stamp, log_time, msg.header.frame_id, msg.width, msg.height, list(msg.k),
            list(msg.d), msg.distortion_model, list(msg.p), list(msg.r), sequence=seq,
        )  # fmt: skip
    elif m.message_type == "diagnostic_msgs/msg/DiagnosticArray":
        statuses = [
            (s.level, s.name, s.message, s.hardware_id, {v.key: v.value for v in s.values})
            for s in msg.status
        ]
        w.write_diagnostics(topic, stamp, log_time, statuses)
    elif m.message_type == "teleop_msgs/msg/EpisodeEvent":
        first, last = tile == 0, tile == tiles - 1
        if (
            (msg.kind == "start" and first)
            or (msg.kind == "stop" and last)
            or msg.kind
            not in (
                "start",
                "stop",
            )
        ):
            w.write_event(stamp, log_time, msg.kind, msg.detail)


# -- measuring ------------------------------------------------------------------------------


class PeakRss:
    """Samples this process's RSS every 5 ms on a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def drop_cache(path: Path) -> None:
    """Evict ``path``'s pages from the page cache, so the next reads come from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def phase_replay(path: str, seed: int) -> dict[str, Any]:
    from teleop.playback import EpisodeReader, Player

    rng = random.Random(seed)
    out: dict[str, Any] = {}
    drop_cache(Path(path))
    with PeakRss() as rss:
        t = time.perf_counter()
        reader = EpisodeReader(Path(path))
        out["open_s"] = time.perf_counter() - t
        cameras = reader.cameras
        out["cameras"] = len(cameras)
        out["duration_s"] = reader.duration_ns / 1e9
        seeks = []
        for _ in range(SEEKS):
            at = reader.start_ns + rng.randrange(reader.duration_ns)
            t = time.perf_counter()
            for camera in cameras:
                frame = reader.frame_at(camera, at)
                assert frame is not None
            seeks.append(time.perf_counter() - t)
        out["seek_ms"] = np.array(seeks) * 1e3
        out["seek_chunks"] = reader.chunks_read
        t = time.perf_counter()
        mid = reader.start_ns + reader.duration_ns // 2
        joints = reader.joints(mid - 5_000_000_000, mid + 5_000_000_000)
        out["joints_ms"] = (time.perf_counter() - t) * 1e3
        out["joint_samples"] = sum(len(s.stamp_ns) for s in joints.values())
        rates = {c: reader.frame_count(c) / out["duration_s"] for c in cameras}
        reader.close()
        out.update(_play(path, rng, rates, Player))
        out["load"] = os.getloadavg()[0]  # other work on the machine skews the play figures
    out["rss_peak_mb"] = rss.peak / 2**20
    return out


def _play(
    path: str, rng: random.Random, rates: dict[str, float], player_cls: Any
) -> dict[str, Any]:
    player = player_cls()
    reader = player.open(Path(path))
    start = rng.randrange(reader.duration_ns - int((PLAY_S + 1) * 1e9))
    player.seek(start)
    while (s := player.snapshot()) is None or s.position_ns != start or s.marks is None:
        time.sleep(0.01)
    proc = psutil.Process()
    cpu0 = sum(proc.cpu_times()[:2])
    player.play()
    t0 = time.perf_counter()
    seen: dict[str, int] = dict.fromkeys(rates, 0)
    last: dict[str, int] = {}
    lags = []
    while time.perf_counter() - t0 < PLAY_S:
        time.sleep(POLL_S)
        snap = player.snapshot()
        if snap is None:
            continue
        lags.append(player.position_ns - snap.position_ns)  # what the GUI would show late
        for camera, frame in snap.frames.items():
            if last.get(camera) != frame.stamp_ns:
                last[camera] = frame.stamp_ns
                seen[camera] += 1
    played_s = (player.position_ns - start) / 1e9
    cpu_s = sum(proc.cpu_times()[:2]) - cpu0
    snap = player.snapshot()
    player.close()
    assert snap is not None
    return {
        "played_s": played_s,
        "expected": sum(r * played_s for r in rates.values()),
        "shown": sum(snap.shown.values()),
        "skipped": sum(snap.skipped.values()),
        "seen_by_30hz_poll": sum(seen.values()),
        "lag_ms": np.array(lags) / 1e6,
        "cpu_per_s": cpu_s / played_s,
    }


def phase_full_read(path: str, how: str) -> dict[str, Any]:
    from mcap.reader import make_reader
    from mcap.records import Message
    from mcap.stream_reader import StreamReader

    drop_cache(Path(path))
    with PeakRss() as rss:
        t = time.perf_counter()
        n = 0
        with open(path, "rb") as f:
            if how == "stream":  # record by record, start to end: the least any full read does
                n = sum(isinstance(r, Message) for r in StreamReader(f).records)
            else:  # mcap's indexed reader over every message, as a naive replay would use it
                n = sum(1 for _ in make_reader(f).iter_messages(log_time_order=True))
        elapsed = time.perf_counter() - t
    return {"full_read_s": elapsed, "messages": n, "rss_peak_mb": rss.peak / 2**20}


def in_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn`` in a fresh process, so its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--source", type=Path, help="episode to tile (default: record one)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/teleop_replay_bench"))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    long_file = args.dir / f"episode_{args.minutes:g}min.mcap"
    if not long_file.exists():
        source = args.source or record_source(args.dir)
        build_long_episode(source, long_file, args.minutes)
    size_gib = long_file.stat().st_size / 2**30

    replay = in_process(phase_replay, str(long_file), args.seed)
    stream = in_process(phase_full_read, str(long_file), "stream")
    indexed = in_process(phase_full_read, str(long_file), "indexed")

    seek = replay["seek_ms"]
    lag = replay["lag_ms"]
    print(f"\nepisode: {long_file} — {replay['duration_s'] / 60:.1f} min, {replay['cameras']} cameras, "
          f"{size_gib:.2f} GiB; page cache dropped before each phase; "
          f"1-min load average {replay['load']:.1f} on {os.cpu_count()} cores after playing")  # fmt: skip
    rows = [
        ("open (summary only)", f"{replay['open_s'] * 1e3:.1f} ms"),
        (
            f"frame at random t, {replay['cameras']} cams decoded",
            f"p50 {np.percentile(seek, 50):.1f} / p95 {np.percentile(seek, 95):.1f} / "
            f"max {seek.max():.1f} ms ({SEEKS} seeks, {replay['seek_chunks']} chunks read)",
        ),
        ("joint window ±5 s", f"{replay['joints_ms']:.1f} ms ({replay['joint_samples']} samples)"),
        (
            f"play 1× for {PLAY_S:.0f} s",
            f"played {replay['played_s']:.1f} s; frames shown {replay['shown']} of "
            f"~{replay['expected']:.0f} expected, skipped {replay['skipped']}; "
            f"a 30 Hz poll saw {replay['seen_by_30hz_poll']}",
        ),
        ("  CPU used (player + 30 Hz poll)", f"{replay['cpu_per_s']:.2f} s per played second"),
        (
            "  lag behind playhead",
            f"p50 {np.percentile(lag, 50):.1f} / p95 {np.percentile(lag, 95):.1f} / "
            f"max {lag.max():.1f} ms",
        ),
        ("peak RSS, replay (all of the above)", f"{replay['rss_peak_mb']:.0f} MiB"),
        *(
            (
                f"full read, {what} (undecoded)",
                f"{full['full_read_s']:.1f} s, {full['messages']} messages, "
                f"peak RSS {full['rss_peak_mb']:.0f} MiB",
            )
            for what, full in (
                ("mcap StreamReader, sequential", stream),
                ("mcap iter_messages, log-time order", indexed),
            )
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
