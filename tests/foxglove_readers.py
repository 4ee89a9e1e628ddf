"""Run Foxglove's own TypeScript readers (tests/foxglove, installed by `bash setup.sh test`)
on an MCAP file and return what they decoded."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

FOXGLOVE_DIR = Path(__file__).parent / "foxglove"


def node() -> str:
    exe = shutil.which("node")
    if exe is None or not (FOXGLOVE_DIR / "node_modules" / "@mcap" / "core").is_dir():
        raise RuntimeError(
            "Foxglove's readers are not installed: run `bash setup.sh test` (it installs Node "
            "and runs `npm ci --prefix tests/foxglove`)"
        )
    return exe


def read_with_foxglove(path: Path, *, dump: int = 0) -> dict[str, Any]:
    """Every message of ``path`` through @mcap/core + @foxglove/rosmsg(2) (read_episode.mjs)."""
    cmd = [node(), str(FOXGLOVE_DIR / "read_episode.mjs"), str(path)]
    if dump:
        cmd += ["--dump", str(dump)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"Foxglove's reader failed on {path}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def undecoded(result: dict[str, Any]) -> dict[str, str]:
    """Topics where Foxglove's readers did not decode every message exactly, and why."""
    bad = {}
    for topic, t in result["topics"].items():
        problems = []
        if t["error"]:
            problems.append(t["error"])
        if t["decoded"] != t["messages"]:
            problems.append(f"decoded {t['decoded']} of {t['messages']}")
        if t["trailing_bytes"]:
            problems.append(f"{t['trailing_bytes']} with bytes left over")
        if t["reencode_mismatch"]:
            problems.append(f"{t['reencode_mismatch']} re-encode differently")
        if problems:
            bad[topic] = "; ".join(problems)
    return bad
