"""Bundles: export (directory and tar), datasheet, pseudonymization, verified import."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from teleop import catalog
from teleop.cli import main
from teleop.export.atomic import ExportError
from teleop.export.bundle import export_bundle
from teleop.export.bundle_import import import_bundle
from teleop.labels import append_label


@pytest.fixture(scope="module")
def labelled_root(recorded_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the recorded root with pick_place labelled: one success, one failure."""
    root = tmp_path_factory.mktemp("bundle") / "root"
    shutil.copytree(recorded_root, root)
    rows = catalog.query(root, "task = 'pick_place'")
    for row, label in zip(rows, ("success", "failure"), strict=True):
        append_label(
            root / row["session"],
            episode=row["file"],
            reviewer="qa1",
            label=label,
            failure_reason="missed grasp" if label == "failure" else None,
        )
    return root


@pytest.fixture(scope="module")
def bundle_dir(labelled_root: Path) -> Path:
    out = labelled_root.parent / "bundle"
    export_bundle(catalog.query(labelled_root), labelled_root, out, query=None)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_bundle_dir_checks_with_sha256sum_and_keeps_files_byte_for_byte(
    labelled_root: Path, bundle_dir: Path
) -> None:
    check = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"],
        cwd=bundle_dir,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    listed = {
        line.split("  ", 1)[1] for line in (bundle_dir / "SHA256SUMS").read_text().splitlines()
    }
    assert listed == _files(bundle_dir) - {"SHA256SUMS"}

    rows = catalog.query(labelled_root)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    by_id = {e["episode_id"]: e for e in manifest["episodes"]}
    assert set(by_id) == {r["episode_id"] for r in rows}
    for r in rows:
        entry = by_id[r["episode_id"]]
        copied = bundle_dir / entry["path"]
        assert copied.read_bytes() == Path(r["path"]).read_bytes()
        assert entry["sha256"] == _sha(Path(r["path"]))
        assert entry["label_count"] == r["label_count"]
        assert (entry["label"] or {}).get("label") == r["label"]
        assert entry["provenance"]["operator"] == r["operator"]
        session = labelled_root / r["session"]
        if (session / "labels.jsonl").exists():
            assert (copied.parent / "labels.jsonl").read_bytes() == (
                session / "labels.jsonl"
            ).read_bytes()
    assert manifest["totals"]["episodes"] == 3
    assert manifest["software"]["git_revision"]
    assert any(p.startswith("rigs/sim-bimanual-") for p in _files(bundle_dir))
    assert manifest["calibration"] and all(
        (bundle_dir / c).is_file() for c in manifest["calibration"]
    )


def test_datasheet_states_tasks_counts_and_success_rates(bundle_dir: Path) -> None:
    sheet = (bundle_dir / "DATASHEET.md").read_text()
    for section in ("Motivation", "Composition", "Collection process", "Uses", "Distribution"):
        assert f"## {section}" in sheet
    assert "| pick_place | 2 | 2 | 1 | 1 | 0 | 0 | 50% |" in sheet
    assert "| fold_towel | 1 | 0 | 0 | 0 | 0 | 1 | n/a |" in sheet
    assert "op7 (2 episodes), op9 (1 episode)" in sheet
    assert "TODO (lab lead): " in sheet
    assert "1 reviewer labelled 2 episodes" in sheet


def test_tar_bundle_via_cli_is_verified_and_pseudonymized(
    labelled_root: Path, bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.tar"
    where = "operator = 'op7' OR task = 'fold_towel'"
    argv = ["export", "bundle", "--where", where, "--out", str(out), "--pseudonymize"]
    assert main([*argv, "--data-dir", str(labelled_root), "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(out)

    with tarfile.open(out) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "x", filter="data")
    assert printed[-1] == f"verified: {len(names)} files, sha256 OK"
    assert names == sorted(names[:-3]) + ["DATASHEET.md", "manifest.json", "SHA256SUMS"]
    x = tmp_path / "x"
    assert (
        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=x, capture_output=True).returncode
        == 0
    )
    # Where promised: no real operator id in the documents, folder names or session.json.
    documents = [x / "manifest.json", x / "DATASHEET.md", *x.glob("sessions/*/session.json")]
    for doc in documents:
        text = doc.read_text()
        assert "op7" not in text and "op9" not in text, doc
    assert not any("op7" in n or "op9" in n for n in names)
    manifest = json.loads((x / "manifest.json").read_text())
    assert {e["operator"] for e in manifest["episodes"]} == {"operator-1", "operator-2"}
    assert "operator = 'operator-1'" in manifest["query"]["where"]
    # ...and where not: the MCAP files stay byte-for-byte, which the datasheet says.
    assert "This bundle is not anonymous" in (x / "DATASHEET.md").read_text()
    for e in manifest["episodes"]:
        original = bundle_dir / next(
            o["path"]
            for o in json.loads((bundle_dir / "manifest.json").read_text())["episodes"]
            if o["sha256"] == e["sha256"]
        )
        assert (x / e["path"]).read_bytes() == original.read_bytes()


def test_import_adds_the_same_episodes_with_their_labels(
    labelled_root: Path, bundle_dir: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    result = import_bundle(bundle_dir, fresh)
    assert result.episodes_in_catalog == 3

    def seen(root: Path) -> list[tuple]:
        cols = ("episode_id", "task", "operator", "label", "label_count", "bytes")
        return [tuple(r[c] for c in cols) for r in catalog.query(root)]

    assert seen(fresh) == seen(labelled_root)
    again = import_bundle(bundle_dir, fresh)  # identical files are skipped, not refused
    assert again.added == 0


def test_import_refuses_an_altered_byte_and_adds_nothing(bundle_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(bundle_dir, bad)
    victim = sorted(bad.glob("sessions/*/episode_0002.mcap"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(ExportError) as err:
        import_bundle(bad, fresh)
    assert victim.relative_to(bad).as_posix() in str(err.value)
    assert "\n" not in str(err.value)
    assert list(fresh.iterdir()) == []


@pytest.mark.parametrize("trap", ["dotdot", "symlink"])
def test_import_refuses_tar_members_escaping_the_data_root(
    bundle_dir: Path, tmp_path: Path, trap: str
) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for rel in sorted(_files(bundle_dir)):
            tar.add(bundle_dir / rel, arcname=rel)
        if trap == "dotdot":
            info = tarfile.TarInfo("../evil")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        else:
            info = tarfile.TarInfo("sessions/link")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(ExportError, match="evil" if trap == "dotdot" else "sessions/link"):
        import_bundle(evil, fresh)
    assert list(fresh.iterdir()) == []
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name", ["out", "out.tar"])
def test_interrupted_export_leaves_nothing_under_the_final_name(
    labelled_root: Path, tmp_path: Path, name: str
) -> None:
    def stop(done: int, total: int, what: str) -> None:
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_bundle(catalog.query(labelled_root), labelled_root, tmp_path / name, progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_export_of_an_empty_selection_exits_2_with_one_line(
    labelled_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "bundle", "--where", "task='nope'", "--out", str(tmp_path / "b")]
    assert main([*argv, "--data-dir", str(labelled_root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("teleop: error: ") and "no episodes selected" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()
