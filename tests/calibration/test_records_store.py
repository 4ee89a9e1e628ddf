"""Records are canonical, hashed, immutable files; the newest is active; a file altered or
broken on disk is refused with one line naming it."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

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
from calibration.store import (
    ACTIVATIONS_FILE,
    CalibrationStore,
    active_records,
    load_record,
    provenance_metadata,
)
from tests.calibration.conftest import SPEC, arm_record, camera_rec


def _writable(path: Path) -> None:
    os.chmod(path, 0o644)


def test_canonical_json_is_sorted_compact_utf8_and_stable():
    data = {"b": 1, "a": [1.5, "é"], "c": {"z": None, "y": 0.1}}
    out = canonical_json(data)
    assert out == '{"a":[1.5,"é"],"b":1,"c":{"y":0.1,"z":null}}'.encode()
    # What is read back hashes the same (floats round-trip exactly).
    assert canonical_json(json.loads(out)) == out
    rec = arm_record(SPEC, "left_leader", offsets=[0.1, -2.9, 3.0, 0, 0, 0, 1e-9])
    again = CalibrationRecord.model_validate(json.loads(rec.canonical_bytes()))
    assert again.sha256() == rec.sha256()


def test_save_load_roundtrip_and_file_layout(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    rec = arm_record(SPEC, "left_leader", created_utc="2025-03-04T05:06:07.000008Z")
    stored = store.save(rec)
    assert stored.path.parent == tmp_path / "calibration" / "sim-bimanual"
    assert stored.path.name == f"20250304T050607.000008Z-{rec.sha256()[:8]}.json"
    assert stored.id == stored.path.stem
    assert sha256_hex(stored.canonical_bytes) == stored.sha256 == rec.sha256()
    # The file itself is canonical JSON of id, record and sha256, read-only.
    envelope = json.loads(stored.path.read_bytes())
    assert set(envelope) == {"id", "record", "sha256"}
    assert stored.path.read_bytes() == canonical_json(envelope)
    assert not os.stat(stored.path).st_mode & 0o222
    loaded = load_record(stored.path)
    assert loaded.record == rec and loaded.canonical_bytes == stored.canonical_bytes
    assert list(tmp_path.rglob(".*")) == []  # no temp file left behind


def test_a_record_is_never_overwritten(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    rec = arm_record(SPEC, "left_leader")
    store.save(rec)
    with pytest.raises(CalibrationRecordError, match="already exists; records are never"):
        store.save(rec)


def test_the_record_written_last_is_active_whatever_its_date(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    new = store.save(arm_record(SPEC, "left_leader", created_utc="2025-05-01T00:00:00.000000Z"))
    # A station whose clock was behind: dated earlier, written later; it is the one in use.
    old = store.save(arm_record(SPEC, "left_leader", created_utc="2025-04-01T00:00:00.000000Z"))
    other = store.save(arm_record(SPEC, "left_follower"))
    active = store.active(SPEC.id)
    assert active["left_leader"].id == old.id != new.id
    assert active["left_follower"].id == other.id
    assert [r.id for r in store.records(SPEC.id)][:2] == [old.id, new.id]
    journal = (tmp_path / "calibration" / SPEC.id / ACTIVATIONS_FILE).read_text().splitlines()
    assert [json.loads(line)["record"] for line in journal] == [new.id, old.id, other.id]


def test_a_data_root_from_before_the_journal_keeps_its_newest_records(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    new = store.save(arm_record(SPEC, "left_leader", created_utc="2025-05-01T00:00:00.000000Z"))
    old = store.save(arm_record(SPEC, "left_leader", created_utc="2025-04-01T00:00:00.000000Z"))
    (tmp_path / "calibration" / SPEC.id / ACTIVATIONS_FILE).unlink()
    assert store.active(SPEC.id)["left_leader"].id == new.id != old.id
    store.freeze_active(SPEC.id)  # what an import does first: nothing changes
    assert store.active(SPEC.id)["left_leader"].id == new.id


def test_a_record_dated_in_the_future_is_refused_naming_the_skew(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    ahead = format_utc(utc_now() + dt.timedelta(days=2))
    with pytest.raises(CalibrationRecordError, match=r"48\.0 h ahead of this computer's clock"):
        store.save(arm_record(SPEC, "left_leader", created_utc=ahead))
    assert store.records(SPEC.id) == []


def test_one_altered_byte_is_refused_naming_the_file_and_the_fix(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    stored = store.save(arm_record(SPEC, "left_follower", offsets=[0.25] * 7))
    raw = bytearray(stored.path.read_bytes())
    at = raw.index(b'"offset_rad":0.25') + len('"offset_rad":0.2')
    raw[at] = ord("6")  # 0.25 -> 0.26: still valid JSON and a valid record
    _writable(stored.path)
    stored.path.write_bytes(bytes(raw))
    with pytest.raises(CalibrationIntegrityError) as err:
        store.active(SPEC.id)
    message = str(err.value)
    assert "\n" not in message
    assert str(stored.path) in message
    assert "altered" in message and "sha256" in message
    assert "teleop calibrate --rig sim-bimanual --arm left_follower" in message


def test_an_altered_sha256_or_id_is_refused_too(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    stored = store.save(arm_record(SPEC, "left_leader"))
    envelope = json.loads(stored.path.read_bytes())
    _writable(stored.path)
    envelope["sha256"] = "0" * 64
    stored.path.write_bytes(canonical_json(envelope))
    with pytest.raises(CalibrationIntegrityError, match="altered"):
        load_record(stored.path)
    envelope["sha256"] = stored.sha256
    envelope["id"] = "20200101T000000.000000Z-00000000"
    stored.path.write_bytes(canonical_json(envelope))
    with pytest.raises(CalibrationIntegrityError, match="id .* do not match"):
        load_record(stored.path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"id": "x", "record": {', "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "expected the keys id, record, sha256"),
        (b'{"id": "x", "sha256": "y"}', "expected the keys id, record, sha256"),
    ],
)
def test_a_malformed_file_is_one_clear_line(tmp_path: Path, content: bytes, expected: str):
    directory = tmp_path / "calibration" / "sim-bimanual"
    directory.mkdir(parents=True)
    path = directory / "20250101T000000.000000Z-deadbeef.json"
    path.write_bytes(content)
    with pytest.raises(CalibrationRecordError) as err:
        CalibrationStore(tmp_path).active("sim-bimanual")
    message = str(err.value)
    assert "\n" not in message and str(path) in message and expected in message
    assert "recalibrate with `teleop calibrate --rig sim-bimanual" in message


def test_a_hash_consistent_record_with_a_bad_field_is_named(tmp_path: Path):
    body = arm_record(SPEC, "left_leader").body()
    body["calibration"]["joints"][0]["direction"] = 2
    sha = sha256_hex(canonical_json(body))
    directory = tmp_path / "calibration" / "sim-bimanual"
    directory.mkdir(parents=True)
    path = directory / "20250101T000000.000000Z-00000000.json"
    path.write_bytes(canonical_json({"id": path.stem, "record": body, "sha256": sha}))
    with pytest.raises(
        CalibrationRecordError, match=r"field 'calibration\.arm\.joints\.0\.direction'"
    ):
        load_record(path)


def test_find_by_prefix_and_active_records_for_the_recorder(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    saved = [store.save(arm_record(SPEC, a.name)) for a in SPEC.arms]
    cam = store.save(camera_rec(SPEC, "left_wrist"))
    assert store.find(saved[1].id[:-4]).id == saved[1].id
    assert store.find(str(saved[2].path)).id == saved[2].id
    with pytest.raises(CalibrationMissingError, match="no calibration record 'nope'"):
        store.find("nope")
    records = active_records(tmp_path, SPEC, require_arms=True)
    assert [r.target for r in records] == [a.name for a in SPEC.arms] + ["left_wrist"]
    assert records[-1].id == cam.id
    meta = provenance_metadata(records)
    assert meta["left_leader.id"] == saved[0].id
    assert meta["left_leader.sha256"] == saved[0].sha256
    assert records[0].attachment_name == f"calibration/{saved[0].id}.json"


def test_active_records_names_a_missing_arm(tmp_path: Path):
    CalibrationStore(tmp_path).save(arm_record(SPEC, "left_leader"))
    assert [r.target for r in active_records(tmp_path, SPEC)] == ["left_leader"]
    with pytest.raises(CalibrationMissingError, match="arm right_leader .* --arm right_leader"):
        active_records(tmp_path, SPEC, require_arms=True)
