"""argparse for the CLI: a parser whose errors are one line, numbers that are finite and in
range, identities that are not empty. A bad value is refused while the arguments are parsed,
before anything is opened."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

from teleop.recording.policy import RecordingPolicy


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, ``PROG: error: MESSAGE (see PROG --help)``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: bool = False,
    integer: bool = False,
) -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``above``); an int with ``integer``."""
    if above:
        low = f"above {lo:g}"
    elif lo is not None:
        low = f"at least {lo:g}"
    else:
        low = ""
    high = f"at most {hi:g}" if hi is not None else ""
    kind = "a whole number" if integer else "a number"
    wanted = " and ".join(p for p in (low, high) if p)
    expect = f"{kind} {wanted}".strip()

    def parse(text: str) -> float:
        try:
            value: float = int(text, 10) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {expect}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite; give {expect}")
        if lo is not None and (value <= lo if above else value < lo):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {expect}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {expect}")
        return value

    return parse


def identity(what: str) -> Callable[[str], str]:
    """A name for provenance (operator, task, reviewer): not empty, no control characters."""

    def parse(text: str) -> str:
        value = text.strip()
        if not value:
            raise argparse.ArgumentTypeError(
                f"an empty {what} is not allowed: every episode names its {what}"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise argparse.ArgumentTypeError(f"{what} {text!r} contains control characters")
        return value

    return parse


SEED = number(0, 2**32 - 1, integer=True)
"""The virtual rig's scripted-operator seed."""


DATA_DIR_HELP = "data root (default $TELEOP_DATA_DIR or ./sessions)"


def add_data_dir(parser: argparse.ArgumentParser, help: str = DATA_DIR_HELP) -> None:
    """``--data-dir``, as every command that reads or writes a data root declares it."""
    parser.add_argument("--data-dir", help=help)


def add_policy_arguments(parser: argparse.ArgumentParser, *, recording: bool = True) -> None:
    """The :class:`~teleop.recording.policy.RecordingPolicy` options with its defaults:
    the start checks (``--min-free-gb``, ``--max-pose-delta``, ``--max-calibration-age-days``)
    and, with ``recording``, how a session records (``--rate``, ``--stop-free-gb``,
    ``--uncalibrated``). Read them back with :func:`policy_from`."""
    d = RecordingPolicy()
    parser.add_argument(
        "--min-free-gb",
        type=number(0.0, 1e6),
        default=d.min_free_gb,
        help=f"refuse to start below this free space (default {d.min_free_gb:g})",
    )
    parser.add_argument(
        "--max-pose-delta",
        type=number(0.0, 6.3),
        default=d.max_pose_delta_rad,
        metavar="RAD",
        help="refuse to start if a follower is further than this from its leader "
        f"(default {d.max_pose_delta_rad:g})",
    )
    parser.add_argument(
        "--max-calibration-age-days",
        type=number(0.0, 3650.0),
        default=d.max_calibration_age_days,
        help=f"refuse calibration records older than this (default {d.max_calibration_age_days:g})",
    )
    if not recording:
        return
    parser.add_argument(
        "--rate", type=number(1.0, 1000.0), help="control rate in Hz, 1-1000 (default: the rig's)"
    )
    parser.add_argument(
        "--stop-free-gb",
        type=number(0.0, 1e6),
        default=d.stop_free_gb,
        help=f"stop an episode cleanly below this (default {d.stop_free_gb:g})",
    )
    parser.add_argument(
        "--uncalibrated",
        action="store_true",
        help="record without calibration records (identity mapping; every episode flagged)",
    )


def policy_from(args: argparse.Namespace) -> RecordingPolicy:
    """The policy the options of :func:`add_policy_arguments` ask for."""
    d = RecordingPolicy()
    return RecordingPolicy(
        rate_hz=getattr(args, "rate", d.rate_hz),
        min_free_gb=args.min_free_gb,
        stop_free_gb=getattr(args, "stop_free_gb", d.stop_free_gb),
        max_pose_delta_rad=args.max_pose_delta,
        max_calibration_age_days=args.max_calibration_age_days,
        allow_uncalibrated=getattr(args, "uncalibrated", d.allow_uncalibrated),
    )
