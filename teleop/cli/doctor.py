"""``teleop doctor``: the pre-flight checks of a rig, as a table (exit 1 on FAIL)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from calibration import checks
from teleop.arguments import SEED, number
from teleop.doctor import CheckResult, Status, run_doctor


def render_results(results: list[CheckResult]) -> str:
    """The table ``teleop doctor`` prints, with a summary line."""
    rows = []
    for r in results:
        limit = f" (limit {r.threshold})" if r.threshold else ""
        fix = f"  -> {r.fix}" if r.fix else ""
        rows.append((str(r.status), r.check, r.where, f"{r.measured}{limit}{fix}"))
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    lines = [
        f"{s:<{widths[0]}}  {c:<{widths[1]}}  {w:<{widths[2]}}  {d}".rstrip() for s, c, w, d in rows
    ]
    counts = {s: sum(r.status == s for r in results) for s in Status}
    verdict = "FAIL" if counts[Status.FAIL] else ("WARN" if counts[Status.WARN] else "OK")
    lines.append(
        f"doctor: {verdict} ({counts[Status.FAIL]} failed, {counts[Status.WARN]} warnings, "
        f"{counts[Status.OK]} ok)"
    )
    return "\n".join(lines)


def _doctor(args: argparse.Namespace) -> int:
    results = run_doctor(
        args.rig,
        data_dir=args.data_dir,
        seed=args.seed,
        with_cameras=not args.no_cameras,
        max_age_days=args.max_age_days,
        pose_threshold_rad=args.max_pose_delta,
        min_free_gb=args.min_free_gb,
    )
    sys.stdout.write(render_results(results) + "\n")
    return 1 if any(r.status == Status.FAIL for r in results) else 0


def add_parser(subparsers: Any) -> None:
    """Register ``doctor`` on the CLI's sub-command parsers."""
    d = subparsers.add_parser(
        "doctor",
        help="pre-flight checks: ports, motors, calibration, pose, disk (exit 1 on FAIL)",
    )
    d.add_argument("--rig", required=True, help="preset name or rig .toml path")
    d.add_argument("--data-dir", help="data root (default $TELEOP_DATA_DIR or ./sessions)")
    d.add_argument(
        "--max-age-days",
        type=number(0.0, 3650.0),
        default=checks.DEFAULT_MAX_AGE_DAYS,
        help="oldest acceptable calibration record (default %(default)g days)",
    )
    d.add_argument(
        "--max-pose-delta",
        type=number(0.0, 6.3),
        default=checks.DEFAULT_POSE_DELTA_RAD,
        metavar="RAD",
        help="largest follower-leader joint difference at start (default %(default)g rad)",
    )
    d.add_argument(
        "--min-free-gb",
        type=number(0.0, 1e6),
        default=1.0,
        help="FAIL below this free space (default 1)",
    )
    d.add_argument("--no-cameras", action="store_true", help="do not open the cameras")
    d.add_argument("--seed", type=SEED, default=0, help="virtual rig: scripted operator seed")
    d.set_defaults(func=_doctor)
