"""``teleop inspect FILE``: what an episode holds, from its summary and indexes (no full read)."""

from __future__ import annotations

import json
from pathlib import Path

from teleop.episode.reader import EpisodeSummary, summarize


def _maybe_json(value: str) -> object:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _flat(key: str, value: object) -> list[str]:
    """Nested quality values (per camera, percentiles) as one ``a.b  value`` line each."""
    if isinstance(value, dict) and value:
        return [line for k, v in value.items() for line in _flat(f"{key}.{k}", v)]
    if isinstance(value, list):
        return [f"  {key:36} {'; '.join(map(str, value)) or 'none'}"]
    return [f"  {key:36} {value}"]


def summary_dict(s: EpisodeSummary) -> dict[str, object]:
    return {
        "file": str(s.path),
        "bytes": s.file_size_bytes,
        "profile": s.profile,
        "duration_s": round(s.duration_s, 3),
        "messages": s.message_count,
        "chunks": s.chunk_count,
        "compression": list(s.compression),
        "topics": {
            t.topic: {"type": t.message_type, "count": t.message_count, "rate_hz": t.rate_hz}
            for t in sorted(s.topics.values(), key=lambda t: t.topic)
        },
        "metadata": {
            name: {k: _maybe_json(v) for k, v in rec.items()} for name, rec in s.metadata.items()
        },
        "attachments": s.attachment_names,
        "legacy_definitions": s.legacy_schemas,
    }


def render_inspect(path: str, *, as_json: bool = False) -> str:
    s = summarize(Path(path))
    if as_json:
        return json.dumps(summary_dict(s), indent=2)
    lines = [
        f"file      {s.path}  ({s.file_size_bytes / 2**20:.2f} MiB, profile {s.profile}, "
        f"{s.chunk_count} chunks {'/'.join(s.compression) or 'uncompressed'})",
        f"duration  {s.duration_s:.3f} s, {s.message_count} messages",
    ]
    if s.legacy_schemas:
        lines.append(
            f"definitions  old form (written by teleop 0.1): Foxglove cannot decode "
            f"{', '.join(s.legacy_schemas)}; `teleop repair {s.path}` writes a corrected copy"
        )
    lines += [
        "",
        f"{'topic':48} {'type':36} {'count':>7} {'rate Hz':>8}",
    ]
    for t in sorted(s.topics.values(), key=lambda t: t.topic):
        rate = f"{t.rate_hz:.2f}" if t.rate_hz else "-"
        lines.append(f"{t.topic:48} {t.message_type:36} {t.message_count:>7} {rate:>8}")
    names = ["provenance", "hardware", "quality"]
    names += [n for n in s.metadata if n not in names]
    for name in names:
        rec = s.metadata.get(name)
        if rec is None:
            note = (
                " (missing: the episode did not finish normally)"
                if name == "quality"
                else " (missing)"
            )
            lines += ["", f"{name}:{note}"]
            continue
        lines += ["", f"{name}:"]
        for k, v in rec.items():
            lines += _flat(k, _maybe_json(v))
    lines += ["", f"attachments: {', '.join(s.attachment_names) or 'none'}"]
    return "\n".join(lines)
