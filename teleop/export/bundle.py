"""Verifiable session bundles: episode files byte-for-byte with manifest, checksums, datasheet.

A bundle (a directory, or a plain ``.tar`` of the same files) holds::

    sessions/<session-id>/episode_NNNN.mcap   the selected episodes, byte-for-byte
    sessions/<session-id>/session.json        the session manifest
    sessions/<session-id>/labels.jsonl        the session's whole label log, byte-for-byte
    calibration/<rig-id>/<record-id>.json     the calibration records the episodes used
    rigs/<rig-id>-<sha8>.toml                 each distinct rig file (from the episodes)
    DATASHEET.md                              after "Datasheets for Datasets"
    manifest.json                             what, from where, by which software; per episode
    SHA256SUMS                                every other file, as ``sha256sum -c`` reads it
    SIGNATURE                                 (signed bundles) a lab key's Ed25519 signature
                                              over SHA256SUMS (:mod:`teleop.export.signing`)

Files are hashed while they are copied (one read of each), and the bundle is written under a
temporary name and renamed when complete (:func:`teleop.export.atomic.atomic_output`).

With ``pseudonymize``, operator ids become ``operator-1``, ``operator-2``… (in order of
first appearance) in manifest.json, DATASHEET.md, the session folder names and the
session.json copies. The episode files, labels.jsonl and calibration records are kept
byte-for-byte (that is what makes them verifiable), so they still name the operators; the
datasheet and manifest say so, and the bundle is never called anonymous.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from calibration.store import CALIBRATION_DIR
from teleop.episode.reader import EpisodeReadError, read_attachment, summarize
from teleop.errors import DataRootError
from teleop.export.atomic import ExportError, Progress, atomic_output
from teleop.export.datasheet import DatasheetFacts, render_datasheet
from teleop.export.signing import SIGNATURE, load_private, sign
from teleop.export.verified import refuse_damaged
from teleop.labels import LABELS_FILE, read_labels
from teleop.recording.provenance import software
from teleop.session import SESSION_FILE, read_manifest, safe_id

FORMAT = "teleop-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATASHEET = "DATASHEET.md"
SUMS = "SHA256SUMS"
SESSIONS_DIR = "sessions"
RIGS_DIR = "rigs"
_CHUNK_BYTES = 1 << 20
# Calibration ids come from files; only plain names may become paths.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
STILL_NAMING_OPERATORS = (
    "the episode MCAP files (provenance metadata `operator`, `session_id`, `episode_id`; "
    "calibration metadata `<target>.operator`)",
    "labels.jsonl (`episode_id` holds the recorded session id, which ends in the operator id)",
    "the calibration records (`operator` who calibrated)",
)


@dataclass(frozen=True)
class BundleResult:
    """What :func:`export_bundle` wrote."""

    path: Path
    episodes: int
    files: int
    """Files in the bundle, SHA256SUMS (and SIGNATURE) included."""
    bytes: int
    """Bytes of all files in the bundle."""


@dataclass(frozen=True)
class _Item:
    """One file to put in the bundle: from a path, or bytes made here."""

    rel: str
    source: Path | None = None
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.source.stat().st_size  # type: ignore[union-attr]

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.source is not None
        return open(self.source, "rb")  # noqa: SIM115 - closed by the caller


class _HashingReader:
    """Reads through ``raw``, feeding every chunk to ``sha`` and ``on_bytes`` (one pass)."""

    def __init__(self, raw: IO[bytes], sha: Any, on_bytes: Callable[[int], None]):
        self._raw, self._sha, self._on_bytes = raw, sha, on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n and n > 0 else _CHUNK_BYTES)
        if data:
            self._sha.update(data)
            self._on_bytes(len(data))
        return data


class _Sink:
    """Writes files into a bundle directory or tar; returns each file's sha256."""

    def __init__(self, root: Path, tar: tarfile.TarFile | None, mtime: int):
        self._root, self._tar, self._mtime = root, tar, mtime

    def add(self, item: _Item, on_bytes: Callable[[int], None]) -> str:
        sha = hashlib.sha256()
        size = item.size
        with item.open() as raw:
            reader = _HashingReader(raw, sha, on_bytes)
            if self._tar is not None:
                info = tarfile.TarInfo(item.rel)
                info.size, info.mtime, info.mode = size, self._mtime, 0o644
                self._tar.addfile(info, reader)
            else:
                dest = self._root / item.rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb") as out:
                    while chunk := reader.read(_CHUNK_BYTES):
                        out.write(chunk)
        return sha.hexdigest()


def export_bundle(
    rows: Sequence[Mapping[str, Any]],
    data_root: Path,
    out: Path,
    *,
    pseudonymize: bool = False,
    progress: Progress | None = None,
    overwrite: bool = False,
    query: str | None = None,
    sign_with: Path | None = None,
) -> BundleResult:
    """Write the episodes of ``rows`` (from :func:`teleop.catalog.query`) as a bundle at
    ``out`` (a directory; a plain tar file when ``out`` ends in ``.tar``).

    ``progress(done_bytes, total_bytes, what)`` is called as bytes are copied; an exception
    raised from it stops the export and nothing is left under ``out``. ``query`` is recorded
    in the manifest and datasheet as the selection. With ``sign_with`` (a private key file
    from ``teleop keys new``), the bundle also gets a SIGNATURE over its SHA256SUMS.

    Raises:
        ExportError: nothing selected, a damaged episode, a missing calibration record or
            rig attachment, or ``out`` exists (without ``overwrite``).
    """
    data_root, out = Path(data_root), Path(out)
    key = load_private(sign_with) if sign_with is not None else None  # a bad key: fail first
    if not rows:
        raise ExportError("no episodes selected; check --where with `teleop episodes --where …`")
    rows = [dict(r) for r in rows]
    for r in rows:
        if not r.get("readable", 1):
            raise ExportError(
                f"{r['path']}: damaged ({r.get('read_error')}); run `teleop recover` on it or "
                'leave it out with --where "… AND readable = 1"'
            )
    refuse_damaged(Path(r["path"]) for r in rows)  # the catalog may be older than the files
    pseudonyms = _pseudonyms(rows) if pseudonymize else {}
    query = _shown_query(query, pseudonyms)
    session_names = _session_names(data_root, rows, pseudonyms)
    summaries = {r["episode_id"]: _provenance(Path(r["path"])) for r in rows}
    items, episode_rel = _plan(data_root, rows, session_names, pseudonyms)
    rig_items = _rig_items(rows)
    calibration_items = _calibration_items(data_root, rows)
    data_items = sorted([*items, *rig_items, *calibration_items], key=lambda i: i.rel)

    created = dt.datetime.now(dt.UTC)
    created_utc = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    total = sum(i.size for i in data_items)
    done, current = [0], [""]

    def on_bytes(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total, current[0])

    is_tar = out.suffix == ".tar"
    with atomic_output(out, directory=not is_tar, overwrite=overwrite) as tmp:
        with _open_sink(tmp, is_tar, int(created.timestamp())) as sink:
            sums: dict[str, str] = {}
            for item in data_items:
                current[0] = item.rel
                sums[item.rel] = sink.add(item, on_bytes)
            shown = [_shown_row(r, session_names, pseudonyms) for r in rows]
            reviewers = _reviewers(data_root, rows)
            episode_bytes = sum(int(r["bytes"]) for r in rows)
            datasheet = render_datasheet(
                DatasheetFacts(
                    episodes=shown,
                    reviewers=reviewers,
                    created_utc=created_utc,
                    software_version=software()["software_version"],
                    git_revision=software()["git_revision"],
                    query=query,
                    bundle_bytes=episode_bytes,
                    pseudonymized=pseudonymize,
                    calibration_records=len(calibration_items),
                    rig_files=len(rig_items),
                    still_naming_operators=STILL_NAMING_OPERATORS if pseudonymize else (),
                )
            ).encode("utf-8")
            manifest = _manifest(
                rows,
                shown,
                summaries,
                pseudonyms,
                episode_rel,
                sums,
                created_utc=created_utc,
                query=query,
                calibration=[i.rel for i in calibration_items],
                rigs=[i.rel for i in rig_items],
            )
            for item in (_Item(DATASHEET, data=datasheet), _Item(MANIFEST, data=manifest)):
                sums[item.rel] = sink.add(item, lambda n: None)
            sums_bytes = "".join(f"{sha}  {rel}\n" for rel, sha in sorted(sums.items()))
            sink.add(_Item(SUMS, data=sums_bytes.encode("utf-8")), lambda n: None)
            signature = sign(sums_bytes.encode("utf-8"), key) if key is not None else b""
            if signature:
                sink.add(_Item(SIGNATURE, data=signature), lambda n: None)
        if progress is not None:
            progress(total, total, "done")
        written = total + len(datasheet) + len(manifest) + len(sums_bytes) + len(signature)
    return BundleResult(out, len(rows), len(sums) + 1 + bool(signature), written)


@contextlib.contextmanager
def _open_sink(tmp: Path, is_tar: bool, mtime: int) -> Iterator[_Sink]:
    if not is_tar:
        yield _Sink(tmp, None, mtime)
        return
    # A plain tar (no compression): MCAP chunks are already zstd-compressed.
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        yield _Sink(tmp, tar, mtime)


# -- planning --------------------------------------------------------------------------------


def _pseudonyms(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Real operator id → ``operator-N``, numbered in order of first appearance."""
    out: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: (str(r["start_utc"]), str(r["episode_id"]))):
        op = str(r["operator"])
        out.setdefault(op, f"operator-{len(out) + 1}")
    return out


def _shown_query(query: str | None, pseudonyms: Mapping[str, str]) -> str | None:
    """The selection as recorded: quoted operator ids pseudonymized; withheld if an id
    still shows (e.g. inside a LIKE pattern)."""
    if not query or not pseudonyms:
        return query
    for real, pseudo in pseudonyms.items():
        for q in ("'", '"'):
            query = query.replace(f"{q}{real}{q}", f"{q}{pseudo}{q}")
    if any(real in query for real in pseudonyms):
        return "(withheld: the query names an operator)"
    return query


def _session_names(
    data_root: Path, rows: Sequence[Mapping[str, Any]], pseudonyms: dict[str, str]
) -> dict[str, str]:
    """Session id → its folder name in the bundle (the operator part replaced when
    pseudonymizing; session ids are ``<utc>_<rig>_<operator>[-n]``)."""
    names: dict[str, str] = {}
    for r in rows:
        session = str(r["session"])
        if session in names:
            continue
        if not pseudonyms:
            names[session] = session
            continue
        op = _session_operator(data_root / session) or str(r["operator"])
        pseudo = pseudonyms.get(op) or pseudonyms.setdefault(op, f"operator-{len(pseudonyms) + 1}")
        m = re.fullmatch(rf"(.*_){re.escape(safe_id(op))}(-\d+)?", session)
        names[session] = (
            f"{m.group(1)}{pseudo}{m.group(2) or ''}" if m else f"session-{len(names) + 1}"
        )
    return names


def _session_operator(session_dir: Path) -> str | None:
    try:
        return read_manifest(session_dir / SESSION_FILE).operator
    except DataRootError:
        return None


def _plan(
    data_root: Path,
    rows: Sequence[Mapping[str, Any]],
    session_names: Mapping[str, str],
    pseudonyms: Mapping[str, str],
) -> tuple[list[_Item], dict[str, str]]:
    """Session files to copy, and each episode's path in the bundle."""
    items: list[_Item] = []
    episode_rel: dict[str, str] = {}
    for session, name in session_names.items():
        session_dir = data_root / session
        base = f"{SESSIONS_DIR}/{name}"
        manifest_path = session_dir / SESSION_FILE
        if pseudonyms:
            items.append(
                _Item(
                    f"{base}/{SESSION_FILE}",
                    data=_pseudonymized_session(manifest_path, name, pseudonyms),
                )
            )
        else:
            items.append(_Item(f"{base}/{SESSION_FILE}", source=manifest_path))
        if (session_dir / LABELS_FILE).is_file():
            items.append(_Item(f"{base}/{LABELS_FILE}", source=session_dir / LABELS_FILE))
    for r in rows:
        rel = f"{SESSIONS_DIR}/{session_names[str(r['session'])]}/{r['file']}"
        episode_rel[r["episode_id"]] = rel
        items.append(_Item(rel, source=Path(r["path"])))
    return items, episode_rel


def _pseudonymized_session(path: Path, name: str, pseudonyms: Mapping[str, str]) -> bytes:
    try:
        manifest = read_manifest(path)
    except DataRootError as exc:
        raise ExportError(str(exc)) from None
    renamed = manifest.model_copy(
        update={"operator": pseudonyms.get(manifest.operator, "operator-?"), "session_id": name}
    )
    return (json.dumps(renamed.to_json(), indent=2) + "\n").encode("utf-8")


def _calibration_ids(row: Mapping[str, Any]) -> list[str]:
    text = str(row.get("calibration") or "")
    if text.startswith("none"):
        return []
    return [c.strip() for c in text.split(",") if c.strip()]


def _calibration_items(data_root: Path, rows: Sequence[Mapping[str, Any]]) -> list[_Item]:
    items: dict[str, _Item] = {}
    for r in rows:
        rig = str(r["rig_id"])
        for record_id in _calibration_ids(r):
            if not _SAFE_NAME.match(record_id) or not _SAFE_NAME.match(rig):
                raise ExportError(f"{r['path']}: calibration id {record_id!r} is not a plain name")
            path = data_root / CALIBRATION_DIR / rig / f"{record_id}.json"
            if not path.is_file():
                raise ExportError(
                    f"{path}: calibration record used by {r['episode_id']} is missing from the "
                    "data root; restore it (it is also attached to the episode file)"
                )
            rel = f"{CALIBRATION_DIR}/{rig}/{record_id}.json"
            items.setdefault(rel, _Item(rel, source=path))
    return list(items.values())


def _rig_items(rows: Sequence[Mapping[str, Any]]) -> list[_Item]:
    """One rig file per distinct rig_sha256, read from the episodes' ``rig.toml`` attachment."""
    items: dict[str, _Item] = {}
    seen: set[str] = set()
    for r in rows:
        sha = str(r["rig_sha256"] or "")
        if sha and sha in seen:
            continue
        seen.add(sha)
        path = Path(r["path"])
        try:
            data = read_attachment(path, "rig.toml")
        except KeyError:
            raise ExportError(
                f"{path}: no rig.toml attachment; the rig spec cannot be bundled"
            ) from None
        except EpisodeReadError as exc:
            raise ExportError(str(exc)) from None
        actual = hashlib.sha256(data).hexdigest()
        if sha and actual != sha:
            raise ExportError(
                f"{path}: attached rig.toml hashes to {actual[:12]}…, provenance says {sha[:12]}…"
            )
        rel = f"{RIGS_DIR}/{safe_id(str(r['rig_id']))}-{actual[:8]}.toml"
        items.setdefault(rel, _Item(rel, data=data))
    return list(items.values())


def _provenance(path: Path) -> dict[str, str]:
    try:
        return dict(summarize(path).metadata.get("provenance", {}))
    except EpisodeReadError as exc:
        raise ExportError(str(exc)) from None


def _reviewers(data_root: Path, rows: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    out: set[str] = set()
    for session in {str(r["session"]) for r in rows}:
        files = {str(r["file"]) for r in rows if r["session"] == session}
        out.update(
            e.reviewer for e in read_labels(data_root / session).events if e.episode in files
        )
    return frozenset(out)


# -- manifest --------------------------------------------------------------------------------


def _shown_row(
    row: Mapping[str, Any], session_names: Mapping[str, str], pseudonyms: Mapping[str, str]
) -> dict[str, Any]:
    """The row as the manifest and datasheet show it (operator ids pseudonymized if asked)."""
    shown = dict(row)
    if pseudonyms:
        session = session_names[str(row["session"])]
        shown["operator"] = pseudonyms[str(row["operator"])]
        shown["session"] = session
        shown["episode_id"] = f"{session}/{Path(str(row['file'])).stem}"
    return shown


def _manifest(
    rows: Sequence[Mapping[str, Any]],
    shown: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, dict[str, str]],
    pseudonyms: Mapping[str, str],
    episode_rel: Mapping[str, str],
    sums: Mapping[str, str],
    *,
    created_utc: str,
    query: str | None,
    calibration: list[str],
    rigs: list[str],
) -> bytes:
    episodes = []
    for r, s in zip(rows, shown, strict=True):
        prov = dict(provenance[r["episode_id"]])
        if pseudonyms:
            prov |= {"operator": s["operator"], "session_id": s["session"]}
            prov |= {"episode_id": s["episode_id"]}
        rel = episode_rel[r["episode_id"]]
        episodes.append(
            {
                "episode_id": s["episode_id"],
                "path": rel,
                "bytes": int(r["bytes"]),
                "sha256": sums[rel],
                "task": r["task"],
                "operator": s["operator"],
                "rig_id": r["rig_id"],
                "start_utc": r["start_utc"],
                "duration_s": r["duration_s"],
                "status": r["status"],
                "provenance": prov,
                "quality": {
                    "flags": [f for f in str(r["flags"] or "").split("; ") if f],
                    "rate_hz": r["rate_hz"],
                },
                "label": None
                if r["label"] is None
                else {
                    "label": r["label"],
                    "reviewer": r["label_reviewer"],
                    "time_utc": r["label_time"],
                    "failure_reason": r["failure_reason"],
                    "tags": [t for t in str(r["tags"] or "").split(",") if t],
                },
                "label_count": r["label_count"],
            }
        )
    info = software()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_utc": created_utc,
        "software": {"version": info["software_version"], "git_revision": info["git_revision"]},
        "query": {"where": query},
        "pseudonymized": bool(pseudonyms),
    }
    if pseudonyms:
        manifest["pseudonymization"] = {
            "replaced_in": [
                "manifest.json",
                "DATASHEET.md",
                "session folder names",
                "session.json",
            ],
            "still_named_in": list(STILL_NAMING_OPERATORS),
        }
    manifest |= {
        "episodes": episodes,
        "calibration": calibration,
        "rigs": rigs,
        "totals": {
            "episodes": len(rows),
            "sessions": len({r["session"] for r in rows}),
            "episode_bytes": sum(int(r["bytes"]) for r in rows),
            "duration_s": round(sum(float(r["duration_s"] or 0) for r in rows), 3),
            "labelled": sum(1 for r in rows if r["label"] is not None),
            "success": sum(1 for r in rows if r["label"] == "success"),
        },
    }
    return (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
