"""The control loop: mapping and clamps on the wire, and the control process hand-off."""

from __future__ import annotations

import time

import numpy as np
import pytest

from calibration.mapping import JointMapping
from rigs.dynamixel import control_table as ct
from rigs.dynamixel.bus import BusFault, open_buses
from rigs.spec import load_rig
from rigs.virtual.launcher import VirtualRig
from teleop.control.loop import ArmFault, ControlLoop
from teleop.control.process import ControlProcess
from teleop.control.ring import LoopCounters, SampleRing

SPEC = load_rig("sim-bimanual").spec


def _identity() -> dict[str, JointMapping]:
    return {
        f.name: JointMapping.identity(f.follows or "", f.name, len(f.joints))
        for f in SPEC.followers
    }


@pytest.fixture()
def rig_buses():
    with VirtualRig(SPEC, seed=5, mounting="ideal") as rig:
        buses = open_buses(SPEC, rig.ports)
        yield rig, buses
        for bus in buses.values():
            bus.disconnect()


def test_step_maps_leader_to_follower_and_writes_clamped_commands(rig_buses):
    rig, buses = rig_buses
    loop = ControlLoop(SPEC, buses, _identity(), 100.0, lambda s: None)
    max_step = SPEC.safety.max_step_rad
    previous = None
    for cycle in range(60):
        s = loop.step(cycle, time.monotonic_ns(), 0)
        leader = s.arms["left_leader"].reading.position_rad
        np.testing.assert_allclose(s.targets_rad["left_follower"], leader)  # identity mapping
        cmd = s.commands_rad["left_follower"]
        if previous is not None:
            assert np.abs(cmd - previous).max() <= max_step + 1e-9
        lo = [j.min_rad for j in SPEC.arm("left_follower").joints]
        hi = [j.max_rad for j in SPEC.arm("left_follower").joints]
        assert np.all(cmd >= np.array(lo) - 1e-9) and np.all(cmd <= np.array(hi) + 1e-9)
        previous = cmd
        time.sleep(0.01)
    # What the loop wrote is what the servos were told.
    goals = rig.servo_states("left_follower")
    for k, joint in enumerate(SPEC.arm("left_follower").joints):
        assert goals[joint.id].goal_ticks == ct.rad_to_ticks(previous[k])


def test_a_leader_jump_reaches_the_follower_one_step_at_a_time(rig_buses):
    _rig, buses = rig_buses
    mappings = _identity()
    loop = ControlLoop(SPEC, buses, mappings, 100.0, lambda s: None)
    first = loop.step(0, time.monotonic_ns(), 0)
    # Shift the mapping by 1 rad on the waist: the target jumps, the command must not.
    m = mappings["right_follower"]
    mappings["right_follower"] = JointMapping(
        m.leader, m.follower, m.offset_rad + np.eye(7)[0], m.direction
    )
    second = loop.step(1, time.monotonic_ns(), 0)
    jump = second.targets_rad["right_follower"][0] - first.commands_rad["right_follower"][0]
    assert jump > 0.5
    step = second.commands_rad["right_follower"][0] - first.commands_rad["right_follower"][0]
    assert step == pytest.approx(SPEC.safety.max_step_rad, abs=1e-6)
    assert loop.clamps["right_follower"].step_hits >= 1


def test_ring_round_trip_and_overflow(rig_buses):
    _rig, buses = rig_buses
    loop = ControlLoop(SPEC, buses, _identity(), 100.0, lambda s: None)
    writer = SampleRing(SPEC, capacity=4, create=True)
    reader = SampleRing(SPEC, capacity=4, name=writer.name)
    try:
        samples = [loop.step(i, time.monotonic_ns(), 10_000_000) for i in range(3)]
        for s in samples:
            writer.put(s, LoopCounters(1, 2, 3, 4))
        got = reader.take()
        assert [s.cycle for s, _ in got] == [0, 1, 2]
        s0, c0 = got[0]
        assert c0 == LoopCounters(1, 2, 3, 4)
        np.testing.assert_array_equal(s0.arms["left_leader"].reading.position_rad,
                                      samples[0].arms["left_leader"].reading.position_rad)  # fmt: skip
        np.testing.assert_array_equal(
            s0.commands_rad["right_follower"], samples[0].commands_rad["right_follower"]
        )
        assert s0.arms["right_follower"].stamp_ns == samples[0].arms["right_follower"].stamp_ns
        for i in range(6):  # more than the capacity without reading
            writer.put(loop.step(10 + i, time.monotonic_ns(), 0), LoopCounters(0, 0, 0, 0))
        assert [s.cycle for s, _ in reader.take()] == [12, 13, 14, 15]
        assert reader.lost == 2
    finally:
        reader.close()
        writer.close()


def _goals(rig: VirtualRig, arm: str) -> dict[int, int]:
    return {i: st.goal_ticks for i, st in rig.servo_states(arm).items()}


def test_control_process_streams_samples_and_reports_a_dead_bus():
    with VirtualRig(SPEC, seed=6, mounting="ideal") as rig:
        got = []
        control = ControlProcess(
            SPEC, ports=rig.ports, rate_hz=100.0, sink=lambda s, c: got.append(s)
        )
        control.start()
        try:
            assert control.hardware["left_leader"]["motor_1"].startswith("waist")
            assert set(control.initial_positions) == {a.name for a in SPEC.arms}
            # Nothing moves before go: no Goal Position reaches a follower servo.
            goals = {f: _goals(rig, f) for f in ("left_follower", "right_follower")}
            time.sleep(0.2)
            assert {f: _goals(rig, f) for f in goals} == goals
            assert got == []
            control.go(_identity())
            deadline = time.monotonic() + 30
            while len(got) < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            cycles = [s.cycle for s in got]
            assert len(cycles) >= 50, f"{len(cycles)} samples in 30 s"
            assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))  # none lost
            rig.inject_bus_silent("right_follower")
            deadline = time.monotonic() + 5
            while control.fault is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert isinstance(control.fault, ArmFault) and isinstance(control.fault.cause, BusFault)
            assert control.fault.arm == "right_follower" and control.fault.role == "follower"
            assert "bus right_follower" in str(control.fault) and "stopped answering" in str(
                control.fault
            )
        finally:
            control.stop()
        assert control.samples_lost == 0
