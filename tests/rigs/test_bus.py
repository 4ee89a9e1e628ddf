"""The Dynamixel driver against the virtual rig: connect checks, modes, the per-cycle path."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from rigs.dynamixel import bus as bus_mod
from rigs.dynamixel import control_table as ct
from rigs.dynamixel.bus import BusError, BusFault, DynamixelBus, MotorMissingError, MotorModelError
from rigs.spec import load_rig
from rigs.virtual.launcher import VirtualRig

SPEC = load_rig("sim-bimanual").spec


@pytest.fixture(scope="module")
def rig():
    # Ideal mounting: bus angles equal joint angles, so the rig file's limits apply as read.
    with VirtualRig(SPEC, seed=3, mounting="ideal") as r:
        yield r


def _bus(rig: VirtualRig, arm: str, **changes) -> DynamixelBus:
    spec = SPEC.arm(arm).model_copy(update={"port": rig.ports[arm], **changes})
    return DynamixelBus(spec)


def test_connect_pings_every_motor_and_reports_models(rig):
    with _bus(rig, "left_follower") as bus:
        ids = [m.id for m in bus.motors]
        assert ids == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # shadows 3 and 5 included
        assert {m.model for m in bus.motors if m.id <= 5} == {"XM540-W270"}
        info = bus.hardware_info()
        assert (
            info["motor_3"].startswith("shoulder XM540-W270") and "shadow of 2" in info["motor_3"]
        )


def test_follower_configuration_sets_modes_and_holds(rig):
    with _bus(rig, "right_follower") as bus:
        bus.configure_follower()
        states = rig.servo_states("right_follower")
        assert all(s.torque for s in states.values())
        assert states[9].mode == int(ct.OperatingMode.CURRENT_BASED_POSITION)
        assert states[1].mode == int(ct.OperatingMode.POSITION)
        # Torque came on at the present position: nothing jumped.
        for s in states.values():
            assert abs(s.goal_ticks - s.present_ticks) < 30


def test_leader_is_torque_off_and_reads_move(rig):
    with _bus(rig, "left_leader") as bus:
        bus.configure_leader()
        assert not any(s.torque for s in rig.servo_states("left_leader").values())
        first = bus.read_state()
        time.sleep(0.3)
        second = bus.read_state()
        assert first.ok and second.ok
        assert np.abs(second.position_rad - first.position_rad).max() > 1e-3
        lo = np.array([j.min_rad for j in SPEC.arm("left_leader").joints])
        hi = np.array([j.max_rad for j in SPEC.arm("left_leader").joints])
        assert np.all(second.position_rad >= lo - 0.01) and np.all(second.position_rad <= hi + 0.01)


def test_sync_write_moves_the_follower(rig):
    with _bus(rig, "left_follower") as bus:
        bus.configure_follower()
        start = bus.read_state().position_rad
        goal = start.copy()
        goal[0] += 0.3
        for _ in range(50):
            bus.write_goals(goal)
            time.sleep(0.01)
        reached = bus.read_state().position_rad
        assert abs(reached[0] - goal[0]) < 0.02
        assert np.abs(reached[1:] - start[1:]).max() < 0.02


def test_missing_motor_is_named_with_bus_id_and_model(rig):
    rig.inject_motor_silent("right_leader", 7)
    try:
        with pytest.raises(MotorMissingError) as info, _bus(rig, "right_leader"):
            pass
        msg = str(info.value)
        assert "bus right_leader" in msg and "motor id 7" in msg and "XL430-W250" in msg
        assert "wrist_angle" in msg
    finally:
        rig.inject_motor_silent("right_leader", 7, silent=False)


def test_wrong_model_is_named(rig):
    joints = list(SPEC.arm("right_leader").joints)
    joints[0] = joints[0].model_copy(update={"model": "XM540-W270"})
    with pytest.raises(
        MotorModelError, match=r"motor id 1 \(waist\) is a XM430-W350, expected XM540-W270"
    ):
        _bus(rig, "right_leader", joints=joints).connect()


def test_port_that_does_not_exist():
    arm = SPEC.arm("left_leader").model_copy(update={"port": "/dev/serial/by-id/usb-nothing-here"})
    with pytest.raises(BusError, match="port /dev/serial/by-id/usb-nothing-here does not exist"):
        DynamixelBus(arm).connect()


def test_silent_bus_retries_then_faults(rig):
    with _bus(rig, "right_leader") as bus:
        assert bus.read_state().ok
        rig.inject_bus_silent("right_leader")
        try:
            first = bus.read_state()  # right after a good reply: retried, then stale
            assert not first.ok and bus.stats.read_retries == bus.retries
            with pytest.raises(BusFault, match="bus right_leader .* stopped answering"):
                bus.read_state()  # the second failed cycle in a row
        finally:
            rig.inject_bus_silent("right_leader", silent=False)
        assert bus.read_state().ok  # recovers once the bus answers again


def test_high_latency_timer_warns(rig, monkeypatch, caplog):
    # sysfs is the edge a test cannot reach on a pty: pretend the adapter is an FTDI at 16 ms.
    monkeypatch.setattr(bus_mod, "ftdi_latency_timer_ms", lambda port: 16)
    with caplog.at_level(logging.WARNING), _bus(rig, "left_leader") as bus:
        assert bus.latency_timer_ms == 16
    assert "latency timer" in caplog.text and "16 ms" in caplog.text
