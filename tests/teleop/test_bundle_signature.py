"""Signed bundles, and episode hashes that must agree everywhere a bundle states them.

Checksums catch damage; a bundle whose files and SHA256SUMS were changed together passes
them. These tests make such bundles and check that a signature, or the sha256 recorded in
manifest.json and session.json, refuses them, with nothing written to the station.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from teleop import catalog
from teleop.cli import main
from teleop.export.bundle import export_bundle
from teleop.export.signing import load_private


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` → its sha256 (nothing written means this is unchanged)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _resum(bundle: Path) -> None:
    """Recompute SHA256SUMS after editing files, as a tamperer would."""
    lines = []
    for p in sorted(bundle.rglob("*")):
        rel = p.relative_to(bundle).as_posix()
        if p.is_file() and rel not in ("SHA256SUMS", "SIGNATURE"):
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}\n")
    (bundle / "SHA256SUMS").write_text("".join(lines))


def _refused(argv: list[str], station: Path, capsys) -> str:
    station.mkdir(exist_ok=True)
    before = _tree(station)
    assert main([*argv, "--data-dir", str(station), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("teleop: error: "), err
    assert _tree(station) == before
    return err[0]


@pytest.fixture()
def lab_key(tmp_path: Path, capsys) -> Path:
    key = tmp_path / "keys" / "lab.key"
    key.parent.mkdir()
    assert main(["keys", "new", str(key)]) == 0
    capsys.readouterr()
    return key


@pytest.fixture()
def signed(recorded_root: Path, tmp_path: Path, lab_key: Path, capsys) -> Path:
    out = tmp_path / "signed"
    argv = ["export", "bundle", "--where", "task = 'fold_towel'", "--out", str(out)]
    assert main([*argv, "--sign", str(lab_key), "--data-dir", str(recorded_root), "--quiet"]) == 0
    assert "signed: key" in capsys.readouterr().out
    return out


def test_keys_new_writes_a_secret_private_key_and_never_overwrites(lab_key: Path, capsys):
    assert lab_key.stat().st_mode & 0o777 == 0o600
    assert lab_key.with_suffix(".pub").is_file()
    private = lab_key.read_bytes()
    assert main(["keys", "new", str(lab_key)]) == 2
    assert "exists" in capsys.readouterr().err
    assert lab_key.read_bytes() == private


def test_a_signed_bundle_imports_where_its_key_is_trusted(
    signed: Path, lab_key: Path, tmp_path: Path, capsys
):
    station = tmp_path / "station"
    station.mkdir()
    assert (
        main(["keys", "trust", str(lab_key.with_suffix(".pub")), "--data-dir", str(station)]) == 0
    )
    argv = ["import", str(signed), "--require-signature", "--data-dir", str(station), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(a trusted key)" in out
    assert catalog.query(station, "task = 'fold_towel'")


def test_openssl_verifies_the_signature(signed: Path, lab_key: Path, tmp_path: Path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    raw = base64.b64decode(json.loads((signed / "SIGNATURE").read_text())["signature"])
    sig = tmp_path / "sig.bin"
    sig.write_bytes(raw)
    pub = str(lab_key.with_suffix(".pub"))
    done = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin",
         "-in", str(signed / "SHA256SUMS"), "-sigfile", str(sig)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and "Verified Successfully" in done.stdout, done.stdout


def test_an_unsigned_bundle_is_refused_when_a_signature_is_required(
    recorded_root: Path, tmp_path: Path, capsys
):
    out = tmp_path / "unsigned"
    export_bundle(catalog.query(recorded_root, "task = 'fold_towel'"), recorded_root, out)
    line = _refused(["import", str(out), "--require-signature"], tmp_path / "station", capsys)
    assert "not signed" in line and "--sign" in line


def test_a_bundle_signed_by_an_unknown_key_is_refused_when_required(
    signed: Path, tmp_path: Path, capsys
):
    line = _refused(["import", str(signed), "--require-signature"], tmp_path / "station", capsys)
    assert "does not trust" in line and "teleop keys trust" in line


def test_files_and_sums_changed_together_break_the_signature(
    signed: Path, lab_key: Path, tmp_path: Path, capsys
):
    datasheet = signed / "DATASHEET.md"
    datasheet.write_text(datasheet.read_text() + "\nAll episodes reviewed twice.\n")
    _resum(signed)
    # Refused even without --require-signature: a signature that does not match is never OK.
    line = _refused(["import", str(signed)], tmp_path / "station", capsys)
    assert "SIGNATURE does not match SHA256SUMS" in line


def test_a_bundle_re_signed_by_another_key_is_refused_when_required(
    signed: Path, lab_key: Path, tmp_path: Path, capsys
):
    from teleop.export.signing import sign

    station = tmp_path / "station"
    station.mkdir()
    assert (
        main(["keys", "trust", str(lab_key.with_suffix(".pub")), "--data-dir", str(station)]) == 0
    )
    other = tmp_path / "other.key"
    assert main(["keys", "new", str(other)]) == 0
    capsys.readouterr()
    (signed / "DATASHEET.md").write_text("forged\n")
    _resum(signed)
    (signed / "SIGNATURE").write_bytes(
        sign((signed / "SHA256SUMS").read_bytes(), load_private(other))
    )
    line = _refused(["import", str(signed), "--require-signature"], station, capsys)
    assert "does not trust" in line


def test_a_wrong_signing_key_file_is_one_line_and_writes_nothing(
    recorded_root: Path, tmp_path: Path, capsys
):
    bad = tmp_path / "lab.key"
    bad.write_text("not a key\n")
    out = tmp_path / "b"
    argv = ["export", "bundle", "--out", str(out), "--sign", str(bad)]
    assert main([*argv, "--data-dir", str(recorded_root), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lab.key" in err[0] and "teleop keys new" in err[0], err
    assert not out.exists()


def _flip_episode(bundle: Path) -> Path:
    (episode,) = bundle.glob("sessions/*/episode_*.mcap")
    data = bytearray(episode.read_bytes())
    data[len(data) // 2] ^= 0x01
    episode.write_bytes(bytes(data))
    return episode


@pytest.fixture()
def unsigned(recorded_root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    export_bundle(catalog.query(recorded_root, "task = 'fold_towel'"), recorded_root, out)
    return out


def test_an_episode_changed_with_its_sums_disagrees_with_the_manifest(
    unsigned: Path, tmp_path: Path, capsys
):
    episode = _flip_episode(unsigned)
    _resum(unsigned)
    line = _refused(["import", str(unsigned)], tmp_path / "station", capsys)
    assert episode.name in line and "manifest.json" in line


def _rehash_everywhere(bundle: Path, episode: Path) -> None:
    """Make manifest.json and the bundle's session.json agree with the altered episode."""
    sha = hashlib.sha256(episode.read_bytes()).hexdigest()
    for path in (bundle / "manifest.json", episode.parent / "session.json"):
        doc = json.loads(path.read_text())
        for e in doc["episodes"]:
            if e.get("sha256"):
                e["sha256"] = sha
        path.write_text(json.dumps(doc, indent=2) + "\n")
    _resum(bundle)


def test_an_episode_changed_with_its_sums_and_manifest_disagrees_with_session_json(
    unsigned: Path, tmp_path: Path, capsys
):
    episode = _flip_episode(unsigned)
    sha = hashlib.sha256(episode.read_bytes()).hexdigest()
    doc = json.loads((unsigned / "manifest.json").read_text())
    doc["episodes"][0]["sha256"] = sha
    (unsigned / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n")
    _resum(unsigned)
    line = _refused(["import", str(unsigned)], tmp_path / "station", capsys)
    assert episode.name in line and "session.json" in line


def test_an_episode_the_station_knows_must_match_what_it_recorded(
    recorded_root: Path, unsigned: Path, tmp_path: Path, capsys
):
    station = tmp_path / "station"
    station.mkdir()
    assert main(["import", str(unsigned), "--data-dir", str(station), "--quiet"]) == 0
    (session,) = [p for p in station.iterdir() if (p / "session.json").is_file()]
    (known,) = session.glob("episode_*.mcap")
    known.unlink()  # freed from the station's disk; its session.json still records its sha256
    episode = _flip_episode(unsigned)
    _rehash_everywhere(unsigned, episode)
    capsys.readouterr()
    line = _refused(["import", str(unsigned)], station, capsys)
    assert episode.name in line and str(session / "session.json") in line
