"""A servo bus whose port disappears (USB adapter unplugged, hub without power, the virtual
rig's servo process killed) is a bus fault like a silent one: the other followers hold, then
torque off; the episode ends flagged naming the bus; nothing prints a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from teleop.episode.reader import iter_messages, summarize
from tests.waiting import wait_cycles, wait_until


def _flags(path: Path) -> list[str]:
    return json.loads(summarize(path).metadata["quality"]["flags"])


def test_one_follower_port_vanishes_the_other_follower_torques_off(recording):
    runtime, recorder = recording
    path = recorder.start_episode()
    wait_cycles(recorder)
    t_fault = time.monotonic_ns()
    runtime.virtual.inject_bus_vanish("left_follower")
    wait_until(lambda: recorder.fault is not None, "the vanished bus reported")
    assert "bus left_follower" in str(recorder.fault) and "vanished" in str(recorder.fault)
    result = recorder.stop_episode()
    offs = runtime.virtual.torque_offs_after("right_follower", t_fault)
    assert offs, "the healthy follower was not torqued off"
    assert result.path == path
    assert any("left_follower" in f and "vanished" in f for f in _flags(path))
    assert sum(1 for _ in iter_messages(path, ["/right_follower/joint_states"])) >= 30


def test_every_port_vanishing_at_once_ends_the_episode_flagged(recording):
    runtime, recorder = recording
    path = recorder.start_episode()
    wait_cycles(recorder)
    runtime.virtual.kill()
    wait_until(lambda: recorder.fault is not None, "the vanished buses reported")
    assert "vanished" in str(recorder.fault)
    recorder.stop_episode()
    assert any("vanished" in f for f in _flags(path))
    assert summarize(path).topics["/left_leader/joint_states"].message_count >= 30


def _servo_process(parent: psutil.Process) -> psutil.Process | None:
    """The virtual rig's servo process: the child holding pseudo-terminal masters."""
    for child in parent.children(recursive=True):
        try:
            fds = os.listdir(f"/proc/{child.pid}/fd")
            if any(os.readlink(f"/proc/{child.pid}/fd/{fd}") == "/dev/ptmx" for fd in fds):
                return child
        except OSError:
            continue
    return None


def test_teleop_record_exits_non_zero_naming_the_bus_without_a_traceback(
    tmp_path: Path, calibrated_root
):
    data = calibrated_root(tmp_path / "data")
    cmd = [sys.executable, "-m", "teleop.cli", "record", "--rig", "sim-bimanual", "--operator",
           "op", "--task", "t", "--seconds", "60", "--data-dir", str(data), "--min-free-gb", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        parent = psutil.Process(proc.pid)
        # Recording has begun once a second of it is on disk.
        wait_until(
            lambda: any(p.stat().st_size > 1_000_000 for p in data.glob("*/episode_*.partial")),
            "the episode being written",
            timeout_s=60,
        )
        servo = _servo_process(parent)
        assert servo is not None, [c.cmdline() for c in parent.children(recursive=True)]
        servo.send_signal(signal.SIGKILL)  # every bus's port vanishes at once
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("teleop: error:")]
    assert len(lines) == 1 and "vanished" in lines[0], err
    assert "Traceback" not in err
    (session,) = [p.parent for p in data.glob("*/session.json")]
    (entry,) = json.loads((session / "session.json").read_text())["episodes"]
    episode = session / entry["file"]
    assert any("vanished" in f for f in entry["quality"]["flags"]), entry
    assert summarize(episode).topics["/left_follower/joint_states"].message_count > 0
