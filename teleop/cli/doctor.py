"""``teleop doctor``: the pre-flight checks of a rig, as a table (exit 1 on FAIL)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from teleop.arguments import SEED, add_data_dir, add_policy_arguments, policy_from
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
        policy=policy_from(args),
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
    add_data_dir(d)
    add_policy_arguments(d, recording=False)  # the start checks, as `teleop record` has them
    d.add_argument("--no-cameras", action="store_true", help="do not open the cameras")
    d.add_argument("--seed", type=SEED, default=0, help="virtual rig: scripted operator seed")
    d.set_defaults(func=_doctor)
