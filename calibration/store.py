"""Where calibration records live: ``<data_root>/calibration/<rig-id>/<utc>-<sha8>.json``.

A record file is the canonical JSON of ``{"id", "record", "sha256"}``; ``sha256`` is over the
canonical JSON of ``record`` (the body). Files are written once (temp file, fsync, hard link
to the final name, which fails rather than overwrite) and made read-only; a new calibration
is a new file.

Which record of an arm or camera is active is written down, not inferred from dates: each rig
folder has an append-only ``active.jsonl``, one line per activation (target, record id, when,
how). A fresh calibration activates its record as it is saved; a record brought in by a
bundle import is stored but not activated (``teleop calibration activate ID`` does that, on
purpose). The last line per target wins, so the record written last is active even if another
carries a later date (a station whose clock was wrong). A data root from before the journal
counts the newest record of each target, until its first journal line. A record dated in the
future (more than ``FUTURE_TOLERANCE_S``) is refused when saved or imported.

Loading verifies everything: a file that is not JSON, lacks a field or whose content no
longer hashes to its ``sha256`` is refused with one line naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from calibration.records import (
    CalibrationIntegrityError,
    CalibrationMissingError,
    CalibrationRecord,
    CalibrationRecordError,
    canonical_json,
    format_utc,
    sha256_hex,
    utc_now,
)
from rigs.durable import fsync_dir, publish_new
from rigs.spec import RigSpec

CALIBRATION_DIR = "calibration"
ACTIVATIONS_FILE = "active.jsonl"
FUTURE_TOLERANCE_S = 300.0  # clocks of two lab machines may differ this much
_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}$")


def recalibrate_command(rig_id: str, kind: str | None = None, target: str | None = None) -> str:
    """The command that makes a new record for ``target`` (an arm, or a camera)."""
    if target is None:
        return f"teleop calibrate --rig {rig_id} --all"
    flag = "--camera" if kind == "camera" else "--arm"
    return f"teleop calibrate --rig {rig_id} {flag} {target}"


@dataclass(frozen=True)
class StoredRecord:
    """A verified record on disk.

    ``canonical_bytes`` are the canonical JSON of the record body; their sha256 is
    ``sha256``. Attach them to an episode as they are.
    """

    id: str
    sha256: str
    path: Path
    record: CalibrationRecord
    canonical_bytes: bytes

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def target(self) -> str:
        """The arm or camera the record is for."""
        return self.record.target

    @property
    def attachment_name(self) -> str:
        """A name for the record as an MCAP attachment."""
        return f"calibration/{self.id}.json"


def _first_validation_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field '{loc}': {msg}{more}"


def _hint(data: Any) -> tuple[str | None, str | None]:
    """Kind and target named in an unverified body, only to word the advice."""
    try:
        cal = data["calibration"]
        kind = cal.get("kind")
        return kind, cal.get("camera" if kind == "camera" else "arm")
    except (TypeError, KeyError, AttributeError):
        return None, None


def load_record(path: str | Path, *, rig_id: str | None = None) -> StoredRecord:
    """Read and verify one record file.

    Raises :class:`CalibrationIntegrityError` if the content does not hash to the stored
    sha256 (or the id does not match it) and :class:`CalibrationRecordError` for anything
    else that makes the file unusable.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CalibrationRecordError(
            f"calibration record {path}: cannot read it ({exc.strerror})"
        ) from None
    return record_from_bytes(raw, path, rig_id=rig_id)


def record_from_bytes(raw: bytes, path: Path, *, rig_id: str | None = None) -> StoredRecord:
    """Verify the bytes of a record file that is (or is to be) at ``path``; see load_record."""
    rig = rig_id or path.parent.name
    fix = f"move it out of {path.parent} and recalibrate with `{recalibrate_command(rig)}`"
    try:
        envelope = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CalibrationRecordError(f"calibration record {path}: not UTF-8 text; {fix}") from None
    except json.JSONDecodeError as exc:
        raise CalibrationRecordError(
            f"calibration record {path}: not valid JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}); {fix}"
        ) from None
    if not isinstance(envelope, dict) or set(envelope) != {"id", "record", "sha256"}:
        found = sorted(envelope) if isinstance(envelope, dict) else type(envelope).__name__
        raise CalibrationRecordError(
            f"calibration record {path}: expected the keys id, record, sha256, found {found}; {fix}"
        )
    body, stored_sha, stored_id = envelope["record"], envelope["sha256"], envelope["id"]
    kind, target = _hint(body)
    fix = (
        f"move it out of {path.parent} and recalibrate with "
        f"`{recalibrate_command(rig, kind, target)}`"
    )
    try:
        body_bytes = canonical_json(body)
    except ValueError as exc:
        raise CalibrationRecordError(f"calibration record {path}: {exc}; {fix}") from None
    actual = sha256_hex(body_bytes)
    if not isinstance(stored_sha, str) or stored_sha != actual:
        raise CalibrationIntegrityError(
            f"calibration record {path} was altered after it was written: its sha256 says "
            f"{str(stored_sha)[:16]}…, its content hashes to {actual[:16]}…; {fix}"
        )
    try:
        record = CalibrationRecord.model_validate(body)
    except ValidationError as exc:
        raise CalibrationRecordError(
            f"calibration record {path}: {_first_validation_error(exc)}; {fix}"
        ) from None
    expected_id = record.record_id()
    if stored_id != expected_id or path.stem != expected_id:
        raise CalibrationIntegrityError(
            f"calibration record {path}: id {stored_id!r} and file name do not match its "
            f"content (expected {expected_id}); {fix}"
        )
    if rig_id is not None and record.rig_id != rig_id:
        raise CalibrationRecordError(
            f"calibration record {path} is for rig {record.rig_id!r}, not {rig_id!r}; {fix}"
        )
    return StoredRecord(expected_id, actual, path, record, body_bytes)


class CalibrationStore:
    """The calibration records under one data root."""

    def __init__(self, data_root: str | Path):
        self.data_root = Path(data_root)

    @property
    def root(self) -> Path:
        return self.data_root / CALIBRATION_DIR

    def rig_dir(self, rig_id: str) -> Path:
        return self.root / rig_id

    # -- writing ------------------------------------------------------------------------------
    def save(self, record: CalibrationRecord) -> StoredRecord:
        """Store a new record (never overwriting one), make it its target's active record,
        and return it as stored.

        Raises:
            CalibrationRecordError: the record is dated in the future (this computer's clock).
        """
        refuse_future(record, "calibration record")
        self.freeze_active(record.rig_id)  # before the new file: only it changes what is active
        stored = self._write(record)
        self._append_activation(record.rig_id, stored.target, stored.id, "calibrated")
        return stored

    def activate(self, stored: StoredRecord, how: str) -> None:
        """Append a journal line making ``stored`` its target's active record."""
        rig_id = stored.record.rig_id
        self.freeze_active(rig_id)
        self._append_activation(rig_id, stored.target, stored.id, how)

    def freeze_active(self, rig_id: str) -> None:
        """Write down the records active by the old rule (newest of each target) before the
        first journal line, so adding records (an import) cannot change which are active."""
        journal = self.rig_dir(rig_id) / ACTIVATIONS_FILE
        if journal.exists():
            return
        self.rig_dir(rig_id).mkdir(parents=True, exist_ok=True)
        for target, r in self._newest(rig_id).items():
            self._append_activation(rig_id, target, r.id, "in use before the journal")
        journal.touch()

    def _append_activation(self, rig_id: str, target: str, record_id: str, how: str) -> None:
        line = json.dumps(
            {
                "target": target,
                "record": record_id,
                "activated_utc": format_utc(utc_now()),
                "how": how,
            },
            sort_keys=True,
        )
        path = self.rig_dir(rig_id) / ACTIVATIONS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, record: CalibrationRecord) -> StoredRecord:
        directory = self.rig_dir(record.rig_id)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CalibrationRecordError(
                f"calibration directory {directory}: cannot create it ({exc.strerror}); "
                "pass --data-dir"
            ) from None
        body = record.canonical_bytes()
        sha = sha256_hex(body)
        record_id = record.record_id()
        envelope = canonical_json({"id": record_id, "record": record.body(), "sha256": sha})
        final = directory / f"{record_id}.json"
        tmp = directory / f".{record_id}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(envelope)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)  # immutable by intent: a new calibration is a new file
            publish_new(tmp, final)
        except FileExistsError:
            raise CalibrationRecordError(
                f"calibration record {final} already exists; records are never overwritten"
            ) from None
        except OSError as exc:
            raise CalibrationRecordError(
                f"calibration record {final}: cannot write it ({exc.strerror})"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        fsync_dir(directory)
        return StoredRecord(record_id, sha, final, record, body)

    # -- reading ------------------------------------------------------------------------------
    def rig_ids(self) -> list[str]:
        """Rigs that have a calibration directory."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def paths(self, rig_id: str) -> list[Path]:
        directory = self.rig_dir(rig_id)
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))

    def records(self, rig_id: str) -> list[StoredRecord]:
        """Every record of a rig, oldest first; any unusable file raises."""
        out = [load_record(p, rig_id=rig_id) for p in self.paths(rig_id)]
        return sorted(out, key=lambda r: (r.record.created_utc, r.id))

    def active(self, rig_id: str) -> dict[str, StoredRecord]:
        """Per arm or camera name: its active record (the journal's last line for it)."""
        journal = self.rig_dir(rig_id) / ACTIVATIONS_FILE
        if not journal.exists():
            return self._newest(rig_id)
        by_id = {r.id: r for r in self.records(rig_id)}
        active: dict[str, StoredRecord] = {}
        for number, line in enumerate(journal.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
                target, record_id = str(entry["target"]), str(entry["record"])
            except (ValueError, KeyError, TypeError):
                raise CalibrationRecordError(
                    f"{journal}: line {number} is not an activation; restore the file from a "
                    "backup or remove the line"
                ) from None
            r = by_id.get(record_id)
            if r is None:
                raise CalibrationMissingError(
                    f"{journal}: line {number} activates record {record_id}, which is not in "
                    f"{journal.parent}; restore it or `teleop calibration activate` another"
                )
            active[target] = r
        return active

    def _newest(self, rig_id: str) -> dict[str, StoredRecord]:
        newest: dict[str, StoredRecord] = {}
        for r in self.records(rig_id):
            newest[r.target] = r  # oldest first, so the newest wins
        return newest

    def find(self, ref: str, rig_id: str | None = None) -> StoredRecord:
        """A record by path, id or unique id prefix (searched in ``rig_id``, or every rig)."""
        path = Path(ref)
        if path.suffix == ".json" and path.is_file():
            return load_record(path)
        rigs = [rig_id] if rig_id else self.rig_ids()
        matches = [p for r in rigs for p in self.paths(r) if p.stem.startswith(ref)]
        if not matches:
            raise CalibrationMissingError(
                f"no calibration record {ref!r} under {self.root}; `teleop calibration list` "
                "shows the ids"
            )
        if len(matches) > 1:
            names = ", ".join(p.stem for p in matches[:4])
            raise CalibrationMissingError(
                f"calibration record {ref!r} is ambiguous ({names}…); give more of the id"
            )
        return load_record(matches[0])


def refuse_future(record: CalibrationRecord, what: str) -> None:
    """Refuse a record dated later than now (beyond ``FUTURE_TOLERANCE_S``): a wrong clock.

    Raises:
        CalibrationRecordError: naming the record's date, this computer's and the skew.
    """
    ahead_s = (record.created - utc_now()).total_seconds()
    if ahead_s > FUTURE_TOLERANCE_S:
        raise CalibrationRecordError(
            f"{what} {record.record_id()} is dated {record.created_utc}, {ahead_s / 3600:.1f} h "
            f"ahead of this computer's clock ({format_utc(utc_now())}): fix the clock of the machine that "
            "made it (or this one) and calibrate again"
        )


def active_records(
    data_root: str | Path, spec: RigSpec, *, require_arms: bool = False
) -> list[StoredRecord]:
    """The active records of a rig's arms and cameras, in rig order (arms, then cameras).

    Every record file of the rig is verified (an altered or malformed one raises). Arms or
    cameras without a record are left out, unless ``require_arms``: then a missing arm raises
    :class:`CalibrationMissingError` naming it and the command that calibrates it.
    """
    active = CalibrationStore(data_root).active(spec.id)
    out: list[StoredRecord] = []
    for arm in spec.arms:
        r = active.get(arm.name)
        if r is not None and r.kind == "arm":
            out.append(r)
        elif require_arms:
            raise CalibrationMissingError(
                f"arm {arm.name} of rig {spec.id} has no calibration record under "
                f"{Path(data_root) / CALIBRATION_DIR / spec.id}; run "
                f"`{recalibrate_command(spec.id, 'arm', arm.name)}`"
            )
    for cam in spec.cameras:
        r = active.get(cam.name)
        if r is not None and r.kind == "camera":
            out.append(r)
    return out


def provenance_metadata(records: Iterable[StoredRecord]) -> dict[str, str]:
    """Episode metadata naming each record: ``<target>.id``, ``.sha256``, ``.created_utc``."""
    meta: dict[str, str] = {}
    for r in records:
        meta[f"{r.target}.id"] = r.id
        meta[f"{r.target}.sha256"] = r.sha256
        meta[f"{r.target}.created_utc"] = r.record.created_utc
        meta[f"{r.target}.operator"] = r.record.operator
    return meta
