"""Faults during an episode, injected in the virtual rig: what the operator is told, what the
robot does (torque writes seen by the virtual servos), and that recorded data survives."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rigs.dynamixel.control_table import HardwareError
from teleop.episode.reader import iter_messages, summarize
from tests.waiting import wait_cycles


def _wait_fault(recorder, timeout_s: float = 3.0):
    deadline = time.monotonic() + timeout_s
    while recorder.fault is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert recorder.fault is not None, "no fault reported"
    return recorder.fault


def _episode_intact(path: Path, fault_text: str) -> None:
    s = summarize(path)
    assert s.topics["/left_leader/joint_states"].message_count > 20
    assert any(fault_text in f for f in json.loads(s.metadata["quality"]["flags"]))
    assert sum(1 for _ in iter_messages(path, ["/left_follower/joint_states"])) > 20


@pytest.mark.realtime
def test_follower_bus_silent_holds_then_torques_off(recording):
    runtime, recorder = recording
    path = recorder.start_episode()
    wait_cycles(recorder)
    t_fault = time.monotonic_ns()
    runtime.virtual.inject_bus_silent("left_follower")
    fault = _wait_fault(recorder)
    assert "bus left_follower" in str(fault) and "stopped answering" in str(fault)
    result = recorder.stop_episode()
    offs = runtime.virtual.torque_offs_after("right_follower", t_fault)
    assert offs, "the healthy follower was not torqued off"
    ms = (min(offs) - t_fault) / 1e6
    assert ms < 100.0, f"torque-off {ms:.1f} ms after the bus went silent (promise: 100 ms)"
    assert result.path == path
    _episode_intact(path, "stopped answering")


@pytest.mark.realtime
def test_motor_hardware_error_is_named_and_followers_torque_off(recording):
    runtime, recorder = recording
    path = recorder.start_episode()
    wait_cycles(recorder)
    t_fault = time.monotonic_ns()
    runtime.virtual.inject_hardware_error("right_follower", 4, int(HardwareError.OVERLOAD))
    fault = _wait_fault(recorder)
    assert "motor 4 (elbow) reports a hardware error: overload" in str(fault)
    recorder.stop_episode()
    for arm in ("left_follower", "right_follower"):
        offs = runtime.virtual.torque_offs_after(arm, t_fault)
        assert offs, f"{arm} was not torqued off"
        ms = (min(offs) - t_fault) / 1e6
        assert ms < 100.0, f"{arm}: torque-off {ms:.1f} ms after the error (promise: 100 ms)"
    _episode_intact(path, "hardware error")


def test_leader_bus_fault_keeps_followers_holding(recording):
    runtime, recorder = recording
    path = recorder.start_episode()
    wait_cycles(recorder)
    t_fault = time.monotonic_ns()
    runtime.virtual.inject_bus_silent("right_leader")
    fault = _wait_fault(recorder)
    assert "bus right_leader" in str(fault)
    goals_then = {
        i: s.goal_ticks for i, s in runtime.virtual.servo_states("right_follower").items()
    }
    time.sleep(0.3)
    states = runtime.virtual.servo_states("right_follower")
    assert all(s.torque for s in states.values()), "followers must keep holding"
    assert {i: s.goal_ticks for i, s in states.items()} == goals_then
    assert not runtime.virtual.torque_offs_after("right_follower", t_fault)
    recorder.stop_episode()
    _episode_intact(path, "bus right_leader")
