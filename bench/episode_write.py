"""Benchmark: what recording costs the writer thread, per message and per recorded second.

Run: ``.venv/bin/python bench/episode_write.py [--seconds 10] [--dir /tmp]``

Prints µs per message for mcap_ros2's dynamic serializer and for teleop's CDR encoders, µs
per ``EpisodeWriter.write_*`` call (encoding + MCAP record + amortised chunk compression), and
a realistic recording mix (8 JointState topics at 200 Hz, 4 cameras at 30 fps with ~40 KB
JPEG + CameraInfo, /diagnostics at 1 Hz, flush_to_disk every second) as CPU seconds per
recorded second and MB/s. Figures are from one run on this machine; compare, do not assert.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from mcap_ros2._dynamic import serialize_dynamic

from teleop.episode import cdr
from teleop.episode.schemas import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    JOINT_STATE,
    message_definition,
)
from teleop.episode.writer import EpisodeWriter

T0_NS = 1_700_000_000_000_000_000
JOINTS = [f"joint_{i}" for i in range(7)]
K = [600.0, 0.0, 320.0, 0.0, 600.0, 240.0, 0.0, 0.0, 1.0]
P = [600.0, 0.0, 320.0, 0.0, 0.0, 600.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
R = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
D = [0.1, -0.05, 0.0, 0.0, 0.0]


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """Best of 3 runs of ``n`` calls, in µs per call (best-of filters scheduler noise)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6


def jpeg_like(size: int, rng: np.random.Generator) -> bytes:
    # Random bytes compress as badly as real JPEG, so zstd's cost on them is realistic. Each
    # frame must be distinct: zstd would find a repeated frame inside the chunk and make the
    # figures look far better than a real recording.
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


def bench_encoders(rng: np.random.Generator) -> None:
    pos = rng.standard_normal(7)
    vel = rng.standard_normal(7)
    eff = rng.standard_normal(7)
    image = jpeg_like(40_000, rng)
    js_msg = {
        "header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": ""},
        "name": JOINTS,
        "position": pos.tolist(),
        "velocity": vel.tolist(),
        "effort": eff.tolist(),
    }
    ci_msg = {
        "header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": "cam"},
        "format": "jpeg",
        "data": image,
    }
    info_msg = {
        "header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": "cam"},
        "height": 480,
        "width": 640,
        "distortion_model": "plumb_bob",
        "d": D,
        "k": K,
        "r": R,
        "p": P,
        "binning_x": 0,
        "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }

    def dyn(type_name: str) -> Callable[[object], bytes]:
        return serialize_dynamic(type_name, message_definition(type_name))[type_name]

    dyn_js, dyn_ci, dyn_info = dyn(JOINT_STATE), dyn(COMPRESSED_IMAGE), dyn(CAMERA_INFO)
    rows = [
        (
            "JointState (7 joints)",
            per_call_us(lambda: dyn_js(js_msg), 5000),
            per_call_us(lambda: cdr.encode_joint_state(T0_NS, "", JOINTS, pos, vel, eff), 20000),
        ),
        (
            "CompressedImage (40 KB)",
            per_call_us(lambda: dyn_ci(ci_msg), 2000),
            per_call_us(lambda: cdr.encode_compressed_image(T0_NS, "cam", "jpeg", image), 5000),
        ),
        (
            "CameraInfo",
            per_call_us(lambda: dyn_info(info_msg), 5000),
            per_call_us(
                lambda: cdr.encode_camera_info(T0_NS, "cam", 640, 480, K, D, "plumb_bob", P, R),
                20000,
            ),
        ),
    ]
    print("\nSerialization only (µs/message)")
    print(f"  {'type':<26}{'mcap_ros2 dynamic':>18}{'teleop cdr':>12}")
    for name, dynamic_us, ours_us in rows:
        print(f"  {name:<26}{dynamic_us:>18.1f}{ours_us:>12.1f}")


def bench_writer_calls(directory: Path, rng: np.random.Generator) -> None:
    pos = rng.standard_normal(7)
    n_images = 1000
    images = [jpeg_like(40_000, rng) for _ in range(n_images)]
    path = directory / "bench_calls.mcap"
    with EpisodeWriter(path) as w:
        t = [T0_NS]

        def js() -> None:
            t[0] += 1000
            w.write_joint_state("/left_follower/joint_states", t[0], t[0], JOINTS, pos, pos, pos)

        def img() -> None:
            t[0] += 1000
            data = images[t[0] // 1000 % n_images]
            w.write_compressed_image("/cameras/a/color/compressed", t[0], t[0], "a", "jpeg", data)

        def info() -> None:
            t[0] += 1000
            w.write_camera_info(
                "/cameras/a/camera_info", t[0], t[0], "a", 640, 480, K, D, "plumb_bob", P, R
            )

        # Writer calls include the MCAP record, the message index and the amortised cost of
        # compressing and writing full chunks (chunks close as they fill).
        rows = [
            ("JointState", per_call_us(js, 20000)),
            ("CompressedImage (40 KB)", per_call_us(img, n_images)),
            ("CameraInfo", per_call_us(info, 20000)),
        ]
    path.unlink()
    print("\nEpisodeWriter.write_* incl. MCAP + zstd chunking (µs/message)")
    for name, us in rows:
        print(f"  {name:<26}{us:>10.1f}")


def bench_recording(directory: Path, seconds: int, rng: np.random.Generator) -> None:
    """Simulate ``seconds`` of a bimanual recording as fast as possible."""
    arm_topics = [
        f"/{arm}/{kind}"
        for arm in ("left_leader", "right_leader", "left_follower", "right_follower")
        for kind in ("joint_states",)
    ] + [
        f"/{arm}/{kind}"
        for arm in ("left_follower", "right_follower")
        for kind in ("joint_targets", "joint_commands")
    ]
    cameras = ["cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"]
    joint_hz, camera_fps = 200, 30
    frame_every = joint_hz // camera_fps  # control cycles between camera frames
    frames_per_s = len(cameras) * len(range(0, joint_hz, frame_every))
    images = [
        jpeg_like(int(rng.integers(35_000, 45_000)), rng) for _ in range(seconds * frames_per_s)
    ]
    next_image = iter(images)
    path = directory / "bench_recording.mcap"
    wall = time.perf_counter()
    cpu = time.process_time()
    flush_s = 0.0
    with EpisodeWriter(path) as w:
        w.add_metadata("provenance", {"bench": "episode_write"})
        for second in range(seconds):
            base = T0_NS + second * 1_000_000_000
            for i in range(joint_hz):
                stamp = base + i * 1_000_000_000 // joint_hz
                q = rng.standard_normal(7)
                for topic in arm_topics:
                    w.write_joint_state(topic, stamp, stamp + 200_000, JOINTS, q, q, q)
                if i % frame_every == 0:
                    for cam in cameras:
                        data = next(next_image)
                        w.write_compressed_image(
                            f"/cameras/{cam}/color/compressed", stamp, stamp, cam, "jpeg", data
                        )
                        w.write_camera_info(
                            f"/cameras/{cam}/camera_info",
                            stamp,
                            stamp,
                            cam,
                            640,
                            480,
                            K,
                            D,
                            "plumb_bob",
                            P,
                            R,
                        )
            w.write_diagnostics("/diagnostics", base, base, [(0, "bench", "ok", "", {"hz": "200"})])
            t = time.perf_counter()
            w.flush_to_disk()
            flush_s += time.perf_counter() - t
        stats = w.stats()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    size = path.stat().st_size
    path.unlink()
    print(
        f"\nRecording mix: {seconds} s of 8 JointState topics @ {joint_hz} Hz + 4 cameras @ ~{camera_fps} fps"
    )
    print(
        f"  messages:              {stats.message_count} ({stats.message_count / seconds:.0f}/s recorded)"
    )
    print(f"  payload:               {stats.payload_bytes / 1e6:.1f} MB, file {size / 1e6:.1f} MB")
    print(
        f"  wall time:             {wall:.2f} s -> {wall / seconds * 100:.1f}% of one core per recorded second"
    )
    print(f"  process CPU time:      {cpu:.2f} s")
    print(
        f"  flush_to_disk total:   {flush_s * 1e3:.0f} ms ({flush_s / seconds * 1e3:.1f} ms per call)"
    )
    print(f"  throughput:            {stats.payload_bytes / 1e6 / wall:.1f} MB/s payload")
    print(f"  mean cost per message: {wall / stats.message_count * 1e6:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="simulated recording length")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"episode_write benchmark, {os.cpu_count()} CPUs")
    bench_encoders(rng)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench_writer_calls(Path(tmp), rng)
        bench_recording(Path(tmp), args.seconds, rng)


if __name__ == "__main__":
    main()
