"""DATASHEET.md for a bundle, after "Datasheets for Datasets" (Gebru et al.).

Composition and collection are filled in from the data (the catalog rows of the exported
episodes and their label logs); motivation, license, intended uses and contact are left as
``TODO (lab lead):`` placeholders, because only the lab lead knows them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TODO = "TODO (lab lead):"


@dataclass(frozen=True)
class DatasheetFacts:
    """What the datasheet states about the exported episodes."""

    episodes: Sequence[Mapping[str, Any]]
    """Catalog rows of the exported episodes, operator ids already pseudonymized if asked."""
    reviewers: frozenset[str]
    """Distinct reviewers who labelled any exported episode."""
    created_utc: str
    software_version: str
    git_revision: str
    query: str | None
    bundle_bytes: int
    pseudonymized: bool
    calibration_records: int
    rig_files: int
    still_naming_operators: Sequence[str] = field(default_factory=tuple)
    """Where real operator ids remain in a pseudonymized bundle (the byte-for-byte files)."""


def flag_kind(flag: str) -> str:
    """``"frames_dropped: low x3"`` → ``"frames_dropped"``."""
    return flag.split(":", 1)[0].strip()


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _rate(success: int, labelled: int) -> str:
    return f"{success / labelled:.0%}" if labelled else "n/a"


def _task_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    out = [
        "| task | episodes | labelled | success | failure | unsure | unlabelled | success rate |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task in sorted({str(r["task"]) for r in rows}):
        mine = [r for r in rows if str(r["task"]) == task]
        labels = Counter(r["label"] for r in mine)
        labelled = sum(n for lab, n in labels.items() if lab is not None)
        out.append(
            f"| {task} | {len(mine)} | {labelled} | {labels['success']} | {labels['failure']} "
            f"| {labels['unsure']} | {labels[None]} | {_rate(labels['success'], labelled)} |"
        )
    return out


def _counts(rows: Sequence[Mapping[str, Any]], key: str) -> str:
    c = Counter(str(r[key]) for r in rows)
    return ", ".join(f"{k} ({_n(n, 'episode')})" for k, n in sorted(c.items()))


def render_datasheet(facts: DatasheetFacts) -> str:
    """The datasheet as Markdown."""
    rows = facts.episodes
    dates = sorted(str(r["date"]) for r in rows if r.get("date"))
    duration_s = sum(float(r["duration_s"] or 0.0) for r in rows)
    flags = Counter(flag_kind(f) for r in rows for f in str(r["flags"] or "").split("; ") if f)
    flagged = sum(1 for r in rows if r["flag_count"])
    disagreements = sum(1 for r in rows if r["disagreement"])
    rigs = Counter((str(r["rig"]), str(r["embodiment"])) for r in rows)
    sessions = {r["session"] for r in rows}
    labelled = sum(1 for r in rows if r["label"] is not None)
    successes = sum(1 for r in rows if r["label"] == "success")

    lines = [
        "# Datasheet",
        "",
        f"Exported {facts.created_utc} by teleop {facts.software_version} "
        f"(git {facts.git_revision}). Selection: "
        + (f"`{facts.query}`" if facts.query else "all episodes")
        + ". Structure after *Datasheets for Datasets* (Gebru et al.). Figures below are "
        "computed from the exported files; placeholders marked `TODO (lab lead):` are for "
        "the lab lead to fill in before handing the bundle over.",
        "",
        "## Motivation",
        "",
        f"- Purpose: {TODO} why was this data collected, and for which training or evaluation?",
        f"- Creators and funding: {TODO} who collected it, on whose behalf, funded by whom?",
        "",
        "## Composition",
        "",
        f"- {_n(len(rows), 'episode')} in {_n(len(sessions), 'session')}; {facts.bundle_bytes:,} bytes of "
        f"episode files; total duration {duration_s / 60:.1f} min ({duration_s:.1f} s).",
        "- Each episode is one MCAP file (ros2 profile, cdr): joint states of every leader and "
        "follower arm, follower targets and commands, camera colour (JPEG), depth (16-bit PNG) "
        "and camera_info where the camera has them, diagnostics and episode events; the rig "
        "file and calibration records are attached to each file.",
        f"- Success rate over labelled episodes: {_rate(successes, labelled)} "
        f"({successes} of {labelled}); {_n(len(rows) - labelled, 'episode')} unlabelled "
        "(not counted in any rate).",
        "",
        *_task_table(rows),
        "",
        f"- Operators: {_counts(rows, 'operator')}.",
        "- Rigs (embodiment): "
        + ", ".join(f"{rig} ({emb}, {_n(n, 'episode')})" for (rig, emb), n in sorted(rigs.items()))
        + ".",
        f"- Quality flags: {flagged} of {len(rows)} episodes flagged"
        + (
            "; by kind: " + ", ".join(f"{k} ×{n}" for k, n in sorted(flags.items())) + "."
            if flags
            else "."
        ),
    ]
    if facts.pseudonymized:
        lines += [
            "- **Operator ids are pseudonymized (`operator-N`) in DATASHEET.md, manifest.json, "
            "the session folder names and the `session.json` copies only. This bundle is not "
            "anonymous:** the files kept byte-for-byte so their checksums and audit trail stay "
            "verifiable still name the real operators: "
            + "; ".join(facts.still_naming_operators)
            + ".",
        ]
    lines += [
        f"- Personal or sensitive data: {TODO} do camera images show people or anything "
        "confidential?",
        "",
        "## Collection process",
        "",
        f"- Recorded between {dates[0] if dates else '?'} and {dates[-1] if dates else '?'} "
        "(UTC) by leader–follower teleoperation: an operator moves the leader arms and the "
        "followers track them through the calibrated joint mapping.",
        f"- Control rates achieved: {_rates(rows)}.",
        f"- Calibration: {sum(1 for r in rows if r['calibrated'])} of {len(rows)} episodes "
        f"recorded with calibration records ({_n(facts.calibration_records, 'record')} included "
        f"under `calibration/`; {_n(facts.rig_files, 'rig file')} under `rigs/`).",
        f"- Recording software versions: {_counts(rows, 'software_version')}.",
        f"- Consent and setting: {TODO} were operators informed, and where was it recorded?",
        "",
        "## Preprocessing, cleaning and labelling",
        "",
        "- No preprocessing: episode files are exported byte-for-byte as recorded (their "
        "sha256 is in manifest.json and SHA256SUMS). Discarded episodes were deleted at "
        "recording time; episodes recovered after a crash have status `recovered`.",
        f"- Labels: {_n(len(facts.reviewers), 'reviewer')} labelled {_n(labelled, 'episode')} "
        "(success / failure / unsure, with failure reasons, notes, tags and time marks); "
        f"{_n(disagreements, 'episode')} with reviewers whose latest labels disagree. Each "
        "session's `labels.jsonl` is the complete, append-only label history (who, when, "
        "which app version, what it replaced).",
        "",
        "## Uses",
        "",
        f"- Intended uses: {TODO} e.g. imitation learning for the listed tasks.",
        f"- Uses to avoid: {TODO}",
        "",
        "## Distribution",
        "",
        f"- License: {TODO}",
        "- Verify the bundle before use: `sha256sum -c SHA256SUMS` in the bundle folder, or "
        "`teleop import BUNDLE` (checks every file first, adds nothing if one fails).",
        "",
        "## Maintenance",
        "",
        f"- Contact: {TODO}",
        f"- Errata and updates: {TODO}",
        "",
    ]
    return "\n".join(lines)


def _rates(rows: Sequence[Mapping[str, Any]]) -> str:
    rates = [float(r["rate_hz"]) for r in rows if r.get("rate_hz") is not None]
    if not rates:
        return "unknown"
    return f"{min(rates):.1f}–{max(rates):.1f} Hz"
