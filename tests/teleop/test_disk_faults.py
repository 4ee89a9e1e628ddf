"""A full disk and a failing write: refuse or stop cleanly, keep what was recorded readable."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from teleop.cli import main
from teleop.episode.reader import summarize
from teleop.episode.recover import recover


def _record_args(data: Path, *extra: str) -> list[str]:
    return ["record", "--rig", "sim-bimanual", "--operator", "op", "--task", "t",
            "--data-dir", str(data), "--quiet", *extra]  # fmt: skip


def test_refuses_to_start_without_room(tmp_path, capsys):
    free_gb = shutil.disk_usage(tmp_path).free / 1024**3
    data = tmp_path / "data"
    assert main(_record_args(data, "--seconds", "1", "--min-free-gb", f"{free_gb + 100:.0f}")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GiB free on" in err[0] and "need" in err[0]
    assert not data.exists()


def test_stops_cleanly_before_the_disk_fills(tmp_path, capsys, calibrated_root):
    # Pretend the disk is nearly full: stop once 3 MB more of it is used.
    free_gb = (shutil.disk_usage(tmp_path).free - 3 * 1024**2) / 1024**3
    data = calibrated_root(tmp_path / "data")
    code = main(
        _record_args(
            data, "--seconds", "30", "--min-free-gb", "0", "--stop-free-gb", f"{free_gb:.6f}"
        )
    )
    assert code == 2
    assert "disk_low" in capsys.readouterr().err
    (session,) = [p for p in data.iterdir() if p.name != "calibration"]
    episode = session / "episode_0001.mcap"
    s = summarize(episode)  # finished properly, not cut off
    assert s.duration_s < 25
    flags = json.loads(s.metadata["quality"]["flags"]) if "quality" in s.metadata else []
    manifest = json.loads((session / "session.json").read_text())
    assert any(f.startswith("disk_low") for f in manifest["episodes"][0]["quality"]["flags"])
    assert isinstance(flags, list)


SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from rigs.spec import load_rig
    from teleop.recording.policy import RecordingPolicy
    from teleop.recording.run import start_session
    from teleop.recording.lifecycle import EpisodeRunner
    from teleop.rig_runtime import RigRuntime

    if __name__ == "__main__":
        data = Path(sys.argv[1])
        with RigRuntime(load_rig("sim-bimanual")) as runtime:
            recorder, session = start_session(runtime, data, operator="op", task="t",
                                              policy=RecordingPolicy(min_free_gb=0, stop_free_gb=0))
            runner = EpisodeRunner(recorder, session)
            try:
                first = runner.record(1.0)
                # From here on no file of this process may grow past 4 MB (EFBIG).
                resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024 * 1024, resource.RLIM_INFINITY))
                second = runner.record(15.0)
                print(first.path)
                print(second.path)
                print(recorder.write_error)
            finally:
                recorder.stop()
    """
)


def test_a_failed_write_closes_the_episode_as_partial_and_recoverable(tmp_path, calibrated_root):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    data = calibrated_root(tmp_path / "data")
    out = subprocess.run(
        [sys.executable, str(script), str(data)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    first, second, message = out.stdout.strip().splitlines()
    assert first.endswith("episode_0001.mcap") and summarize(Path(first)).duration_s > 0.5
    assert second.endswith("episode_0002.mcap.partial")
    assert "File too large" in message and "teleop recover" in message
    report = recover(Path(second))
    assert report.messages > 100
    assert summarize(report.output).metadata["provenance"]["episode_index"] == "2"
    manifest = json.loads((Path(first).parent / "session.json").read_text())
    assert [e["status"] for e in manifest["episodes"]] == ["kept", "partial"]
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] == resource.RLIM_INFINITY  # not leaked here


def test_hours_left_uses_this_rigs_recorded_rate_when_there_is_one(tmp_path):
    from rigs.spec import load_rig
    from teleop.recording.disk import hours_left, recording_rate_bytes_s
    from teleop.session import Session
    from teleop.session_manifest import EpisodeEntry

    spec = load_rig("sim-bimanual").spec
    rate, basis = recording_rate_bytes_s(spec, tmp_path)
    assert basis == "estimated from its cameras" and rate == 6 * 280_000  # 4 colour + 2 depth
    s = Session.create(
        tmp_path, operator="op", task="t", rig_id=spec.id, rig_sha256="x", started_utc="t"
    )
    s.add_episode(
        EpisodeEntry(
            index=1, file="episode_0001.mcap", status="kept", bytes=20_000_000, duration_s=10.0
        )
    )
    rate, basis = recording_rate_bytes_s(spec, tmp_path)
    assert basis == "measured on this rig's episodes" and rate == 2_000_000
    assert hours_left(7_200_000_000, rate) == 1.0


@pytest.fixture
def small_disk(tmpfs):
    """A 20 MiB filesystem of its own, so that recording really meets ENOSPC."""
    return tmpfs("20m")


def test_a_disk_that_fills_mid_episode_ends_in_one_line_and_lists_the_partial(
    tmp_path, small_disk, calibrated_root
):
    data = calibrated_root(small_disk / "data")
    out = subprocess.run(
        [sys.executable, "-m", "teleop.cli", *_record_args(data, "--episodes", "20", "--seconds", "3",
                                                       "--min-free-gb", "0", "--stop-free-gb", "0")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "No space left on device" in lines[0] and "teleop recover" in lines[0]
    assert "Traceback" not in out.stderr and "unexpected" not in out.stderr
    (session,) = [p for p in data.iterdir() if p.name != "calibration"]
    manifest = json.loads((session / "session.json").read_text())
    *kept, last = manifest["episodes"]
    assert last["status"] == "partial" and (session / last["file"]).is_file()
    assert all(e["status"] == "kept" for e in kept)
    for e in kept:  # recorded before the disk filled: still complete and readable
        assert summarize(session / e["file"]).duration_s > 2
    assert manifest["closed_utc"] is not None
    assert not [p.name for p in session.iterdir() if p.name.startswith(".")]  # no temp left
    copy = tmp_path / "episode.mcap.partial"  # recover needs room the full disk has not
    shutil.copyfile(session / last["file"], copy)
    assert recover(copy).messages > 0
