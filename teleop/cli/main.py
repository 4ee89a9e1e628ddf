"""The headless command line: ``teleop record``, ``teleop inspect``, ``teleop bench``.

Errors the user can fix print as one line, ``teleop: error: ...``, with exit status 2; a
traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import sys
from collections.abc import Sequence
from pathlib import Path

from teleop import __version__
from teleop.arguments import (
    SEED,
    OneLineParser,
    add_data_dir,
    add_policy_arguments,
    identity,
    number,
    policy_from,
)

EXIT_USAGE = 2


def _record(args: argparse.Namespace) -> int:
    from teleop.recording.run import run_record

    live = None
    if args.live is not None:  # parsed first: a malformed address stops before anything opens
        from teleop.live import parse_live_address

        live = parse_live_address(args.live)
    session_dir = run_record(
        rig=args.rig,
        operator=args.operator,
        task=args.task,
        episodes=args.episodes,
        seconds=args.seconds,
        data_dir=args.data_dir,
        seed=args.seed,
        progress=None if args.quiet else lambda line: print(line, file=sys.stderr),
        policy=policy_from(args),
        resume=args.resume,
        recover_partial=args.recover_unfinished,
        live=live,
    )
    print(session_dir)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from teleop.cli.inspect import render_inspect

    print(render_inspect(args.file, as_json=args.json))
    return 0


def _recover(args: argparse.Namespace) -> int:
    from teleop.episode.recover import recover
    from teleop.session import register_recovered

    r = recover(Path(args.file), Path(args.output) if args.output else None)
    register_recovered(r.source, r.output, duration_s=r.duration_s, stopped_at=r.stopped_at)
    print(
        f"recovered {r.messages} messages ({r.duration_s:.1f} s, {r.chunks_kept} chunks; "
        f"{r.chunks_damaged} damaged) from {r.source} into {r.output}; reading stopped at: {r.stopped_at}"
    )
    return 0


def _repair(args: argparse.Namespace) -> int:
    from teleop.cli.repair import run_repair

    return run_repair(Path(args.target), Path(args.output) if args.output else None, out=print)


def _layout(args: argparse.Namespace) -> int:
    from rigs.spec import load_rig
    from teleop.foxglove_layout import episode_layout_json

    text = episode_layout_json(load_rig(args.rig).spec)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(args.output)
    else:
        print(text, end="")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from teleop.bench import run_bench_record

    rates = [float(r) for r in args.rates.split(",")]
    if args.live:
        from teleop.bench import run_bench_live

        run_bench_live(rig=args.rig, seconds=args.seconds, rate_hz=rates[0], out=print)
        return 0
    run_bench_record(
        rig=args.rig, seconds=args.seconds, rates=rates, out=print, uvc_files=args.uvc_files
    )
    return 0


def _bench_torque_off(args: argparse.Namespace) -> int:
    from teleop.bench_faults import run_bench_torque_off

    run_bench_torque_off(rig=args.rig, trials=args.trials, out=print)
    return 0


def _bench_crash(args: argparse.Namespace) -> int:
    from teleop.bench import run_bench_crash

    run_bench_crash(rig=args.rig, trials=args.trials, seed=args.seed, out=print)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="teleop",
        description="Record leader-follower demonstrations to indexed MCAP; "
        "`teleop COMMAND --help` for each command.",
    )
    p.add_argument("--version", action="version", version=f"teleop {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("record", help="record episodes on a rig and print the session directory")
    r.add_argument("--rig", required=True, help="preset name (e.g. sim-bimanual) or rig .toml path")
    r.add_argument("--operator", required=True, type=identity("operator"), help="operator id")
    r.add_argument("--task", required=True, type=identity("task"), help="task name")
    r.add_argument(
        "--episodes",
        type=number(1, 100_000, integer=True),
        default=1,
        help="number of episodes (default 1)",
    )
    r.add_argument(
        "--seconds",
        type=number(0.0, 86_400.0, above=True),
        default=10.0,
        help="seconds per episode, up to a day (default 10)",
    )
    add_data_dir(r)
    add_policy_arguments(r)
    r.add_argument("--seed", type=SEED, default=0, help="virtual rig: scripted operator seed")
    r.add_argument("--quiet", action="store_true", help="print only the session directory")
    r.add_argument("--resume", metavar="SESSION_DIR", help="continue an existing session")
    r.add_argument(
        "--recover-unfinished",
        action="store_true",
        help="with --resume: rebuild the session's crash-truncated episodes first",
    )
    r.add_argument(
        "--live",
        nargs="?",
        const="",
        metavar="HOST:PORT",
        help="serve the recording live to Foxglove on a WebSocket (default 127.0.0.1:8765; "
        "PORT, HOST:PORT or [IPV6]:PORT; 0.0.0.0 for every interface)",
    )
    r.set_defaults(func=_record)

    i = sub.add_parser(
        "inspect", help="print an episode file's topics, rates, provenance and quality"
    )
    i.add_argument("file", help="episode .mcap file")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_inspect)

    rc = sub.add_parser("recover", help="rebuild a complete episode from a truncated one")
    rc.add_argument("file", help="a truncated episode, e.g. episode_0003.mcap.partial")
    rc.add_argument("-o", "--output", help="output path (default: the name without .partial)")
    rc.set_defaults(func=_recover)

    rp = sub.add_parser(
        "repair",
        help="write a copy of an episode (or of every episode of a session) whose message "
        "definitions Foxglove parses; the original is kept",
    )
    rp.add_argument("target", help="an episode .mcap file or a session folder")
    rp.add_argument(
        "-o", "--output", help="output path for a single file (default: NAME.repaired.mcap)"
    )
    rp.set_defaults(func=_repair)

    lo = sub.add_parser(
        "layout", help="print a Foxglove layout for reviewing episodes of a rig (JSON)"
    )
    lo.add_argument("--rig", required=True, help="preset name or rig .toml path")
    lo.add_argument("-o", "--output", help="write the layout to this file instead of stdout")
    lo.set_defaults(func=_layout)

    from teleop.cli import calibration, cameras, catalog, doctor, export, keys, replay

    cameras.add_parser(sub)
    calibration.add_parser(sub)
    doctor.add_parser(sub)
    replay.add_parser(sub)
    catalog.add_parser(sub)
    export.add_parser(sub)
    keys.add_parser(sub)

    b = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = b.add_subparsers(dest="bench", required=True, metavar="BENCH")
    br = bsub.add_parser("record", help="record on the virtual rig at several rates and report")
    br.add_argument("--rig", default="sim-bimanual")
    br.add_argument("--seconds", type=number(0.0, 86_400.0, above=True), default=60.0)
    br.add_argument("--rates", default="50,100,200", help="comma-separated control rates in Hz")
    br.add_argument(
        "--uvc-files",
        action="store_true",
        help="replace the synthetic wrist cameras by OpenCV cameras playing rendered video files",
    )
    br.add_argument(
        "--live",
        action="store_true",
        help="three episodes at the first of --rates, side by side: live view off, on with "
        "nobody watching, on with a Foxglove client (Node) subscribed to every topic",
    )
    br.set_defaults(func=_bench)
    bc = bsub.add_parser("crash", help="kill -9 during recording N times; recover; report loss")
    bc.add_argument("--rig", default="sim-bimanual")
    bc.add_argument("--trials", type=number(1, 10_000, integer=True), default=10)
    bc.add_argument("--seed", type=SEED, default=0)
    bc.set_defaults(func=_bench_crash)
    bt = bsub.add_parser(
        "torque-off", help="time from a follower bus fault to the followers' torque-off"
    )
    bt.add_argument("--rig", default="sim-bimanual")
    bt.add_argument("--trials", type=number(1, 10_000, integer=True), default=10)
    bt.set_defaults(func=_bench_torque_off)
    return p


def _stdout_gone() -> bool:
    """Whether standard output is a pipe whose reader has gone (POLLERR on its write end)."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        return True
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poll.poll(0))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed), or --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except BrokenPipeError as exc:
        if _stdout_gone():  # output piped into `head` and the like: end quietly
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        if args.debug:
            raise
        print(f"teleop: error: a connection closed unexpectedly ({exc})", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("teleop: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; --debug for the traceback
        if args.debug:
            raise
        from teleop.user_errors import describe

        print(f"teleop: error: {describe(exc)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
