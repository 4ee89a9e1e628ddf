"""``teleop export bundle|lerobot|hdf5`` and ``teleop import``: hand data over, with provenance.

Episodes are selected with ``--where`` through :func:`teleop.catalog.query` (read-only and
validated there). Every command draws a tqdm bar on stderr (``--quiet`` turns it off) and
prints the output path; a bundle is verified again, from what was written, before the
command reports success.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from teleop import catalog
from teleop.arguments import add_data_dir, number
from teleop.export.atomic import ExportError, Progress
from teleop.session import resolve_data_root


@contextmanager
def progress_bar(quiet: bool, unit: str = "B") -> Iterator[Progress | None]:
    """A ``progress(done, total, what)`` callback drawing a tqdm bar on stderr (None if quiet)."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    in_bytes = unit == "B"
    bars: list[Any] = []  # drawn from the first progress on: a refusal stays one line

    def update(done: int, total: int, what: str) -> None:
        if not bars:
            bars.append(
                tqdm(
                    total=None,
                    unit=unit,
                    unit_scale=in_bytes,
                    unit_divisor=1024 if in_bytes else 1000,
                    file=sys.stderr,
                    leave=False,
                )
            )
        bar = bars[0]
        if bar.total != total:
            bar.total = total
        bar.set_postfix_str(what[-40:], refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def _select(args: argparse.Namespace) -> tuple[Path, list[dict[str, Any]]]:
    root = resolve_data_root(args.data_dir)
    if not root.is_dir():
        raise ExportError(f"{root}: no such data directory; pass --data-dir")
    rows = catalog.query(root, args.where)
    if not rows:
        where = f"--where {args.where!r}" if args.where else "the data root"
        raise ExportError(f"{where}: no episodes selected in {root}; see `teleop episodes`")
    return root, rows


def _bundle(args: argparse.Namespace) -> int:
    from teleop.export.bundle import export_bundle
    from teleop.export.bundle_import import verify_bundle

    root, rows = _select(args)
    with progress_bar(args.quiet) as progress:
        result = export_bundle(
            rows,
            root,
            Path(args.out),
            pseudonymize=args.pseudonymize,
            progress=progress,
            overwrite=args.overwrite,
            query=args.where,
            sign_with=Path(args.sign) if args.sign else None,
        )
    if args.pseudonymize:
        print(
            "teleop: warning: operator ids are pseudonymized in manifest.json, DATASHEET.md, "
            "session folders and session.json only; the MCAP files, labels.jsonl and calibration "
            "records are byte-for-byte and still name them (see DATASHEET.md)",
            file=sys.stderr,
        )
    print(result.path)
    with progress_bar(args.quiet) as progress:
        verified = verify_bundle(result.path, progress=progress)
    print(f"verified: {verified.files} files, sha256 OK")
    if verified.signature is not None:
        print(f"signed: key {verified.signature.key_id} (Ed25519 over SHA256SUMS)")
    return 0


def _training_export(args: argparse.Namespace, unit: str, export: Callable[..., Any]) -> Any:
    """Run a training exporter on the selected episodes with a progress bar, then report the
    rows that had no camera frame within half a period (flagged, never hidden)."""
    _, rows = _select(args)
    with progress_bar(args.quiet, unit=unit) as progress:
        result = export(
            [Path(r["path"]) for r in rows],
            Path(args.out),
            progress=progress,
            overwrite=args.overwrite,
        )
    late = {cam: n for cam, n in result.stale_frames.items() if n}
    if late:
        counts = ", ".join(f"{cam} {n}" for cam, n in sorted(late.items()))
        print(
            f"teleop: note: rows without a frame within half a period (an earlier frame used): "
            f"{counts}; in {len(result.flagged_episodes)} episodes",
            file=sys.stderr,
        )
    print(result.out)
    return result


def _lerobot(args: argparse.Namespace) -> int:
    from teleop.export.lerobot import export_lerobot

    r = _training_export(args, " frames", functools.partial(export_lerobot, fps=args.fps))
    print(
        f"{r.episodes} episodes, {r.frames} frames at {args.fps:g} fps, "
        f"{r.tasks} tasks, cameras {', '.join(r.cameras)} ({r.codec})"
    )
    return 0


def _hdf5(args: argparse.Namespace) -> int:
    from teleop.export.hdf5_aloha import export_hdf5_aloha

    r = _training_export(args, " rows", export_hdf5_aloha)
    print(
        f"{r.episodes} episodes (episode_0.hdf5 …), {r.rows} rows at the control rate, "
        f"cameras {', '.join(r.cameras)}"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    from teleop.export.bundle_import import import_bundle

    root = resolve_data_root(args.data_dir)
    with progress_bar(args.quiet) as progress:
        result = import_bundle(
            Path(args.bundle),
            root,
            progress=progress,
            require_signature=args.require_signature,
            trusted_key_files=tuple(Path(k) for k in args.trusted_key),
        )
    signature = result.signature
    if signature is None:
        print("unsigned: checksums show the files are intact, not who made them")
    else:
        trust = "a trusted key" if signature.trusted else "a key this station does not trust"
        print(f"signed by key {signature.key_id} ({trust}), {signature.signed_utc}")
    print(
        f"{root}: {result.added} files added, {result.skipped} already there; "
        f"sessions {', '.join(result.sessions)}; {result.episodes_in_catalog} episodes in the catalog"
    )
    return 0


def _common(p: argparse.ArgumentParser, *, selects: bool = True) -> None:
    if selects:
        p.add_argument(
            "--where",
            help="SQL condition over the episode columns (see `teleop episodes --columns`), "
            "e.g. \"task = 'fold_towel' AND label = 'success'\"; default: every episode",
        )
    add_data_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``export`` and ``import`` to the ``teleop`` command line."""
    e = sub.add_parser("export", help="export episodes: verifiable bundle, LeRobot, ALOHA HDF5")
    esub = e.add_subparsers(dest="export", required=True, metavar="FORMAT")

    b = esub.add_parser(
        "bundle", help="episode files byte-for-byte with manifest, SHA256SUMS and datasheet"
    )
    _common(b)
    b.add_argument("--out", required=True, help="output directory, or a FILE.tar")
    b.add_argument(
        "--pseudonymize",
        action="store_true",
        help="operator ids as operator-N in manifest, datasheet, session folders and "
        "session.json (the byte-for-byte MCAP files and labels still name them)",
    )
    b.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    b.add_argument(
        "--sign",
        metavar="KEY",
        help="sign SHA256SUMS with this private key (from `teleop keys new`)",
    )
    b.set_defaults(func=_bundle)

    le = esub.add_parser("lerobot", help="a LeRobot v3 dataset")
    _common(le)
    le.add_argument("--out", required=True, help="output directory")
    le.add_argument(
        "--fps",
        type=number(0.0, 1000.0, above=True),
        required=True,
        help="frame rate of the dataset",
    )
    le.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    le.set_defaults(func=_lerobot)

    h = esub.add_parser("hdf5", help="HDF5 episodes (ACT/ALOHA layout)")
    _common(h)
    h.add_argument("--layout", choices=["aloha"], required=True, help="HDF5 layout")
    h.add_argument("--out", required=True, help="output directory")
    h.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    h.set_defaults(func=_hdf5)

    i = sub.add_parser(
        "import", help="verify a bundle (directory or .tar) and add it to the data root"
    )
    i.add_argument("bundle", help="bundle directory or .tar")
    i.add_argument(
        "--require-signature",
        action="store_true",
        help="import only a bundle signed by a trusted key (the data root's keys/ and "
        "--trusted-key)",
    )
    i.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="FILE.pub",
        help="also trust this public key (repeatable)",
    )
    _common(i, selects=False)
    i.set_defaults(func=_import)
