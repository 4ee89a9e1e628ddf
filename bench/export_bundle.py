"""Benchmark: bundle export speed against plain copies of the same files.

Run: ``.venv/bin/python bench/export_bundle.py [--data-dir /tmp/demo] [--where …] [--repeat 3]``

Exports the selected episodes as a bundle directory and as a tar (copy + sha256 in one pass,
fsync, rename), verifies and imports it, and copies the same files with ``shutil.copyfile``
(no hashing, no fsync), ``cp -r`` of the session folders, and hashes them with
``sha256sum``. Files are read once before timing, so every figure is from the page cache
and measures CPU and write cost, not the source disk. Prints MB/s (best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from teleop import catalog
from teleop.export.bundle import export_bundle
from teleop.export.bundle_import import import_bundle, verify_bundle


def _best_s(repeat: int, run: Callable[[Path], object], scratch: Path) -> float:
    best = float("inf")
    for i in range(repeat):
        work = scratch / f"run{i}"
        work.mkdir()
        t0 = time.perf_counter()
        run(work)
        best = min(best, time.perf_counter() - t0)
        shutil.rmtree(work)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/tmp/demo", help="data root to export from")
    ap.add_argument("--where", help="episode selection (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    args = ap.parse_args()

    root = Path(args.data_dir)
    rows = catalog.query(root, args.where)
    if not rows:
        raise SystemExit(f"no episodes in {root}")
    sessions = sorted({r["session"] for r in rows})
    files = [Path(r["path"]) for r in rows]
    total = sum(p.stat().st_size for p in files)
    for p in files:  # warm the page cache so every run reads from memory
        p.read_bytes()
    mb = total / 1e6
    print(f"{len(rows)} episodes, {mb:.1f} MB of episode files, best of {args.repeat} runs")

    def copyfile(work: Path) -> None:
        for p in files:
            shutil.copyfile(p, work / f"{p.parent.name}_{p.name}")

    def cp_r(work: Path) -> None:
        subprocess.run(["cp", "-r", *[str(root / s) for s in sessions], str(work)], check=True)

    def sha256sum(work: Path) -> None:
        subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True)

    def bundle_dir(work: Path) -> None:
        export_bundle(rows, root, work / "bundle")

    def bundle_tar(work: Path) -> None:
        export_bundle(rows, root, work / "bundle.tar")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        scratch = Path(tmp)
        made = scratch / "made"
        made.mkdir()
        export_bundle(rows, root, made / "bundle")
        export_bundle(rows, root, made / "bundle.tar")

        def verify(work: Path) -> None:
            verify_bundle(made / "bundle")

        def import_tar(work: Path) -> None:
            import_bundle(made / "bundle.tar", work)

        cases = [
            ("shutil.copyfile (no hash, no fsync)", copyfile),
            ("cp -r session folders", cp_r),
            ("sha256sum (hash only)", sha256sum),
            ("export bundle → directory", bundle_dir),
            ("export bundle → .tar", bundle_tar),
            ("verify bundle directory", verify),
            ("import bundle .tar", import_tar),
        ]
        for name, run in cases:
            s = _best_s(args.repeat, run, scratch)
            print(f"{name:38} {s * 1000:8.0f} ms  {mb / s:7.0f} MB/s")


if __name__ == "__main__":
    main()
