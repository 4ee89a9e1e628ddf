"""Sessions on disk: ``<data-root>/<session-id>/`` with ``session.json`` and episode files.

``session.json`` is the session's manifest. It is rewritten whole, atomically (temp file,
fsync, rename, fsync of the directory), so a crash leaves either the old or the new version.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teleop import __version__
from teleop.errors import DataRootError

DATA_DIR_ENV = "TELEOP_DATA_DIR"
SESSION_FILE = "session.json"
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def resolve_data_root(cli_value: str | None) -> Path:
    """``--data-dir``, else ``$TELEOP_DATA_DIR``, else ``./sessions``."""
    return Path(cli_value or os.environ.get(DATA_DIR_ENV) or "sessions")


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON so that readers see the old or new file, whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_id(text: str) -> str:
    return _ID_SAFE.sub("-", text).strip("-") or "unnamed"


@dataclass
class Session:
    """One operator's sitting at one rig for one task."""

    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.manifest["session_id"])

    @property
    def episodes(self) -> list[dict[str, Any]]:
        return self.manifest["episodes"]

    @classmethod
    def create(
        cls,
        data_root: Path,
        *,
        operator: str,
        task: str,
        rig_id: str,
        rig_sha256: str,
        started_utc: str,
    ) -> Session:
        """Make a new session directory and its manifest."""
        try:
            data_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataRootError(
                f"data directory {data_root}: cannot create it ({exc.strerror}); pass --data-dir"
            ) from None
        if not os.access(data_root, os.W_OK):
            raise DataRootError(
                f"data directory {data_root} is not writable; pass --data-dir or fix its permissions"
            )
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        base = f"{stamp}_{safe_id(rig_id)}_{safe_id(operator)}"
        session_id = base
        n = 1
        while (data_root / session_id).exists():
            n += 1
            session_id = f"{base}-{n}"
        root = data_root / session_id
        root.mkdir()
        manifest = {
            "format": "teleop-session/1",
            "session_id": session_id,
            "operator": operator,
            "task": task,
            "rig_id": rig_id,
            "rig_sha256": rig_sha256,
            "host": socket.gethostname(),
            "software_version": __version__,
            "started_utc": started_utc,
            "closed_utc": None,
            "episodes": [],
        }
        session = cls(root, manifest)
        session.save()
        return session

    def save(self) -> None:
        write_json_atomic(self.root / SESSION_FILE, self.manifest)

    def next_episode(self) -> tuple[int, Path]:
        """The next episode number (never reused) and its file path."""
        used = [e["index"] for e in self.episodes]
        index = max(used, default=0) + 1
        return index, self.root / f"episode_{index:04d}.mcap"

    def add_episode(self, entry: dict[str, Any]) -> None:
        self.episodes.append(entry)
        self.save()

    def close(self, closed_utc: str) -> None:
        self.manifest["closed_utc"] = closed_utc
        self.save()
