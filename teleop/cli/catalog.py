"""``teleop catalog rebuild``, ``teleop episodes --where …``, ``teleop label`` and
``teleop labels disagreements|history``: the catalog and QA labels from the command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from teleop import catalog, labels
from teleop.arguments import add_data_dir, identity
from teleop.errors import TeleopError
from teleop.session import SESSION_FILE, resolve_data_root

TABLE_COLUMNS = (
    "episode_id",
    "date",
    "operator",
    "rig",
    "task",
    "duration_s",
    "flag_count",
    "label",
    "label_reviewer",
)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain text table, one row per line, columns padded to their widest cell."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.1f}"
        return str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _print_problems(problems: Sequence[str]) -> None:
    for p in problems:
        print(f"teleop: warning: {p}", file=sys.stderr)


def _rebuild(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.data_dir)
    report = catalog.rebuild(root)
    _print_problems(report.problems)
    print(
        f"{catalog.catalog_path(root)}: {report.sessions_indexed} sessions, "
        f"{report.episodes} episodes indexed"
    )
    return 0


def _episodes(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.data_dir)
    if args.columns:
        for name, _, meaning in catalog.EPISODE_COLUMNS:
            print(f"{name:18} {meaning}")
        return 0
    rows = catalog.query(root, args.where)
    _print_problems(catalog.problems(root))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, TABLE_COLUMNS))
        print(f"{len(rows)} episodes")
    return 0


def resolve_episode(root: Path, ref: str) -> tuple[Path, str]:
    """(session folder, episode file name) from an episode file path or an episode id
    ``<session-id>/episode_NNNN``."""
    as_path = Path(ref)
    if as_path.is_file():
        session_dir = as_path.resolve().parent
        if not (session_dir / SESSION_FILE).is_file():
            raise TeleopError(f"{ref}: not inside a session folder (no {SESSION_FILE} beside it)")
        return session_dir, as_path.name
    session, _, episode = ref.partition("/")
    candidate = root / session / f"{episode}.mcap"
    if episode and candidate.is_file():
        return root / session, candidate.name
    raise TeleopError(
        f"{ref}: no such episode; give an episode file or an id like "
        "<session-id>/episode_0001 (see `teleop episodes`)"
    )


def _parse_mark(text: str) -> tuple[str, float]:
    name, sep, t = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        t_s = float(t)
        if not math.isfinite(t_s) or t_s < 0:
            raise ValueError
        return name.strip(), t_s
    except ValueError:
        raise TeleopError(
            f"--mark {text!r}: use NAME=SECONDS with finite seconds from the episode's start, "
            "e.g. grasp=2.4"
        ) from None


def _label(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.data_dir)
    session_dir, episode = resolve_episode(root, args.episode)
    task = _session_task(session_dir)
    event = labels.append_label(
        session_dir,
        episode=episode,
        reviewer=args.reviewer,
        label=args.label,
        failure_reason=args.reason,
        notes=args.notes or "",
        tags=args.tag or (),
        marks=[_parse_mark(m) for m in args.mark or ()],
        # The session's own data root (it may differ from --data-dir when a file is given).
        allowed_reasons=labels.failure_reasons(session_dir.parent, task) if task else None,
    )
    was = (
        f" (was {event.previous_label} by {event.previous_reviewer})"
        if event.previous_label
        else ""
    )
    print(f"{event.episode_id}: {event.label} by {event.reviewer}{was}")
    return 0


def _session_task(session_dir: Path) -> str | None:
    try:
        return json.loads((session_dir / SESSION_FILE).read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError):
        return None


def _disagreements(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.data_dir)
    found = labels.disagreements(sorted(p.parent for p in root.glob(f"*/{SESSION_FILE}")))
    if args.json:
        print(json.dumps([d.__dict__ for d in found], indent=2))
        return 0
    for d in found:
        said = ", ".join(f"{r}={lab}" for r, lab in d.labels.items())
        print(f"{d.session_id}/{Path(d.episode).stem}  {said}")
    print(f"{len(found)} episodes with disagreeing labels")
    return 0


def _history(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.data_dir)
    session_dir, episode = resolve_episode(root, args.episode)
    log = labels.read_labels(session_dir)
    for p in log.problems:
        print(f"teleop: warning: {p}", file=sys.stderr)
    events = log.for_episode(episode)
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return 0
    for e in events:
        extra = [f"reason={e.failure_reason}"] if e.failure_reason else []
        extra += [f"tags={','.join(e.tags)}"] if e.tags else []
        extra += [f"marks={','.join(f'{m.name}@{m.t_s:g}s' for m in e.marks)}"] if e.marks else []
        extra += [f"notes={e.notes!r}"] if e.notes else []
        prev = f" (was {e.previous_label})" if e.previous_label else ""
        print(f"{e.time_utc}  {e.reviewer:10} {e.label}{prev}  {'  '.join(extra)}".rstrip())
    print(f"{len(events)} label events")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("catalog", help="the sqlite index of sessions, episodes and labels")
    csub = c.add_subparsers(dest="catalog", required=True, metavar="ACTION")
    cr = csub.add_parser("rebuild", help="recreate catalog.sqlite from the files")
    add_data_dir(cr)
    cr.set_defaults(func=_rebuild)

    e = sub.add_parser("episodes", help="list episodes matching a query")
    e.add_argument(
        "--where",
        help="SQL condition over the episode columns, e.g. "
        "\"task = 'fold_towel' AND label = 'success' AND operator = 'op7'\"",
    )
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("--columns", action="store_true", help="list the columns a query can use")
    add_data_dir(e)
    e.set_defaults(func=_episodes)

    lab = sub.add_parser("label", help="label an episode (appends to the session's labels.jsonl)")
    lab.add_argument("episode", help="episode file, or id <session-id>/episode_NNNN")
    lab.add_argument("--label", required=True, choices=labels.LABELS)
    lab.add_argument(
        "--reviewer", required=True, type=identity("reviewer"), help="your reviewer id"
    )
    lab.add_argument("--reason", help="failure reason (from the task's list)")
    lab.add_argument("--notes", help="free text")
    lab.add_argument("--tag", action="append", help="a tag (repeat for more)")
    lab.add_argument(
        "--mark", action="append", metavar="NAME=SECONDS", help="a time mark, e.g. grasp=2.4"
    )
    add_data_dir(lab)
    lab.set_defaults(func=_label)

    ls = sub.add_parser("labels", help="label reports: disagreements, history")
    lsub = ls.add_subparsers(dest="labels", required=True, metavar="REPORT")
    d = lsub.add_parser("disagreements", help="episodes whose reviewers' latest labels differ")
    d.add_argument("--json", action="store_true")
    add_data_dir(d)
    d.set_defaults(func=_disagreements)
    h = lsub.add_parser("history", help="every label event of one episode")
    h.add_argument("episode", help="episode file, or id <session-id>/episode_NNNN")
    h.add_argument("--json", action="store_true")
    add_data_dir(h)
    h.set_defaults(func=_history)
