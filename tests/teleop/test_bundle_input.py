"""Bad bundle files: one line naming what is wrong, nothing added to the station."""

from __future__ import annotations

import gzip
import shutil
import tarfile
from pathlib import Path

import pytest

from teleop import catalog
from teleop.cli import main
from teleop.export.bundle import export_bundle


@pytest.fixture()
def tar_bundle(recorded_root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "b.tar"
    export_bundle(catalog.query(recorded_root, "task = 'fold_towel'"), recorded_root, out)
    return out


def _import(bundle: Path, station: Path, capsys) -> str:
    station.mkdir(exist_ok=True)
    assert main(["import", str(bundle), "--data-dir", str(station)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("teleop: error: "), err
    assert list(station.iterdir()) == []
    return err[0]


def test_a_truncated_tar_is_named_as_truncated(tar_bundle: Path, tmp_path: Path, capsys):
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar_bundle.read_bytes()[: tar_bundle.stat().st_size // 2])
    assert "cut.tar" in _import(cut, tmp_path / "station", capsys)


def test_a_gzip_file_named_tar_is_refused(tar_bundle: Path, tmp_path: Path, capsys):
    gz = tmp_path / "z.tar"
    gz.write_bytes(gzip.compress(tar_bundle.read_bytes()))
    assert "not a complete, uncompressed tar bundle" in _import(gz, tmp_path / "station", capsys)


def test_a_member_declaring_more_bytes_than_the_file_holds(tmp_path: Path, capsys):
    bad = tmp_path / "big.tar"
    info = tarfile.TarInfo("SHA256SUMS")
    info.size = 8 << 30  # 8 GiB declared, 1 KiB there
    bad.write_bytes(info.tobuf(tarfile.GNU_FORMAT) + b"x" * 1024)
    line = _import(bad, tmp_path / "station", capsys)
    assert "big.tar" in line and ("truncated" in line or "not a complete" in line)


def test_a_session_folder_that_is_not_a_session_id_is_refused(
    recorded_root: Path, tmp_path: Path, capsys
):
    out = tmp_path / "dir"
    export_bundle(catalog.query(recorded_root, "task = 'fold_towel'"), recorded_root, out)
    (session,) = (out / "sessions").iterdir()
    session.rename(session.with_name("calibration"))
    assert "sessions/calibration/" in _import(out, tmp_path / "station", capsys)


def test_a_repaired_episode_travels_in_a_bundle(recorded_root: Path, tmp_path: Path):
    root = tmp_path / "root"
    shutil.copytree(recorded_root, root)
    (row,) = catalog.query(root, "task = 'fold_towel'")
    episode = Path(row["path"])
    copy = episode.with_name("episode_0001.repaired.mcap")
    shutil.copyfile(episode, copy)
    from teleop.session import Session

    Session.open(episode.parent).register_repaired(episode, copy)
    out = tmp_path / "b"
    export_bundle(catalog.query(root, "task = 'fold_towel'"), root, out)
    station = tmp_path / "station"
    station.mkdir()
    assert main(["import", str(out), "--data-dir", str(station)]) == 0
    (listed,) = catalog.query(station, "task = 'fold_towel'")
    assert listed["file"] == "episode_0001.repaired.mcap"
