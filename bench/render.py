"""Benchmark: what one synthetic camera frame costs, per view, and what encoding it costs.

Run: ``.venv/bin/python bench/render.py [--width 640] [--height 480] [--frames 300]``

For each view of the ``sim-bimanual`` rig prints the median and p99 of ``Renderer.render``
(colour + depth) while both follower arms sweep through a smooth, seeded motion, then the
JPEG encode time of the colour image at the camera's quality (85) and the 16-bit PNG encode
time of the depth image. Figures are from one run on this machine; compare, do not assert.
With ``--threads 1`` OpenCV's own worker threads are off, as they would be contended anyway
when four capture threads and the control loop share two cores.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from rigs.cameras.codec import encode_depth_png, encode_jpeg
from rigs.spec import load_rig
from rigs.virtual.renderer import VIEWS, Renderer


def sweep(frames: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """Follower poses along a smooth random-phase sinusoid through the workspace."""
    rng = np.random.default_rng(seed)
    centre = np.array([0.0, 0.3, 0.2, 0.0, 0.7, 0.0, 0.45])
    amp = np.array([0.5, 0.35, 0.35, 0.6, 0.5, 1.0, 1.0])
    out = []
    phases = {arm: rng.uniform(0, 2 * np.pi, 7) for arm in ("left_follower", "right_follower")}
    for i in range(frames):
        t = i / 30.0
        out.append(
            {
                arm: centre + amp * np.sin(0.7 * t * (1 + np.arange(7) / 7) + ph)
                for arm, ph in phases.items()
            }
        )
    return out


def stats_ms(samples: list[float]) -> str:
    a = np.array(samples) * 1e3
    return f"median {np.median(a):6.3f} ms   p99 {np.percentile(a, 99):6.3f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: leave)")
    args = ap.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)

    rig = load_rig("sim-bimanual").spec
    poses = sweep(args.frames)
    print(
        f"{args.width}x{args.height}, {args.frames} frames per view, cv2 threads {cv2.getNumThreads()}"
    )
    jpeg_all: list[float] = []
    png_all: list[float] = []
    for view in VIEWS:
        r = Renderer(rig, view, args.width, args.height)
        r.render(poses[0], 0, 0)  # warm up
        render_t, jpeg_t, png_t, jpeg_bytes = [], [], [], []
        for i, angles in enumerate(poses):
            t0 = time.perf_counter()
            color, depth = r.render(angles, i, i * 33_333_333)
            t1 = time.perf_counter()
            data = encode_jpeg(color, args.quality)
            t2 = time.perf_counter()
            encode_depth_png(depth)
            t3 = time.perf_counter()
            render_t.append(t1 - t0)
            jpeg_t.append(t2 - t1)
            png_t.append(t3 - t2)
            jpeg_bytes.append(len(data))
        jpeg_all += jpeg_t
        png_all += png_t
        print(
            f"render {view:<12} {stats_ms(render_t)}   (jpeg ~{np.mean(jpeg_bytes) / 1024:.0f} KiB)"
        )
    print(f"jpeg q{args.quality:<3}  all views {stats_ms(jpeg_all)}")
    print(f"depth png    all views {stats_ms(png_all)}")


if __name__ == "__main__":
    main()
