"""QA labels: an append-only log of label events per session, ``<session>/labels.jsonl``.

Every label a reviewer gives is a new line; nothing is ever rewritten or removed, so the
history of an episode (who said what, when, with which app version, and what it replaced)
is the file itself. Labels of different reviewers on one episode are all kept; the *latest*
label of an episode is the last event for it in the file, and :func:`disagreements` lists
episodes whose reviewers' latest labels differ.

Writers append one whole line per event with ``O_APPEND`` under an exclusive ``flock`` and
fsync it, so two reviewers (threads or processes) labelling at once never interleave or lose
an event. Readers report a malformed line with its line number and load the rest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from teleop import __version__
from teleop.errors import TeleopError

LABELS_FILE = "labels.jsonl"
LABELS = ("success", "failure", "unsure")
Label = Literal["success", "failure", "unsure"]
DEFAULT_FAILURE_REASONS = (
    "dropped object",
    "missed grasp",
    "collision",
    "incomplete",
    "wrong object",
    "operator error",
    "hardware fault",
    "other",
)


def failure_reasons(data_root: Path, task: str) -> list[str]:
    """The failure reasons offered for ``task``: its ``failure_reasons`` in tasks.toml, else
    the defaults (also when there is no tasks.toml)."""
    from teleop.tasks import TASKS_FILE, load_tasks

    if (Path(data_root) / TASKS_FILE).is_file():
        for t in load_tasks(data_root):
            if t.name == task and t.failure_reasons:
                return list(t.failure_reasons)
    return list(DEFAULT_FAILURE_REASONS)


class LabelError(TeleopError):
    """A label cannot be given as asked; the message names the field and the fix."""


EPISODE_FILE = re.compile(r"^episode_\d{4,}(\.[a-z]+)*\.mcap$")


class TimeMark(BaseModel):
    """A named instant in the episode, e.g. the grasp."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=64)
    t_s: float = Field(ge=0, description="seconds from the episode's first message")


class LabelEvent(BaseModel):
    """One label given by one reviewer to one episode: one line of labels.jsonl."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    event_id: str
    episode: str = Field(description="episode file name in the session, e.g. episode_0001.mcap")
    episode_id: str = Field(description="<session-id>/episode_NNNN, as in the provenance")
    reviewer: str = Field(min_length=1, max_length=64)
    time_utc: str
    app_version: str
    label: Label
    failure_reason: str | None = None
    notes: str = ""
    tags: tuple[str, ...] = ()
    marks: tuple[TimeMark, ...] = ()
    previous_label: Label | None = Field(
        default=None, description="the episode's latest label (any reviewer) before this one"
    )
    previous_reviewer: str | None = None

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(dict.fromkeys(t.strip() for t in v if t.strip()))
        for t in out:
            if len(t) > 64 or "," in t:
                raise ValueError(f"tag {t!r}: at most 64 characters, no commas")
        return out


@dataclass(frozen=True)
class LineProblem:
    """A line of labels.jsonl that could not be read (it is skipped; the rest loads)."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}; that line is skipped (fix or remove it)"


@dataclass(frozen=True)
class LabelLog:
    """Everything read from one session's labels.jsonl."""

    events: tuple[LabelEvent, ...]
    problems: tuple[LineProblem, ...]

    def for_episode(self, episode: str) -> list[LabelEvent]:
        """The episode's label history, oldest first (``episode``: any of its file names)."""
        key = episode_key(episode)
        return [e for e in self.events if episode_key(e.episode) == key]

    def latest(self) -> dict[str, LabelEvent]:
        """Episode key (:func:`episode_key`) → its latest label event (any reviewer)."""
        out: dict[str, LabelEvent] = {}
        for e in self.events:
            out[episode_key(e.episode)] = e
        return out

    def latest_by_reviewer(self) -> dict[str, dict[str, LabelEvent]]:
        """Episode key (:func:`episode_key`) → reviewer → that reviewer's latest label event."""
        out: dict[str, dict[str, LabelEvent]] = {}
        for e in self.events:
            out.setdefault(episode_key(e.episode), {})[e.reviewer] = e
        return out


def episode_key(file_name: str) -> str:
    """``episode_0003`` for ``episode_0003.mcap`` and its recovered copies: labels follow the
    episode, not one file of it."""
    return Path(file_name).name.split(".")[0]


def labels_path(session_dir: Path) -> Path:
    return Path(session_dir) / LABELS_FILE


def read_labels(session_dir: Path) -> LabelLog:
    """Read a session's label log; a missing file is an empty log.

    Malformed lines (bad JSON, unknown fields, a label that is not success/failure/unsure, a
    line cut short by a crash) are returned as :class:`LineProblem` with their line number;
    every other line loads.
    """
    path = labels_path(session_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LabelLog((), ())
    events: list[LabelEvent] = []
    problems: list[LineProblem] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            events.append(LabelEvent.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "line"
            reason = (
                "not valid JSON (cut short?)"
                if err["type"] == "json_invalid"
                else f"{where}: {err['msg']}"
            )
            problems.append(LineProblem(path, number, reason))
    return LabelLog(tuple(events), tuple(problems))


def _now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append_label(
    session_dir: Path,
    *,
    episode: str,
    reviewer: str,
    label: str,
    failure_reason: str | None = None,
    notes: str = "",
    tags: Iterable[str] = (),
    marks: Iterable[TimeMark | tuple[str, float]] = (),
    allowed_reasons: Iterable[str] | None = None,
) -> LabelEvent:
    """Append a label event for ``episode`` (a file name in ``session_dir``) and return it.

    The previous label is read under the same lock as the append, so it is exact even when
    several reviewers label at once.

    Raises:
        LabelError: no such episode, an unknown label, a failure reason on a non-failure, or
            an invalid field, or a failure reason not in ``allowed_reasons`` (the task's list).
    """
    session_dir = Path(session_dir)
    if not EPISODE_FILE.match(episode) or not (session_dir / episode).is_file():
        raise LabelError(f"{session_dir / episode}: no such episode file")
    if not reviewer.strip():
        raise LabelError("an empty reviewer is not allowed: every label names who gave it")
    if label not in LABELS:
        raise LabelError(f"label {label!r}: use one of {', '.join(LABELS)}")
    if failure_reason and label != "failure":
        raise LabelError(f"a failure reason ({failure_reason!r}) goes only with label failure")
    if failure_reason and allowed_reasons is not None:
        allowed = list(allowed_reasons)
        if failure_reason not in allowed:
            raise LabelError(
                f"failure reason {failure_reason!r} is not in this task's list: {', '.join(allowed)}"
            )
    path = labels_path(session_dir)
    with _locked_append(path) as fd:
        log = read_labels(session_dir)
        previous = log.latest().get(episode_key(episode))
        try:
            event = LabelEvent(
                event_id=uuid.uuid4().hex,
                episode=episode,
                episode_id=f"{session_dir.name}/{episode_key(episode)}",
                reviewer=reviewer.strip(),
                time_utc=_now_utc(),
                app_version=__version__,
                label=label,  # type: ignore[arg-type]
                failure_reason=failure_reason or None,
                notes=notes.strip(),
                tags=tuple(tags),
                marks=tuple(
                    m if isinstance(m, TimeMark) else TimeMark(name=m[0], t_s=m[1]) for m in marks
                ),
                previous_label=previous.label if previous else None,
                previous_reviewer=previous.reviewer if previous else None,
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise LabelError(f"label for {episode}: {where}: {err['msg']}") from None
        line = event.model_dump_json(exclude_none=False) + "\n"
        _write_line(fd, line.encode("utf-8"))
    return event


@contextlib.contextmanager
def _locked_append(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # also releases the lock


def _write_line(fd: int, data: bytes) -> None:
    # A line cut short by an earlier crash must not swallow this one: start on a new line.
    size = os.fstat(fd).st_size
    if size:
        with open(fd, "rb", closefd=False) as fh:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                data = b"\n" + data
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fsync(fd)


@dataclass(frozen=True)
class Disagreement:
    """An episode whose reviewers' latest labels differ."""

    session_id: str
    episode: str
    """the episode's key, e.g. ``episode_0003``"""
    labels: dict[str, str]
    """reviewer → latest label"""


def disagreements(session_dirs: Iterable[Path]) -> list[Disagreement]:
    """Episodes where two or more reviewers' latest labels differ, session by session."""
    out: list[Disagreement] = []
    for session_dir in session_dirs:
        log = read_labels(session_dir)
        for episode, by_reviewer in sorted(log.latest_by_reviewer().items()):
            labels: dict[str, str] = {r: e.label for r, e in sorted(by_reviewer.items())}
            if len(set(labels.values())) > 1:
                out.append(Disagreement(Path(session_dir).name, episode, labels))
    return out
