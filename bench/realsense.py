"""Benchmark: what a virtual RealSense frame costs to feed and to read through pyrealsense2.

Run: ``.venv/bin/python bench/realsense.py [--width 640] [--height 480] [--frames 300]
[--cameras 4] [--seconds 5] [--align]``

Part 1 steps one camera by hand, so each stage is timed alone: render (colour + depth),
push (two ``software_video_frame`` copies and ``on_video_frame``; the syncer pairs them on
this thread), read (``RealSenseCamera.read``: syncer hand-off, optional ``rs.align``, copies
out of librealsense's frame pool). Part 2 runs ``--cameras`` virtual cameras at 30 fps with
one reader thread each, as the app would, and reports the process CPU time per delivered
frame (render + feed + read, every thread). Figures are from one run on this machine;
compare, do not assert.
"""

from __future__ import annotations

import argparse
import threading
import time

import cv2
import numpy as np

from rigs.cameras.base import CameraError
from rigs.cameras.realsense import RealSenseCamera
from rigs.spec import load_rig
from rigs.virtual.realsense_device import VirtualRealSense
from rigs.virtual.world import SharedWorld, WorldLayout

VIEWS = ("overhead", "low", "left_wrist", "right_wrist")


def stats_ms(samples: list[float]) -> str:
    a = np.array(samples) * 1e3
    return f"median {np.median(a):6.3f} ms   p99 {np.percentile(a, 99):6.3f} ms"


def camera_spec(rig, view: str, serial: str, args):
    base = next(c for c in rig.cameras if c.name == view)
    return base.model_copy(
        update={
            "driver": "realsense",
            "serial": serial,
            "width": args.width,
            "height": args.height,
            "depth": True,
            "align_depth": args.align,
        }
    )


def stepped(rig, world, args) -> None:
    spec = camera_spec(rig, "overhead", "BENCH00000001", args)
    device = VirtualRealSense(spec, rig=rig, world=world)  # not started: we feed by hand
    cam = RealSenseCamera(spec)
    cam.connect()
    angles = {a.name: world.read(a.name) for a in rig.followers}
    render, push, read = [], [], []
    try:
        for n in range(args.frames + 5):
            # Stamps one period apart, as the feeder's schedule makes them: the syncer's
            # timestamp matcher pairs by them.
            stamp_ns = device.device_clock_ns(n * round(1e9 / spec.fps))
            t0 = time.perf_counter()
            color, depth = device._renderer.render(angles, n, stamp_ns)
            t1 = time.perf_counter()
            device._push(color, depth, n, stamp_ns)
            t2 = time.perf_counter()
            try:
                cam.read(timeout_s=0.05)
            except CameraError:
                continue  # the first framesets are single streams while the syncer learns
            t3 = time.perf_counter()
            if n >= 5:
                render.append(t1 - t0)
                push.append(t2 - t1)
                read.append(t3 - t2)
    finally:
        cam.disconnect()
        device.close()
    total = [a + b for a, b in zip(push, read, strict=True)]
    print(f"one camera, stepped, {args.width}x{args.height} colour+depth, align={args.align}:")
    print(f"  render            {stats_ms(render)}")
    print(f"  push (feed)       {stats_ms(push)}")
    print(f"  read              {stats_ms(read)}")
    print(f"  feed + read       {stats_ms(total)}")


def threaded(rig, world, args) -> None:
    devices, cams = [], []
    counts = [0] * args.cameras
    stop = threading.Event()

    def reader(i: int) -> None:
        while not stop.is_set():
            try:
                cams[i].read(timeout_s=1.0)
                counts[i] += 1
            except CameraError:
                return

    for i in range(args.cameras):
        spec = camera_spec(rig, VIEWS[i % len(VIEWS)], f"BENCH1000000{i}", args)
        device = VirtualRealSense(spec, rig=rig, world=world, seed=i)
        device.start()
        devices.append(device)
        cam = RealSenseCamera(spec)
        cam.connect()
        cams.append(cam)
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(args.cameras)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # let the syncers settle
    start_counts = list(counts)
    start_overruns = sum(d.frames_overrun for d in devices)
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(args.seconds)
    cpu1, wall1 = time.process_time(), time.monotonic()
    frames = sum(counts) - sum(start_counts)
    overruns = sum(d.frames_overrun for d in devices) - start_overruns
    stop.set()
    for cam in cams:
        cam.disconnect()
    for t in threads:
        t.join()
    for device in devices:
        device.close()
    cpu_ms = (cpu1 - cpu0) * 1e3
    print(
        f"{args.cameras} cameras at 30 fps for {args.seconds:g} s ({args.width}x{args.height}, "
        f"depth, align={args.align}): {frames} frames read "
        f"({frames / (wall1 - wall0):.1f}/s), process CPU {cpu_ms / (wall1 - wall0) / 10:.0f}% "
        f"of one core, {cpu_ms / max(frames, 1):.2f} ms CPU per frame (render included); "
        f"feeder overruns (frames lost to a late feeder) {overruns}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--align", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (default 1)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    rig = load_rig("sim-bimanual").spec
    world = SharedWorld(WorldLayout.from_spec(rig), create=True)
    try:
        world.write("left_follower", np.array([0.2, 0.3, 0.2, 0.0, 0.8, 0.0, 1.0]))
        world.write("right_follower", np.array([-0.2, 0.4, 0.2, 0.0, 0.7, 0.0, 0.3]))
        stepped(rig, world, args)
        threaded(rig, world, args)
    finally:
        world.close()


if __name__ == "__main__":
    main()
