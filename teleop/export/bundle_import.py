"""Check a bundle (directory or ``.tar``) and import it into a data root.

Every check runs before anything is written: each file's sha256 against SHA256SUMS, every
file listed and every listed file present, no name that could land outside the data root
(absolute, ``..``, links, devices), only the bundle's own layout, and no clash with a
different file already in the data root. Files are then written under hidden temporary
names and given their final names only when all of them are written and re-hashed, so a
crash mid-import leaves no half file under a final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from calibration.records import CalibrationRecordError
from calibration.store import (
    CALIBRATION_DIR,
    CalibrationStore,
    record_from_bytes,
    refuse_future,
)
from rigs.durable import fsync_dir, publish_new
from teleop import catalog
from teleop.export.atomic import ExportError, Progress
from teleop.export.bundle import DATASHEET, MANIFEST, RIGS_DIR, SESSIONS_DIR, SUMS
from teleop.export.signing import SIGNATURE, SignatureCheck, trusted_keys
from teleop.export.signing import check as check_signature
from teleop.labels import LABELS_FILE
from teleop.session import SESSION_FILE

_CHUNK_BYTES = 1 << 20
_RESERVE_BYTES = 1 << 30  # an import never leaves the station without room to record
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
# A session folder is named as teleop names one (<utc>_<rig>_<operator>[-n]), or session-N as a
# pseudonymized bundle names it; anything else (e.g. "calibration") is not a session.
_SESSION = r"(\d{8}-\d{6}_[A-Za-z0-9_.-]+|session-\d+)"
# The only files a bundle may hold (and so the only places an import may write). Episode files
# include recovered and repaired copies (episode_0001.recovered.mcap).
_LAYOUT = (
    re.compile(
        rf"^{SESSIONS_DIR}/{_SESSION}/(episode_\d+(\.[a-z]+)?\.mcap|{SESSION_FILE}|{LABELS_FILE})$"
    ),
    re.compile(rf"^{CALIBRATION_DIR}/{_PART}/{_PART}\.json$"),
    re.compile(rf"^{RIGS_DIR}/{_PART}\.toml$"),
    re.compile(rf"^({MANIFEST}|{DATASHEET})$"),
)
# Imported in this order so that a session's manifest appears after its episode files.
_ORDER = {f"{CALIBRATION_DIR}": 0, RIGS_DIR: 1, "mcap": 2, LABELS_FILE: 3, SESSION_FILE: 4}


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every file matched SHA256SUMS."""

    path: Path
    sums: dict[str, str]
    """Relative path → sha256, for every file but SHA256SUMS (and SIGNATURE)."""
    bytes: int
    signature: SignatureCheck | None = None
    """The bundle's signature, checked against SHA256SUMS; None for an unsigned bundle."""

    @property
    def files(self) -> int:
        """Files checked, SHA256SUMS and SIGNATURE included."""
        return len(self.sums) + 1 + (self.signature is not None)


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_bundle` did."""

    bundle: Path
    data_root: Path
    sessions: tuple[str, ...]
    added: int
    """Files written."""
    skipped: int
    """Files already in the data root, identical."""
    bytes_added: int
    episodes_in_catalog: int
    signature: SignatureCheck | None = None


# -- reading a bundle ------------------------------------------------------------------------


class _Bundle:
    """Uniform access to a bundle directory or tar: its files, and a reader for each."""

    def __init__(self, path: Path):
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            self._files = self._scan_dir()
        elif path.is_file():
            try:
                self._tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
                self._files = self._scan_tar()
            except (tarfile.TarError, EOFError, OSError) as exc:
                if self._tar is not None:
                    self._tar.close()
                raise ExportError(
                    f"{path}: not a complete, uncompressed tar bundle ({type(exc).__name__}: "
                    f"{exc}); copy it again or export it again with --out NAME.tar"
                ) from None
        else:
            raise ExportError(f"{path}: not a bundle directory or .tar file")

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    @property
    def names(self) -> dict[str, int]:
        """Relative name → size."""
        return self._files

    def _scan_dir(self) -> dict[str, int]:
        files: dict[str, int] = {}
        for dirpath, dirnames, filenames in os.walk(self.path, followlinks=False):
            for name in [*dirnames, *filenames]:
                p = Path(dirpath) / name
                rel = p.relative_to(self.path).as_posix()
                st = p.lstat()
                if stat.S_ISLNK(st.st_mode):
                    raise ExportError(
                        f"{self.path}: {rel} is a symbolic link; bundles hold files only"
                    )
                if stat.S_ISDIR(st.st_mode):
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise ExportError(f"{self.path}: {rel} is not a regular file")
                files[_checked_name(self.path, rel)] = st.st_size
        return files

    def _scan_tar(self) -> dict[str, int]:
        assert self._tar is not None
        files: dict[str, int] = {}
        size = self.path.stat().st_size
        for m in self._tar.getmembers():
            name = _checked_name(self.path, m.name)
            if m.issparse():
                raise ExportError(
                    f"{self.path}: member {m.name} is a sparse file; bundles hold plain files only"
                )
            if m.isfile() and m.offset_data + m.size > size:
                raise ExportError(
                    f"{self.path}: member {m.name} says {m.size} bytes but the file ends first "
                    "(truncated); copy it again"
                )
            if m.issym() or m.islnk():
                raise ExportError(
                    f"{self.path}: member {m.name} is a link; bundles hold files only"
                )
            if m.isdir():
                continue
            if not m.isfile():
                raise ExportError(f"{self.path}: member {m.name} is not a regular file")
            if name in files:
                raise ExportError(f"{self.path}: member {m.name} appears twice")
            files[name] = m.size
            self._members[name] = m
        return files

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        if self._tar is None:
            with open(self.path / rel, "rb") as f:
                yield f
            return
        member = self._tar.extractfile(self._members[rel])
        assert member is not None  # a regular member
        with member:
            yield member


def _checked_name(bundle: Path, name: str) -> str:
    """A relative name that stays inside the bundle, normalized; refuses anything else."""
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("/") or "\\" in name:
        raise ExportError(f"{bundle}: {name} is an absolute path; refusing the bundle")
    if ".." in p.parts:
        raise ExportError(f"{bundle}: {name} escapes the bundle (..); refusing the bundle")
    return p.as_posix().removeprefix("./")


def _stream(f: IO[bytes], on_chunk: Callable[[bytes], None]) -> str:
    sha = hashlib.sha256()
    while chunk := f.read(_CHUNK_BYTES):
        sha.update(chunk)
        on_chunk(chunk)
    return sha.hexdigest()


def _read_sums(bundle: _Bundle) -> tuple[dict[str, str], bytes]:
    if SUMS not in bundle.names:
        raise ExportError(f"{bundle.path}: no {SUMS}; not a teleop bundle")
    with bundle.open(SUMS) as f:
        raw = f.read()
    text = raw.decode("utf-8", "replace")
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = _SUM_LINE.match(line)
        if not m:
            raise ExportError(f"{bundle.path}: {SUMS} line {number} is not '<sha256>  <path>'")
        name = _checked_name(bundle.path, m.group(2))
        if name in sums:
            raise ExportError(f"{bundle.path}: {SUMS} lists {name} twice")
        sums[name] = m.group(1)
    return sums, raw


@dataclass
class _Counter:
    """Counts bytes read from the bundle and reports progress."""

    done: list[int]
    total: int
    what: str
    progress: Progress | None

    def __call__(self, chunk: bytes) -> None:
        self.done[0] += len(chunk)
        if self.progress is not None:
            self.progress(self.done[0], self.total, self.what)


def _check(
    bundle: _Bundle, progress: Progress | None, trusted: dict[str, Any] | None = None
) -> VerifiedBundle:
    sums, raw_sums = _read_sums(bundle)
    signature = None
    if SIGNATURE in bundle.names:
        if SIGNATURE in sums or bundle.names[SIGNATURE] > 64 * 1024:
            raise ExportError(f"{bundle.path}: {SIGNATURE} is not a bundle signature")
        with bundle.open(SIGNATURE) as f:
            signature = check_signature(bundle.path, raw_sums, f.read(), trusted or {})
    for name in bundle.names:
        if name in (SUMS, SIGNATURE):
            continue
        if name not in sums:
            raise ExportError(f"{bundle.path}: {name} is not listed in {SUMS}")
        if not any(p.match(name) for p in _LAYOUT):
            raise ExportError(f"{bundle.path}: {name} is not part of a teleop bundle")
    for name in sums:
        if name not in bundle.names:
            raise ExportError(f"{bundle.path}: {name} is listed in {SUMS} but missing")
    total = sum(bundle.names[n] for n in sums)
    done = [0]
    for name in sorted(sums):
        with bundle.open(name) as f:
            actual = _stream(f, _Counter(done, total, name, progress))
        if actual != sums[name]:
            raise ExportError(
                f"{bundle.path}: {name} does not match its sha256 in {SUMS} "
                "(altered or damaged); nothing was imported"
            )
    return VerifiedBundle(bundle.path, sums, total, signature)


def verify_bundle(
    path: Path, *, progress: Progress | None = None, trusted: dict[str, Any] | None = None
) -> VerifiedBundle:
    """Check every file of the bundle at ``path`` against its SHA256SUMS, and its SIGNATURE
    (if it has one) against SHA256SUMS; ``trusted`` keys (:func:`trusted_keys`) decide
    whether the signer is known.

    Raises:
        ExportError: one line naming the first file that fails: a checksum mismatch, a file
            not listed or listed but missing, a name outside the bundle, a link or device,
            or a file that is not part of the bundle layout; a signature that does not match.
    """
    bundle = _Bundle(Path(path))
    try:
        return _check(bundle, progress, trusted)
    finally:
        bundle.close()


# -- importing -------------------------------------------------------------------------------


def _sha_of(path: Path) -> str:
    with open(path, "rb") as f:
        return _stream(f, lambda _c: None)


def _kind(rel: str) -> int:
    top = rel.split("/", 1)[0]
    if top in (CALIBRATION_DIR, RIGS_DIR):
        return _ORDER[top]
    return _ORDER["mcap" if rel.endswith(".mcap") else rel.rsplit("/", 1)[-1]]


def _check_record(bundle: Path, rel: str, raw: bytes, dest: Path) -> None:
    """A calibration record of a bundle must verify by its own sha256 and id and not be dated
    in the future, whatever SHA256SUMS says."""
    try:
        stored = record_from_bytes(raw, dest, rig_id=dest.parent.name)
        refuse_future(stored.record, "calibration record")
    except CalibrationRecordError as exc:
        raise ExportError(f"{bundle}: {rel}: {exc}; nothing was imported") from None


def _json_member(bundle: _Bundle, rel: str) -> Any:
    with bundle.open(rel) as f:
        try:
            return json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ExportError(f"{bundle.path}: {rel} is not valid JSON ({exc})") from None


def _episode_hashes(manifest: Any, where: str) -> dict[str, str]:
    """Episode file → sha256 as a manifest.json (``path``) or session.json (``file``) says."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("episodes", []), list):
        raise ExportError(f"{where}: has no list of episodes")
    out = {}
    for e in manifest.get("episodes", []):
        if isinstance(e, dict) and e.get("sha256"):
            out[str(e.get("path") or e.get("file"))] = str(e["sha256"])
    return out


def _check_episode_hashes(bundle: _Bundle, verified: VerifiedBundle, data_root: Path) -> None:
    """Every episode's sha256 in SHA256SUMS must equal the one in manifest.json, in the
    bundle's session.json and, for a session the station already has, in its own
    session.json: SHA256SUMS alone can be rewritten to match altered files."""
    sums = verified.sums

    def refuse(rel: str, where: str) -> None:
        raise ExportError(
            f"{bundle.path}: {rel} does not match its sha256 in {where}; the bundle was "
            "altered or assembled from different recordings; nothing was imported"
        )

    if MANIFEST in sums:
        for rel, sha in _episode_hashes(_json_member(bundle, MANIFEST), MANIFEST).items():
            if rel not in sums:
                raise ExportError(f"{bundle.path}: {MANIFEST} lists {rel}, which is missing")
            if sums[rel] != sha:
                refuse(rel, MANIFEST)
    for rel in sorted(r for r in sums if r.endswith(f"/{SESSION_FILE}")):
        session = rel.split("/")[1]
        sources = [(rel, _json_member(bundle, rel))]
        local = data_root / session / SESSION_FILE
        if local.is_file():
            # An unreadable local manifest: the clash check below refuses it.
            with contextlib.suppress(OSError, ValueError):
                sources.append((str(local), json.loads(local.read_text(encoding="utf-8"))))
        for where, manifest in sources:
            for file, sha in _episode_hashes(manifest, where).items():
                episode = f"{SESSIONS_DIR}/{session}/{file}"
                if episode in sums and sums[episode] != sha:
                    refuse(episode, where)


def import_bundle(
    bundle: Path,
    data_root: Path,
    *,
    progress: Progress | None = None,
    require_signature: bool = False,
    trusted_key_files: tuple[Path, ...] = (),
) -> ImportResult:
    """Verify the bundle, then add its sessions, calibration records and rig files to
    ``data_root`` and refresh the catalog.

    With ``require_signature``, only a bundle signed by a key the station trusts (its
    ``keys/*.pub`` and ``trusted_key_files``) is imported. A signature that does not match
    is refused whether or not one is required.

    ``progress(done_bytes, total_bytes, what)`` covers the check and the copy (twice the
    bundle's size). Files identical to ones already there are skipped.

    Raises:
        ExportError: any check fails (see :func:`verify_bundle`), or a file of the bundle
            would replace a different existing file. Nothing is added in either case.
    """
    bundle, data_root = Path(bundle), Path(data_root)
    if not data_root.is_dir():
        raise ExportError(f"{data_root}: no such data directory; create it or pass --data-dir")
    trusted = trusted_keys(data_root, trusted_key_files)
    b = _Bundle(bundle)
    try:
        total = 2 * sum(size for name, size in b.names.items() if name not in (SUMS, SIGNATURE))

        def checking(done: int, _t: int, what: str) -> None:
            if progress is not None:
                progress(done, total, what)

        verified = _check(b, checking, trusted)
        _require_signature(bundle, verified.signature, require_signature)
        _check_episode_hashes(b, verified, data_root)
        wanted = sorted(
            (rel for rel in verified.sums if rel not in (MANIFEST, DATASHEET)),
            key=lambda rel: (_kind(rel), rel),
        )
        new: list[str] = []
        skipped = 0
        for rel in wanted:
            dest = _destination(data_root, rel)
            if dest.is_symlink() or (dest.exists() and not dest.is_file()):
                raise ExportError(f"{dest}: exists and is not a plain file; nothing was imported")
            if dest.exists():
                if _sha_of(dest) != verified.sums[rel]:
                    raise ExportError(
                        f"{dest}: already exists with different content than {rel} in the "
                        "bundle; nothing was imported"
                    )
                skipped += 1
            else:
                new.append(rel)
        need = sum(b.names[rel] for rel in new)
        free = shutil.disk_usage(data_root).free
        if need + _RESERVE_BYTES > free:
            raise ExportError(
                f"{data_root}: {need / 2**30:.2f} GiB to import but only {free / 2**30:.2f} GiB "
                "free (and 1 GiB kept for recording); free space first; nothing was imported"
            )
        added_bytes = _write_all(b, data_root, new, verified, verified.bytes, total, progress)
    finally:
        b.close()
    report = catalog.refresh(data_root)
    sessions = sorted({rel.split("/")[1] for rel in verified.sums if rel.startswith(SESSIONS_DIR)})
    return ImportResult(
        bundle,
        data_root,
        tuple(sessions),
        len(new),
        skipped,
        added_bytes,
        report.episodes,
        verified.signature,
    )


def _require_signature(bundle: Path, signature: SignatureCheck | None, required: bool) -> None:
    if not required:
        return
    if signature is None:
        raise ExportError(
            f"{bundle}: not signed, and --require-signature is set; ask for a bundle exported "
            "with `teleop export bundle --sign KEY`; nothing was imported"
        )
    if not signature.trusted:
        raise ExportError(
            f"{bundle}: signed by key {signature.key_id}, which this station does not trust; "
            "if it is your lab's key, `teleop keys trust FILE.pub` first; nothing was imported"
        )


def _destination(data_root: Path, rel: str) -> Path:
    if rel.startswith(f"{SESSIONS_DIR}/"):
        return data_root / rel.removeprefix(f"{SESSIONS_DIR}/")
    return data_root / rel


@dataclass
class _Copier(_Counter):
    """Also writes each chunk read from the bundle to ``out``."""

    out: IO[bytes]

    def __call__(self, chunk: bytes) -> None:
        self.out.write(chunk)
        super().__call__(chunk)


def _write_all(
    bundle: _Bundle,
    data_root: Path,
    rels: list[str],
    verified: VerifiedBundle,
    done_before: int,
    total: int,
    progress: Progress | None,
) -> int:
    """Write every file under a temporary name, re-hash, then publish them all."""
    temps: list[tuple[Path, Path]] = []
    made_dirs: list[Path] = []
    done = [done_before]
    try:
        for rel in rels:
            dest = _destination(data_root, rel)
            for parent in reversed(dest.parents):
                if not parent.exists():
                    parent.mkdir()
                    made_dirs.append(parent)
            tmp = dest.with_name(f".{dest.name}.import-{os.getpid()}")
            temps.append((tmp, dest))

            with bundle.open(rel) as src, open(tmp, "wb") as out:
                sha = _stream(src, _Copier(done, total, rel, progress, out))
                out.flush()
                os.fsync(out.fileno())
            # The bundle could change between the check and this copy; what lands must match.
            if sha != verified.sums[rel]:
                raise ExportError(
                    f"{bundle.path}: {rel} changed while importing; nothing was imported"
                )
            if rel.startswith(f"{CALIBRATION_DIR}/"):
                _check_record(bundle.path, rel, tmp.read_bytes(), dest)
                os.chmod(tmp, 0o444)  # calibration records are immutable, as the store writes them
        # Imported records are stored, never activated: write down what is active first.
        store = CalibrationStore(data_root)
        for rig_id in sorted(
            {rel.split("/")[1] for rel in rels if rel.startswith(f"{CALIBRATION_DIR}/")}
        ):
            store.freeze_active(rig_id)
        for tmp, dest in temps:
            try:
                publish_new(tmp, dest)
                tmp.unlink(missing_ok=True)
            except FileExistsError:
                raise ExportError(f"{dest}: appeared while importing; import again") from None
    except BaseException:
        for tmp, _dest in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        for d in reversed(made_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty: published files stay
        raise
    for d in {dest.parent for _t, dest in temps}:
        fsync_dir(d)
    return sum(bundle.names[rel] for rel in rels)
