"""Sessions on disk: ``<data-root>/<session-id>/`` with ``session.json`` and episode files.

``session.json`` is the session's manifest. It is rewritten whole, atomically (temp file,
fsync, rename, fsync of the directory), so a crash leaves either the old or the new version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigs.durable import fsync_dir, write_json_atomic
from teleop import __version__
from teleop.episode.verify import file_sha256
from teleop.errors import DataRootError
from teleop.recording.quality import Quality
from teleop.session_manifest import EpisodeEntry, EpisodeStatus, SessionManifest

DATA_DIR_ENV = "TELEOP_DATA_DIR"
SESSION_FILE = "session.json"
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_EPISODE_NAME = re.compile(r"^episode_(\d+)\.")
DISCARDED_DIR = "discarded"
# Room kept in each open session for its manifest: when recording fills the disk, the
# reserve is released so that session.json can still say which episode was cut short.
RESERVE_FILE = ".manifest-reserve"
RESERVE_BYTES = 256 * 1024


def resolve_data_root(cli_value: str | None) -> Path:
    """``--data-dir``, else ``$TELEOP_DATA_DIR``, else ``./sessions``.

    Raises:
        DataRootError: ``--data-dir`` was given but empty.
    """
    if cli_value is not None and not cli_value.strip():
        raise DataRootError("--data-dir is empty; give the folder that holds the sessions")
    return Path(cli_value or os.environ.get(DATA_DIR_ENV) or "sessions")


def check_writable_root(data_root: Path) -> None:
    """Refuse, before a rig is opened, a data root this user could not record into: an
    existing one must be a writable folder, a new one must be creatable.

    Raises:
        DataRootError: one line naming the folder and the fix.
    """
    data_root = Path(data_root)
    existing = data_root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == data_root and not data_root.is_dir():
        raise DataRootError(f"data directory {data_root} is not a folder; pass --data-dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = data_root if existing == data_root else f"{existing} (to create {data_root} in)"
        raise DataRootError(
            f"data directory {what} is not writable by this user; pass --data-dir or fix its "
            "permissions"
        )


def _make_reserve(path: Path) -> None:
    """Set aside ``RESERVE_BYTES`` of real disk blocks (not a sparse file) at ``path``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return  # no room even for this: the first write of the session will say so
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        return
    os.close(fd)


def safe_id(text: str) -> str:
    return _ID_SAFE.sub("-", text).strip("-") or "unnamed"


@dataclass
class Session:
    """One operator's sitting at one rig for one task."""

    root: Path
    manifest: SessionManifest

    @property
    def id(self) -> str:
        return self.manifest.session_id

    @property
    def episodes(self) -> list[EpisodeEntry]:
        return self.manifest.episodes

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
        _make_reserve(root / RESERVE_FILE)
        manifest = SessionManifest(
            session_id=session_id,
            operator=operator,
            task=task,
            rig_id=rig_id,
            rig_sha256=rig_sha256,
            host=socket.gethostname(),
            software_version=__version__,
            started_utc=started_utc,
        )
        session = cls(root, manifest)
        session.save()
        return session

    def save(self) -> None:
        """Write the manifest; on a full disk, release the session's reserve and try again."""
        data = self.manifest.to_json()
        try:
            write_json_atomic(self.root / SESSION_FILE, data)
        except OSError as exc:
            reserve = self.root / RESERVE_FILE
            if exc.errno != errno.ENOSPC or not reserve.exists():
                raise
            reserve.unlink()
            write_json_atomic(self.root / SESSION_FILE, data)

    @classmethod
    def open(cls, root: Path) -> Session:
        """Reopen an existing session (to resume recording after a restart)."""
        path = root / SESSION_FILE
        return cls(root, read_manifest(path))

    def _used_numbers(self) -> set[int]:
        used = {e.index for e in self.episodes}
        for folder in (self.root, self.root / DISCARDED_DIR):
            for f in folder.glob("episode_*.mcap*"):
                m = _EPISODE_NAME.match(f.name)
                if m:
                    used.add(int(m.group(1)))
        return used

    def next_episode(self) -> tuple[int, Path]:
        """The next episode number and its path: one above every number ever used here.

        Numbers count episodes in the manifest and every episode file on disk (finished,
        partial or discarded), so a number is never used twice, even after a crash.
        """
        index = max(self._used_numbers(), default=0) + 1
        return index, self.root / f"episode_{index:04d}.mcap"

    def entry(self, index: int) -> EpisodeEntry:
        for e in self.episodes:
            if e.index == index:
                return e
        raise KeyError(index)

    def add_episode(self, entry: EpisodeEntry) -> None:
        self.episodes.append(entry)
        self.save()

    def set_status(self, index: int, status: EpisodeStatus, **fields: Any) -> None:
        """Set an episode's status (and other fields of its entry, validated) and save."""
        entry = self.entry(index)
        for name, value in {"status": status, **fields}.items():
            setattr(entry, name, value)
        self.save()

    def discard(self, index: int) -> Path:
        """Move an episode's file aside into ``discarded/`` (deleted when the session closes)."""
        e = self.entry(index)
        src = self.root / e.file
        dst_dir = self.root / DISCARDED_DIR
        dst_dir.mkdir(exist_ok=True)
        dst = dst_dir / e.file
        if src.exists():
            os.replace(src, dst)
            fsync_dir(self.root)
        self.set_status(index, "discarded", file=f"{DISCARDED_DIR}/{e.file}")
        return dst

    def unfinished(self) -> list[Path]:
        """Episode files a crash left behind (``*.mcap.partial``) not yet recovered."""
        recovered = {e.recovered_from for e in self.episodes}
        return sorted(
            p for p in self.root.glob("episode_*.mcap.partial") if p.name not in recovered
        )

    def register_recovered(
        self, source: Path, output: Path, *, duration_s: float, stopped_at: str
    ) -> None:
        """List ``output``, rebuilt from ``source`` by ``teleop recover``, as the episode's
        file with status ``recovered`` (its labels follow: they key on the episode number)."""
        m = _EPISODE_NAME.match(Path(source).name)
        if m is None or Path(output).parent.resolve() != self.root.resolve():
            return
        index = int(m.group(1))
        fields: dict[str, Any] = {
            "file": Path(output).name,
            "recovered_from": Path(source).name,
            "duration_s": round(duration_s, 3),
            "bytes": Path(output).stat().st_size,
            "sha256": file_sha256(Path(output)),
            "quality": Quality(flags=[f"recovered: the recording ended abnormally ({stopped_at})"]),
        }
        try:
            self.set_status(index, "recovered", **fields)
        except KeyError:
            self.add_episode(EpisodeEntry(index=index, status="recovered", **fields))

    def register_repaired(self, source: Path, output: Path) -> bool:
        """List ``output`` (``teleop repair``'s copy of ``source``) as the episode's file, in
        place of ``source``; status and quality stay. Returns False when ``source`` is not
        this session's listed file of an episode."""
        if Path(output).parent.resolve() != self.root.resolve():
            return False
        for e in self.episodes:
            if e.file == Path(source).name:
                e.file = Path(output).name
                e.repaired_from = Path(source).name
                e.bytes = Path(output).stat().st_size
                e.sha256 = file_sha256(Path(output))
                self.save()
                return True
        return False

    def close(self, closed_utc: str) -> None:
        """Mark the session closed; discarded episodes are deleted now, as promised."""
        for e in self.episodes:
            if e.status == "discarded":
                f = self.root / e.file
                if f.exists():
                    f.unlink()
                e.deleted_at_close = True
        with contextlib.suppress(OSError):
            (self.root / DISCARDED_DIR).rmdir()
        self.manifest.closed_utc = closed_utc
        self.save()
        (self.root / RESERVE_FILE).unlink(missing_ok=True)


def read_manifest(path: Path) -> SessionManifest:
    """A session.json file's manifest.

    Raises:
        DataRootError: no such file (not a session folder), unreadable or not a manifest.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise DataRootError(f"{path.parent}: not a session folder (no {SESSION_FILE})") from None
    except OSError as exc:
        raise DataRootError(f"{path}: unreadable session manifest ({exc.strerror})") from None
    return SessionManifest.parse(text, str(path))


def session_of(path: Path) -> Session | None:
    """The session whose folder holds ``path``, or None (no or unreadable session.json)."""
    root = Path(path).resolve().parent
    if not (root / SESSION_FILE).is_file():
        return None
    try:
        return Session.open(root)
    except DataRootError:
        return None


def register_recovered(source: Path, output: Path, *, duration_s: float, stopped_at: str) -> None:
    """If ``source`` lies in a session folder, list its recovered copy in session.json."""
    session = session_of(source)
    if session is not None:
        session.register_recovered(source, output, duration_s=duration_s, stopped_at=stopped_at)


def find_unfinished(data_root: Path) -> list[Path]:
    """Unrecovered partial episodes in every session under ``data_root``."""
    out: list[Path] = []
    for manifest in sorted(data_root.glob(f"*/{SESSION_FILE}")):
        try:
            out += Session.open(manifest.parent).unfinished()
        except DataRootError:
            continue
    return out
