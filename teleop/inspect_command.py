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
    }


def render_inspect(path: str, *, as_json: bool = False) -> str:
    s = summarize(Path(path))
    if as_json:
        return json.dumps(summary_dict(s), indent=2)
    lines = [
        f"file      {s.path}  ({s.file_size_bytes / 2**20:.2f} MiB, profile {s.profile}, "
        f"{s.chunk_count} chunks {'/'.join(s.compression) or 'uncompressed'})",
        f"duration  {s.duration_s:.3f} s, {s.message_count} messages",
        "",
        f"{'topic':48} {'type':36} {'count':>7} {'rate Hz':>8}",
    ]
    for t in sorted(s.topics.values(), key=lambda t: t.topic):
        rate = f"{t.rate_hz:.2f}" if t.rate_hz else "-"
        lines.append(f"{t.topic:48} {t.message_type:36} {t.message_count:>7} {rate:>8}")
    for name in ("provenance", "hardware", "quality"):
        rec = s.metadata.get(name)
        if rec is None:
            lines += ["", f"{name}: (missing)"]
            continue
        lines += ["", f"{name}:"]
        for k, v in rec.items():
            lines.append(f"  {k:28} {v}")
    others = [n for n in s.metadata if n not in ("provenance", "hardware", "quality")]
    for name in others:
        lines += ["", f"{name}:"] + [f"  {k:28} {v}" for k, v in s.metadata[name].items()]
    lines += ["", f"attachments: {', '.join(s.attachment_names) or 'none'}"]
    return "\n".join(lines)
