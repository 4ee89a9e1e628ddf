"""The catalog: an sqlite index of sessions, episodes, labels, quality and provenance.

``<data-root>/catalog.sqlite`` is only an index. The files are the truth: session.json,
each episode's MCAP metadata (read from its summary, never its chunks) and labels.jsonl.
:func:`rebuild` recreates the index from them; :func:`refresh` (called before every query)
re-reads only the sessions whose session.json, labels.jsonl or episode files changed since
they were indexed.

Queries take a user's SQL ``WHERE`` clause over the ``episodes`` table, e.g.
``task = 'fold_towel' AND label = 'success' AND operator = 'op7'``. The clause runs on a
read-only connection with an authorizer that allows reading and nothing else, so no clause
can change anything (see :func:`query`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teleop.episode.reader import EpisodeReadError, summarize
from teleop.episode.verify import verify_episode
from teleop.errors import DataRootError, TeleopError
from teleop.labels import LABELS_FILE, episode_key, read_labels
from teleop.session import SESSION_FILE, read_manifest
from teleop.session_manifest import EpisodeEntry, SessionManifest

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
SCHEMA_VERSION = 4
# A query clause that runs longer than this many sqlite VM steps is stopped (a runaway
# recursive expression must not hang the app).
_MAX_QUERY_STEPS = 50_000_000

# Column name, SQL type, meaning (the meanings are shown by `teleop episodes --columns`).
EPISODE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("episode_id", "TEXT PRIMARY KEY", "<session-id>/episode_NNNN"),
    ("session", "TEXT", "session id"),
    ("file", "TEXT", "episode file name in the session folder"),
    ("episode_index", "INTEGER", "episode number in the session"),
    ("status", "TEXT", "kept, recovered or partial"),
    ("operator", "TEXT", "operator id"),
    ("task", "TEXT", "task name"),
    ("task_id", "TEXT", "same as task"),
    ("rig", "TEXT", "rig id"),
    ("rig_id", "TEXT", "same as rig"),
    ("embodiment", "TEXT", "robot type, e.g. aloha (the rig's embodiment, else its id)"),
    ("rig_sha256", "TEXT", "sha256 of the rig file used"),
    ("start_utc", "TEXT", "episode start, ISO 8601 UTC"),
    ("date", "TEXT", "episode start date, YYYY-MM-DD (UTC)"),
    ("duration_s", "REAL", "seconds"),
    ("bytes", "INTEGER", "file size"),
    ("sha256", "TEXT", "sha256 of the file as recorded (session.json); NULL before 0.2"),
    ("rate_hz", "REAL", "achieved control rate"),
    ("flags", "TEXT", "quality flags, '; '-separated ('' when none)"),
    ("flag_count", "INTEGER", "number of quality flags"),
    ("flagged", "INTEGER", "1 when the episode has quality flags"),
    ("calibrated", "INTEGER", "1 when recorded with calibration records"),
    ("calibration", "TEXT", "calibration record ids"),
    ("software_version", "TEXT", "teleop version that recorded it"),
    ("git_revision", "TEXT", "teleop git revision that recorded it"),
    ("host", "TEXT", "recording host"),
    ("readable", "INTEGER", "1 when the file opens; 0 when damaged (see read_error)"),
    ("read_error", "TEXT", "why the file does not open"),
    ("label", "TEXT", "latest label: success, failure, unsure (NULL when unlabelled)"),
    ("success", "INTEGER", "1 when the latest label is success"),
    ("labelled", "INTEGER", "1 when the episode has a label"),
    ("label_reviewer", "TEXT", "who gave the latest label"),
    ("label_time", "TEXT", "when the latest label was given"),
    ("failure_reason", "TEXT", "latest label's failure reason"),
    ("tags", "TEXT", "latest label's tags, comma-separated"),
    ("notes", "TEXT", "latest label's notes"),
    ("label_count", "INTEGER", "label events on this episode"),
    ("reviewers", "INTEGER", "distinct reviewers who labelled it"),
    ("disagreement", "INTEGER", "1 when reviewers' latest labels differ"),
)
COLUMN_NAMES = tuple(c[0] for c in EPISODE_COLUMNS)

_SCHEMA = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE sessions(
    session TEXT PRIMARY KEY, operator TEXT, task TEXT, rig TEXT, host TEXT,
    software_version TEXT, started_utc TEXT, closed_utc TEXT, episodes INTEGER,
    stamp TEXT
);
CREATE TABLE episodes({", ".join(f"{n} {t}" for n, t, _ in EPISODE_COLUMNS)});
CREATE INDEX episodes_session ON episodes(session);
CREATE TABLE labels(
    event_id TEXT PRIMARY KEY, seq INTEGER, session TEXT, episode_id TEXT, file TEXT,
    reviewer TEXT, time_utc TEXT, app_version TEXT, label TEXT, failure_reason TEXT,
    notes TEXT, tags TEXT, marks TEXT, previous_label TEXT
);
CREATE INDEX labels_episode ON labels(episode_id);
CREATE TABLE problems(session TEXT, what TEXT);
"""

_INCLUDED_STATUSES = ("kept", "recovered", "partial")


class CatalogError(TeleopError):
    """A query or the catalog file cannot be used; the message says what to do."""


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did."""

    sessions_indexed: int
    sessions_removed: int
    episodes: int
    problems: tuple[str, ...]
    """One line each: unreadable manifests, malformed label lines, damaged episode files."""


def catalog_path(data_root: Path) -> Path:
    return Path(data_root) / CATALOG_FILE


def rebuild(data_root: Path) -> RefreshReport:
    """Recreate the catalog from the files (the old one is replaced only when done)."""
    data_root = Path(data_root)
    final = catalog_path(data_root)
    tmp = final.with_name(f".{final.name}.rebuild-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        conn = _connect_rw(tmp)
        try:
            report = _refresh(conn, data_root)
        finally:
            conn.close()
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return report


def refresh(data_root: Path) -> RefreshReport:
    """Bring the catalog up to date with the files, re-reading only what changed.

    A catalog of another schema version, or one that sqlite cannot read, is rebuilt.
    """
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise CatalogError(
            f"{data_root}: no such data directory; pass --data-dir (or set TELEOP_DATA_DIR) "
            "to the folder that holds the sessions"
        )
    if not os.access(data_root, os.W_OK):
        raise CatalogError(
            f"{data_root}: cannot write the catalog here (no permission); run as a user who may, "
            "or copy the sessions to a folder of yours"
        )
    path = catalog_path(data_root)
    if not path.exists():
        return rebuild(data_root)
    try:
        conn = _connect_rw(path)
    except sqlite3.DatabaseError:
        log.warning("%s: unreadable catalog; rebuilding it from the files", path)
        return rebuild(data_root)
    try:
        return _refresh(conn, data_root)
    except sqlite3.DatabaseError as exc:
        log.warning("%s: %s; rebuilding it from the files", path, exc)
        conn.close()
        return rebuild(data_root)
    finally:
        conn.close()


def _connect_rw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    version = None
    if "meta" in have:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else None
    if version != SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        for table in have:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        for stmt in _statements():
            conn.execute(stmt)
        conn.execute("INSERT INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    return conn


def _statements() -> Iterator[str]:
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            yield stmt


def _stamp(session_dir: Path) -> str:
    """Changes whenever session.json, labels.jsonl or an episode file changes (mtime, size)."""
    parts = []
    names = [SESSION_FILE, LABELS_FILE] + sorted(p.name for p in session_dir.glob("*.mcap*"))
    for name in names:
        try:
            st = (session_dir / name).stat()
            parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
        except FileNotFoundError:
            parts.append("-")
    return "/".join(parts)


def _refresh(conn: sqlite3.Connection, data_root: Path) -> RefreshReport:
    on_disk = {p.parent.name: p.parent for p in data_root.glob(f"*/{SESSION_FILE}")}
    known = dict(conn.execute("SELECT session, stamp FROM sessions").fetchall())
    indexed = removed = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for session in set(known) - set(on_disk):
            _delete_session(conn, session)
            removed += 1
        for session, session_dir in sorted(on_disk.items()):
            stamp = _stamp(session_dir)
            if known.get(session) == stamp:
                continue
            _delete_session(conn, session)
            _index_session(conn, session_dir, stamp)
            indexed += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    episodes = conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
    problems = tuple(r[0] for r in conn.execute("SELECT what FROM problems ORDER BY session"))
    return RefreshReport(indexed, removed, episodes, problems)


def _delete_session(conn: sqlite3.Connection, session: str) -> None:
    for table in ("sessions", "episodes", "labels", "problems"):
        conn.execute(f"DELETE FROM {table} WHERE session = ?", (session,))


def _index_session(conn: sqlite3.Connection, session_dir: Path, stamp: str) -> None:
    session = session_dir.name
    manifest_path = session_dir / SESSION_FILE
    try:
        manifest = read_manifest(manifest_path)
    except DataRootError as exc:
        conn.execute("INSERT INTO problems VALUES(?, ?)", (session, f"{exc}; session skipped"))
        conn.execute("INSERT INTO sessions(session, stamp) VALUES(?, ?)", (session, stamp))
        return
    conn.execute(
        "INSERT INTO sessions VALUES(?,?,?,?,?,?,?,?,?,?)",
        (
            session,
            manifest.operator,
            manifest.task,
            manifest.rig_id,
            manifest.host,
            manifest.software_version,
            manifest.started_utc,
            manifest.closed_utc,
            len(manifest.episodes),
            stamp,
        ),
    )
    labels = read_labels(session_dir)
    for problem in labels.problems:
        conn.execute("INSERT INTO problems VALUES(?, ?)", (session, str(problem)))
    by_file: dict[str, list[Any]] = {}
    for seq, e in enumerate(labels.events):
        by_file.setdefault(episode_key(e.episode), []).append(e)
        conn.execute(
            "INSERT OR IGNORE INTO labels VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                e.event_id,
                seq,
                session,
                e.episode_id,
                e.episode,
                e.reviewer,
                e.time_utc,
                e.app_version,
                e.label,
                e.failure_reason,
                e.notes,
                ",".join(e.tags),
                json.dumps([m.model_dump() for m in e.marks]),
                e.previous_label,
            ),
        )
    for entry in manifest.episodes:
        if entry.status not in _INCLUDED_STATUSES:
            continue
        path = session_dir / entry.file
        if not path.is_file():
            conn.execute(
                "INSERT INTO problems VALUES(?, ?)",
                (
                    session,
                    f"{session}/{path.name}: listed in {SESSION_FILE} as {entry.status} "
                    "but the file is missing; restore it from a bundle or backup",
                ),
            )
            continue
        row = _episode_row(session, manifest, entry, path, by_file.get(episode_key(path.name), []))
        if row["read_error"]:
            conn.execute("INSERT INTO problems VALUES(?, ?)", (session, row["read_error"]))
        other = conn.execute(
            "SELECT session, file FROM episodes WHERE episode_id = ? AND session != ?",
            (row["episode_id"], session),
        ).fetchone()
        if other is not None:
            # One recording in two session folders (e.g. a pseudonymized bundle imported beside
            # its originals): the catalog keys on the recording's own id, so it lists one.
            conn.execute(
                "INSERT INTO problems VALUES(?, ?)",
                (
                    session,
                    f"{row['episode_id']}: the same recording is in {other[0]}/{other[1]} and "
                    f"{session}/{row['file']}; the catalog lists the latter; remove one copy",
                ),
            )
        conn.execute(
            f"INSERT OR REPLACE INTO episodes VALUES({','.join('?' * len(COLUMN_NAMES))})",
            [row[c] for c in COLUMN_NAMES],
        )


def _episode_row(
    session: str, manifest: SessionManifest, entry: EpisodeEntry, path: Path, events: list[Any]
) -> dict[str, Any]:
    flags = entry.flags
    provenance: dict[str, str] = {}
    read_error = None
    try:
        summary = summarize(path)
        provenance = summary.metadata.get("provenance", {})
        qmeta = summary.metadata.get("quality", {})
        if entry.quality is None and qmeta.get("flags"):
            # session.json has no quality for this episode (e.g. recovered): the file's own
            with contextlib.suppress(ValueError, TypeError):
                flags = [str(f) for f in json.loads(qmeta["flags"])]
        duration_s: float | None = summary.duration_s  # the file's own span, as replay shows it
        # Every byte against the file's own CRCs, once per indexing of the file.
        damage = verify_episode(path)
        if damage is not None:
            read_error = (
                f"{path}: damaged, {damage}; `teleop recover {path}` keeps the intact chunks"
            )
    except EpisodeReadError as exc:
        read_error = str(exc)
        duration_s = entry.duration_s
    index = entry.index
    start_utc = provenance.get("start_utc") or entry.start_utc or ""
    calibration = provenance.get("calibration", "")
    rig = provenance.get("rig_id") or manifest.rig_id
    latest = events[-1] if events else None
    by_reviewer = {e.reviewer: e.label for e in events}
    return {
        "episode_id": provenance.get("episode_id") or f"{session}/episode_{index:04d}",
        "session": session,
        "file": path.name,
        "episode_index": index,
        "status": entry.status,
        "operator": provenance.get("operator") or manifest.operator,
        "task": provenance.get("task") or manifest.task,
        "task_id": provenance.get("task") or manifest.task,
        "rig": rig,
        "rig_id": rig,
        "embodiment": provenance.get("embodiment") or rig,
        "rig_sha256": provenance.get("rig_sha256") or manifest.rig_sha256,
        "start_utc": start_utc,
        "date": start_utc[:10],
        "duration_s": duration_s,
        "bytes": path.stat().st_size,
        "sha256": entry.sha256,
        "rate_hz": entry.quality.achieved_rate_hz if entry.quality else None,
        "flags": "; ".join(flags),
        "flag_count": len(flags),
        "flagged": int(bool(flags)),
        "calibrated": int(bool(calibration) and not calibration.startswith("none")),
        "calibration": calibration,
        "software_version": provenance.get("software_version") or manifest.software_version,
        "git_revision": provenance.get("git_revision"),
        "host": provenance.get("host") or manifest.host,
        "readable": int(read_error is None),
        "read_error": read_error,
        "label": latest.label if latest else None,
        "success": int(latest is not None and latest.label == "success"),
        "labelled": int(latest is not None),
        "label_reviewer": latest.reviewer if latest else None,
        "label_time": latest.time_utc if latest else None,
        "failure_reason": latest.failure_reason if latest else None,
        "tags": ",".join(latest.tags) if latest else "",
        "notes": latest.notes if latest else "",
        "label_count": len(events),
        "reviewers": len(by_reviewer),
        "disagreement": int(len(set(by_reviewer.values())) > 1),
    }


# -- queries ---------------------------------------------------------------------------------

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
# Functions that touch anything outside the query's own values are refused even when
# reading: extensions, and the few that expose the connection's state.
_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


def _authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, _t: Any) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@contextlib.contextmanager
def _read_only(data_root: Path) -> Iterator[sqlite3.Connection]:
    path = catalog_path(data_root)
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        steps = [0]

        def _budget() -> int:
            steps[0] += 1
            return int(steps[0] * 1000 > _MAX_QUERY_STEPS)

        conn.set_progress_handler(_budget, 1000)
        conn.set_authorizer(_authorizer)
        yield conn
    finally:
        conn.close()


def query(
    data_root: Path,
    where: str | None = None,
    *,
    order_by: str = "start_utc, episode_id",
    fresh: bool = True,
) -> list[dict[str, Any]]:
    """Episodes matching the SQL ``where`` clause (all when None), as dicts by column name,
    with ``path`` added (the episode file's absolute path).

    The clause runs on a read-only connection whose authorizer allows only SELECT, column
    reads and functions, so ``DROP``, ``UPDATE``, ``ATTACH``, ``PRAGMA`` and the like are
    refused before they run. Only one statement can run.

    Raises:
        CatalogError: the clause is not valid SQL for the episodes table, or tries to do
            something other than read.
    """
    data_root = Path(data_root)
    if fresh:
        refresh(data_root)
    elif not catalog_path(data_root).exists():
        raise CatalogError(f"{catalog_path(data_root)}: no catalog; run `teleop catalog rebuild`")
    sql = "SELECT * FROM episodes"
    if where and where.strip():
        sql += f" WHERE ({where})"
    sql += f" ORDER BY {order_by}"
    with _read_only(data_root) as conn:
        try:
            rows = conn.execute(sql).fetchall()
        except (sqlite3.DatabaseError, sqlite3.Warning, sqlite3.ProgrammingError) as exc:
            raise CatalogError(_explain(where or "", exc)) from None
    out = []
    for r in rows:
        d = dict(r)
        d["path"] = str((data_root / d["session"] / d["file"]).resolve())
        out.append(d)
    return out


def _explain(where: str, exc: Exception) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "not authorized" in msg or "prohibited" in msg:
        return f"--where {where!r}: only reading is allowed in a query ({msg})"
    if "interrupted" in msg:
        return f"--where {where!r}: the query ran too long and was stopped; simplify it"
    if "one statement" in msg:
        return f"--where {where!r}: one condition expression only (no ';')"
    hint = ""
    if "no such column" in msg:
        hint = f"; columns: {', '.join(COLUMN_NAMES)}"
    return f"--where {where!r}: {msg}{hint}"


def label_history(data_root: Path, episode_id: str) -> list[dict[str, Any]]:
    """Every label event of one episode, oldest first (from the catalog)."""
    refresh(data_root)
    with _read_only(Path(data_root)) as conn:
        rows = conn.execute(
            "SELECT * FROM labels WHERE episode_id = ? ORDER BY seq", (episode_id,)
        ).fetchall()
    return [dict(r) | {"marks": json.loads(r["marks"] or "[]")} for r in rows]


def problems(data_root: Path) -> list[str]:
    """One line per problem found while indexing (as in the last refresh)."""
    with _read_only(Path(data_root)) as conn:
        return [r[0] for r in conn.execute("SELECT what FROM problems ORDER BY session, what")]
