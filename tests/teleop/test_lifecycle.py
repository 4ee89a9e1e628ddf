"""The episode lifecycle: transitions, keep/discard/re-record, numbering, crash and resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from rigs.spec import load_rig
from teleop.cli import main
from teleop.episode.reader import summarize
from teleop.recording.lifecycle import EpisodeRunner, RunnerState, TransitionError
from teleop.recording.policy import RecordingPolicy
from teleop.recording.run import start_session
from teleop.rig_runtime import RigRuntime
from tests.waiting import wait_cycles


def test_keep_discard_rerecord_and_numbering(tmp_path: Path, calibrated_root):
    with RigRuntime(load_rig("sim-bimanual")) as runtime:
        recorder, session = start_session(
            runtime,
            calibrated_root(tmp_path),
            operator="op",
            task="t",
            policy=RecordingPolicy(min_free_gb=0),
        )
        runner = EpisodeRunner(recorder, session)
        try:
            with pytest.raises(TransitionError, match="cannot stop while idle"):
                runner.stop()
            runner.arm()
            assert runner.status().state is RunnerState.ARMED
            assert runner.start() == 1
            assert runner.status().state is RunnerState.RECORDING
            wait_cycles(recorder, 10)
            runner.stop()
            assert runner.status().undecided == 1
            runner.keep()
            runner.start()
            wait_cycles(recorder, 10)
            runner.stop()
            runner.discard()  # episode 2 moved aside
            assert (session.root / "discarded" / "episode_0002.mcap").exists()
            assert not (session.root / "episode_0002.mcap").exists()
            runner.start()
            wait_cycles(recorder, 10)
            runner.stop()
            assert runner.rerecord() == 4  # 3 discarded, 4 started: numbers never reused
            wait_cycles(recorder, 10)
            runner.stop()
            status = runner.status()
            assert (status.kept, status.discarded, status.undecided) == (1, 2, 4)
        finally:
            runner.close()
            recorder.stop()
    manifest = json.loads((session.root / "session.json").read_text())
    assert [(e["index"], e["status"]) for e in manifest["episodes"]] == [
        (1, "kept"), (2, "discarded"), (3, "discarded"), (4, "kept"),
    ]  # fmt: skip
    assert not (session.root / "discarded").exists()  # deleted when the session closed
    assert manifest["closed_utc"]
    for name in ("episode_0001.mcap", "episode_0004.mcap"):
        s = summarize(session.root / name)  # the ten cycles waited for are in the file
        assert s.topics["/left_follower/joint_states"].message_count >= 10 and s.duration_s > 0


def test_kill_9_then_resume_recovers_and_continues_numbering(tmp_path: Path, calibrated_root):
    data = calibrated_root(tmp_path / "data")
    cmd = [sys.executable, "-m", "teleop.cli", "record", "--rig", "sim-bimanual", "--operator", "op",
           "--task", "t", "--episodes", "3", "--seconds", "4", "--data-dir", str(data), "--min-free-gb", "0"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 60
    partial = None
    while time.monotonic() < deadline:
        found = list(data.glob("*/episode_0002.mcap.partial"))
        # About a second of episode 2 on disk (a 4 s episode writes ~7 MB): kill it mid-way.
        if found and found[0].stat().st_size > 2_000_000:
            partial = found[0]
            break
        time.sleep(0.05)
    assert partial is not None, (
        proc.stderr.read() if proc.poll() is not None else f"timeout: {sorted(data.rglob('*'))}"
    )
    os.killpg(proc.pid, signal.SIGKILL)  # the app and its helper processes, as a power cut would
    proc.wait(10)
    session = partial.parent
    assert (session / "episode_0001.mcap").exists()

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["record", "--rig", "sim-bimanual", "--operator", "op", "--task", "t", "--episodes", "1",
                     "--seconds", "1", "--data-dir", str(data), "--resume", str(session),
                     "--recover-unfinished", "--min-free-gb", "0", "--quiet"])  # fmt: skip
    assert code == 0 and out.getvalue().strip() == str(session)
    manifest = json.loads((session / "session.json").read_text())
    assert [(e["index"], e["status"]) for e in manifest["episodes"]] == [
        (1, "kept"),
        (2, "recovered"),
        (3, "kept"),
    ]
    recovered = summarize(session / "episode_0002.mcap")
    assert recovered.metadata["recovery"]["recovered_from"] == "episode_0002.mcap.partial"
    assert recovered.duration_s > 0.5
    assert not list(session.glob("*.partial"))
