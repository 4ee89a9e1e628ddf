"""Session folders and their manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rigs.durable import write_json_atomic
from teleop.errors import DataRootError
from teleop.session import SESSION_FILE, Session, resolve_data_root
from teleop.session_manifest import EpisodeEntry


def _new(root: Path) -> Session:
    return Session.create(
        root, operator="op 7", task="fold", rig_id="sim-bimanual", rig_sha256="ab", started_utc="t"
    )


def test_create_writes_manifest_and_numbers_episodes(tmp_path: Path):
    s = _new(tmp_path)
    assert s.root.parent == tmp_path and "op-7" in s.id
    data = json.loads((s.root / SESSION_FILE).read_text())
    assert data["operator"] == "op 7" and data["episodes"] == []
    assert s.next_episode() == (1, s.root / "episode_0001.mcap")
    s.add_episode(EpisodeEntry(index=1, file="episode_0001.mcap", status="kept"))
    s.add_episode(EpisodeEntry(index=2, file="episode_0002.mcap", status="recorded"))
    assert s.next_episode()[0] == 3
    assert [e["index"] for e in json.loads((s.root / SESSION_FILE).read_text())["episodes"]] == [
        1,
        2,
    ]


def test_two_sessions_in_the_same_second_get_distinct_ids(tmp_path: Path):
    assert _new(tmp_path).root != _new(tmp_path).root


def test_atomic_write_leaves_no_temp_file(tmp_path: Path):
    f = tmp_path / "x.json"
    write_json_atomic(f, {"a": 1})
    write_json_atomic(f, {"a": 2})
    assert json.loads(f.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_unwritable_data_root_is_a_clear_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataRootError, match="cannot create it"):
        _new(blocker / "sub")


def test_data_root_resolution(monkeypatch):
    monkeypatch.delenv("TELEOP_DATA_DIR", raising=False)
    assert resolve_data_root(None) == Path("sessions")
    monkeypatch.setenv("TELEOP_DATA_DIR", "/data")
    assert resolve_data_root(None) == Path("/data")
    assert resolve_data_root("/x") == Path("/x")


def test_reopened_manifest_keeps_typed_entries_and_fields_it_does_not_know(tmp_path: Path):
    from teleop.recording.quality import Quality

    s = _new(tmp_path)
    s.add_episode(
        EpisodeEntry(
            index=1, file="episode_0001.mcap", status="kept", quality=Quality(flags=["idle: x"])
        )
    )
    data = json.loads((s.root / SESSION_FILE).read_text())
    data["written_by_a_newer_version"] = {"k": 1}
    data["episodes"][0]["reviewed"] = True
    (s.root / SESSION_FILE).write_text(json.dumps(data))

    again = Session.open(s.root)
    assert again.entry(1).flags == ["idle: x"] and again.entry(1).status == "kept"
    again.set_status(1, "discarded")
    data = json.loads((s.root / SESSION_FILE).read_text())
    assert data["written_by_a_newer_version"] == {"k": 1}
    assert data["episodes"][0]["reviewed"] is True
    assert data["episodes"][0]["status"] == "discarded"
    assert data["closed_utc"] is None and "error" not in data["episodes"][0]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["episodes"][0].update(status="maybe"), r"field 'episodes\[0\]\.status'"),
        (lambda d: d["episodes"][0].pop("file"), r"field 'episodes\[0\]\.file'"),
        (lambda d: d.update(format="other/2"), "not a teleop session manifest"),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_the_field(tmp_path: Path, change, expected):
    s = _new(tmp_path)
    s.add_episode(EpisodeEntry(index=1, file="episode_0001.mcap", status="kept"))
    data = json.loads((s.root / SESSION_FILE).read_text())
    change(data)
    (s.root / SESSION_FILE).write_text(json.dumps(data))
    with pytest.raises(DataRootError, match=expected) as err:
        Session.open(s.root)
    assert "\n" not in str(err.value) and SESSION_FILE in str(err.value)
