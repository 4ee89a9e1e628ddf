"""Timeline marks of an episode: its events, and the quality flags and camera events.

Three sources, merged: the ``/episode/events`` messages (start, stop, marks, faults, camera
health), the ``quality`` metadata record at the end of the file, and the episode's entry in
the session's ``session.json`` (which can carry flags added after recording). A camera event
appears in more than one of them; it is shown once.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teleop.playback.reader import EpisodeReader

log = logging.getLogger(__name__)

# Same event from two sources: /episode/events stamps it in UTC, quality records it relative
# to the first control sample; the two origins differ by a few milliseconds.
_SAME_EVENT_NS = 100_000_000
_FLAG_TIME = re.compile(r" at (-?\d+(?:\.\d+)?) s\b")


@dataclass(frozen=True)
class Mark:
    """A point on the timeline."""

    t_ns: int
    """Nanoseconds since the episode's start (its first message)."""
    category: str
    """``event`` (start/stop), ``mark``, ``fault`` or ``quality``."""
    text: str


@dataclass(frozen=True)
class EpisodeMarks:
    marks: tuple[Mark, ...]
    """Ordered by time."""
    flags: tuple[str, ...]
    """Quality flags of the whole episode (shown as text; the timed ones are marks too)."""


def episode_marks(reader: EpisodeReader) -> EpisodeMarks:
    """Collect the marks of ``reader``'s episode (reads the event chunks and session.json)."""
    marks: list[Mark] = []
    for e in reader.events():
        t = e.stamp_ns - reader.start_ns
        text = f"{e.kind}: {e.detail}" if e.detail else e.kind
        marks.append(Mark(t, _category(e.kind, e.detail), text))
    flags: list[str] = []
    for quality in (
        _metadata_quality(reader.metadata.get("quality", {})),
        _session_quality(reader.path),
    ):
        for flag in quality.get("flags") or []:
            if str(flag) not in flags:
                flags.append(str(flag))
        for camera, info in (quality.get("cameras") or {}).items():
            for ev in (info or {}).get("events") or []:
                try:
                    t = round(float(ev["t_s"]) * 1e9)
                except (KeyError, TypeError, ValueError):
                    continue
                text = f"{ev.get('kind', 'event')}: {camera}: {ev.get('detail', '')}".rstrip(": ")
                _add_once(marks, Mark(t, "quality", text))
    for flag in flags:
        m = _FLAG_TIME.search(flag)
        if m:
            _add_once(marks, Mark(round(float(m.group(1)) * 1e9), "quality", flag))
    return EpisodeMarks(tuple(sorted(marks, key=lambda m: m.t_ns)), tuple(flags))


def _category(kind: str, detail: str) -> str:
    if kind in ("start", "stop"):
        return "fault" if "fault" in detail else "event"
    if kind == "mark":
        return "mark"
    if "fault" in kind:
        return "fault"
    return "quality"


def _add_once(marks: list[Mark], new: Mark) -> None:
    head = new.text.split(":", 2)[:2]  # kind and camera
    for m in marks:
        if abs(m.t_ns - new.t_ns) <= _SAME_EVENT_NS and m.text.split(":", 2)[:2] == head:
            return
    marks.append(new)


def _metadata_quality(values: dict[str, str]) -> dict[str, Any]:
    """The quality metadata record, its JSON-encoded nested values decoded."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _session_quality(path: Path) -> dict[str, Any]:
    manifest = path.parent / "session.json"
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); quality marks from the episode file only", manifest, exc)
        return {}
    for entry in data.get("episodes", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and entry.get("file") == path.name:
            quality = entry.get("quality")
            return quality if isinstance(quality, dict) else {}
    return {}
