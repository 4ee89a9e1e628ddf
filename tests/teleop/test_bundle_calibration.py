"""A bundle's calibration records are checked by their own hashes and dates, and never take
over a station's active calibration: an operator activates one on purpose."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from calibration.records import CalibrationRecord, canonical_json, format_utc, sha256_hex, utc_now
from calibration.store import CalibrationStore
from teleop import catalog
from teleop.cli import main
from teleop.export.atomic import ExportError
from teleop.export.bundle import export_bundle
from teleop.export.bundle_import import import_bundle

RIG = "sim-bimanual"


@pytest.fixture()
def bundle(recorded_root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    export_bundle(catalog.query(recorded_root, "task = 'fold_towel'"), recorded_root, out)
    return out


def _resum(bundle: Path) -> None:
    """Recompute SHA256SUMS for every file, as someone covering their tracks would."""
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(bundle).as_posix()}"
        for p in sorted(bundle.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS"
    ]
    (bundle / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def _records(bundle: Path) -> list[Path]:
    return sorted(bundle.glob(f"calibration/{RIG}/*.json"))


def _writable(path: Path) -> None:
    path.chmod(0o644)


def test_an_edited_record_is_refused_even_with_the_sums_recomputed(bundle: Path, tmp_path: Path):
    record = next(r for r in _records(bundle) if '"joints"' in r.read_text())  # an arm's
    _writable(record)
    envelope = json.loads(record.read_text())
    joint = envelope["record"]["calibration"]["joints"][0]
    joint["offset_rad"] += 0.01  # still a valid record; its stored sha256 is left as it was
    record.write_bytes(canonical_json(envelope))
    _resum(bundle)
    station = tmp_path / "station"
    station.mkdir()
    with pytest.raises(ExportError, match=r"altered after it was written.*nothing was imported"):
        import_bundle(bundle, station)
    assert list(station.iterdir()) == []


def _re_dated(bundle: Path, record: Path, created_utc: str) -> Path:
    """A copy of a bundle's record made out as if calibrated at ``created_utc``, with a
    consistent sha256 and id, and the bundle's sums recomputed."""
    envelope = json.loads(record.read_text())
    body = dict(envelope["record"], created_utc=created_utc)
    new = CalibrationRecord.model_validate(body)
    raw = canonical_json(
        {"id": new.record_id(), "record": new.body(), "sha256": sha256_hex(new.canonical_bytes())}
    )
    path = record.with_name(f"{new.record_id()}.json")
    path.write_bytes(raw)
    manifest = bundle / "manifest.json"
    _writable(manifest)
    _resum(bundle)
    return path


def test_a_newer_imported_record_does_not_become_active(
    recorded_root: Path, bundle: Path, tmp_path: Path
):
    station = tmp_path / "station"
    shutil.copytree(recorded_root, station)
    store = CalibrationStore(station)
    before = {t: r.id for t, r in store.active(RIG).items()}
    newer = _re_dated(bundle, _records(bundle)[0], format_utc(utc_now()))
    import_bundle(bundle, station)
    assert (station / "calibration" / RIG / newer.name).is_file()  # stored
    assert {t: r.id for t, r in store.active(RIG).items()} == before  # but not in use
    # The operator decides: `teleop calibration activate` makes it the active one.
    (target,) = [r.target for r in store.records(RIG) if r.id == newer.stem]
    assert main(["calibration", "activate", newer.stem, "--data-dir", str(station)]) == 0
    assert store.active(RIG)[target].id == newer.stem


def test_a_record_dated_in_the_future_is_refused_on_import(bundle: Path, tmp_path: Path):
    ahead = format_utc(utc_now().replace(year=utc_now().year + 1))
    _re_dated(bundle, _records(bundle)[0], ahead)
    station = tmp_path / "station"
    station.mkdir()
    with pytest.raises(ExportError, match=r"ahead of this computer's clock.*nothing was imported"):
        import_bundle(bundle, station)
    assert not (station / "calibration").exists()
