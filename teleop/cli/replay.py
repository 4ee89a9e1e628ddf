"""``teleop replay``: send a recorded episode's follower commands to a rig's followers."""

from __future__ import annotations

import argparse
import sys

from teleop.arguments import SEED, add_data_dir, number
from teleop.control.replay import run_replay


def _replay(args: argparse.Namespace) -> int:
    result = run_replay(
        rig=args.rig,
        file=args.file,
        speed=args.speed,
        approach_speed_rad_s=args.approach_speed,
        data_dir=args.data_dir,
        yes=args.yes,
        seed=args.seed,
        progress=lambda line: print(line, file=sys.stderr),
    )
    for arm in result.arms:
        print(arm.describe())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="send a recorded episode's follower commands to a rig's followers"
    )
    p.add_argument("--rig", required=True, help="preset name (e.g. sim-bimanual) or rig .toml path")
    p.add_argument("file", help="episode .mcap file")
    p.add_argument(
        "--speed",
        type=number(0.0, 10.0, above=True),
        default=1.0,
        help="time scale of the replay, above 0 and at most 10 (default 1.0)",
    )
    p.add_argument(
        "--approach-speed",
        type=number(0.0, 3.0, above=True),
        default=0.3,
        metavar="RAD_PER_S",
        help="fastest joint speed on the way to the first pose (default 0.3)",
    )
    add_data_dir(
        p, "data root with the calibration records (default $TELEOP_DATA_DIR or ./sessions)"
    )
    p.add_argument("--yes", action="store_true", help="move a real rig without asking")
    p.add_argument("--seed", type=SEED, default=0, help="virtual rig: scripted operator seed")
    p.set_defaults(func=_replay)
