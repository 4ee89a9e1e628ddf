"""Benchmark: training exports (LeRobot v3.0 and ACT/ALOHA HDF5) of recorded episodes.

Run: ``.venv/bin/python bench/export_lerobot.py [--data-dir /tmp/demo] [--fps 30]
[--codecs libsvtav1 libx264] [--out-dir /tmp]``

Exports every ``*/episode_*.mcap`` under the data root and prints, per stage, wall seconds,
rows per second (a row = one time step with one frame per camera) and output size, then
the process's peak RSS:

- ``read``: the aligned loader alone (decompress + decode messages, align), no images;
- ``read+jpeg``: the same with each chosen frame decoded to RGB;
- ``lerobot <codec>``: the whole LeRobot export (read, decode, video encode, parquet, meta);
- ``hdf5``: the whole ACT/ALOHA export at the control rate (gzip level 1 images).

Figures are from one run on this machine; compare, do not assert.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from teleop.export.aligned import iter_aligned, read_layouts
from teleop.export.hdf5_aloha import export_hdf5_aloha
from teleop.export.lerobot import export_lerobot


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _line(stage: str, seconds: float, rows: int, extra: str = "") -> None:
    print(f"{stage:<20} {seconds:7.2f} s  {rows / seconds:8.1f} rows/s  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TELEOP_DATA_DIR", "/tmp/demo"))
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--codecs", nargs="+", default=["libsvtav1", "libx264"])
    parser.add_argument("--out-dir", default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()

    episodes = sorted(Path(args.data_dir).glob("*/episode_*.mcap"))
    layouts = read_layouts(episodes)
    seconds = sum(layout.span_ns for layout in layouts) / 1e9
    cams = ", ".join(layouts[0].cameras)
    print(f"{len(episodes)} episodes, {seconds:.1f} s recorded, cameras: {cams}")
    print(f"cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, fps {args.fps}")

    for stage, images in (("read", False), ("read+jpeg", True)):
        t = time.perf_counter()
        rows = sum(
            1 for layout in layouts for _ in iter_aligned(layout, fps=args.fps, images=images)
        )
        _line(stage, time.perf_counter() - t, rows)

    with tempfile.TemporaryDirectory(dir=args.out_dir) as tmp:
        for codec in args.codecs:
            out = Path(tmp) / f"lerobot-{codec}"
            t = time.perf_counter()
            result = export_lerobot(episodes, out, fps=args.fps, codec=codec)
            elapsed = time.perf_counter() - t
            videos = _size_mb(out / "videos")
            _line(
                f"lerobot {codec}",
                elapsed,
                result.frames,
                f"{result.frames * len(result.cameras) / elapsed:6.1f} camera frames/s, "
                f"{_size_mb(out):.1f} MB ({videos:.1f} MB video), "
                f"{elapsed / seconds:.2f} s per recorded s",
            )
            shutil.rmtree(out)
        out = Path(tmp) / "hdf5"
        t = time.perf_counter()
        result_h5 = export_hdf5_aloha(episodes, out)
        elapsed = time.perf_counter() - t
        _line(
            "hdf5",
            elapsed,
            result_h5.rows,
            f"{_size_mb(out):.1f} MB, {elapsed / seconds:.2f} s per recorded s",
        )
    # Flat in episode length if the loader streams (frames are decoded one row at a time).
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
