"""Calibration on the virtual rig: the procedure finds the mounting the rig was built with
(within one tick), the mapping follows the truth through a power cycle, and the pre-flight
checks pass or refuse on live readings."""

from __future__ import annotations

import math
import time
from pathlib import Path

import dynamixel_sdk as sdk
import numpy as np
import pytest

from calibration.mapping import mappings_for
from calibration.records import ArmCalibration, wrap_rad
from rigs.dynamixel import control_table as ct
from rigs.dynamixel.bus import BusError, DynamixelBus
from rigs.virtual.mounting import arm_truth
from teleop.doctor import Status, run_checks
from teleop.recording.policy import RecordingPolicy
from tests.calibration.conftest import (
    SPEC,
    TICK,
    Calibrated,
    cli,
    joint_pose,
    wait_pose,
    wait_until,
)


def _read_after_boot(bus: DynamixelBus, k: int):
    """Read the arm once joint ``k``'s rebooted servo has booted: it answers again and counts
    its position within one turn, as after a power cycle (it takes a moment)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            state = bus.read_state()
            if abs(state.position_rad[k]) <= math.pi:
                return state
        except BusError:
            pass
        assert time.monotonic() < deadline, "the rebooted servo never came back within a turn"
        time.sleep(0.02)


def _arm(c: Calibrated, name: str) -> ArmCalibration:
    cal = c.records[name].record.calibration
    assert isinstance(cal, ArmCalibration)
    return cal


@pytest.mark.parametrize("name", ["left_leader", "right_leader", "left_follower", "right_follower"])
def test_offsets_directions_and_ranges_are_within_one_tick_of_the_truth(
    calibrated: Calibrated, name: str
):
    truth = calibrated.rig.truth[name]
    cal = _arm(calibrated, name)
    ref = calibrated.reference[name]
    for j in cal.joints:
        t = truth.joint(j.name)
        assert j.direction == t.direction, j.name
        assert abs(wrap_rad(j.offset_rad - t.reading_rad(ref[j.name]))) <= TICK, j.name
        assert (
            j.offset_ticks % ct.TICKS_PER_REV
            == round(t.reading_rad(ref[j.name]) / TICK + ct.CENTER_TICKS) % ct.TICKS_PER_REV
        )
        if j.name == cal.gripper.joint:  # type: ignore[union-attr]
            lo, hi = truth.gripper_closed_rad, truth.gripper_open_rad
        else:
            lo, hi = t.stop_min_rad, t.stop_max_rad
        assert abs(j.min_rad - lo) <= TICK, j.name
        assert abs(j.max_rad - hi) <= TICK, j.name
    g = cal.gripper
    gt = truth.joint(g.joint)  # type: ignore[union-attr]
    assert abs(wrap_rad(g.open_rad - gt.reading_rad(truth.gripper_open_rad))) <= TICK  # type: ignore[union-attr]
    assert abs(wrap_rad(g.closed_rad - gt.reading_rad(truth.gripper_closed_rad))) <= TICK  # type: ignore[union-attr]


def test_the_seeded_rig_has_the_hard_cases():
    for arm in SPEC.arms:
        truth = arm_truth(arm, "seeded", 7)
        assert any(j.direction == -1 for j in truth.joints), arm.name
        ticks = [
            (j.offset_ticks + j.direction * np.array([j.stop_min_rad, j.stop_max_rad]) / TICK)
            + ct.CENTER_TICKS
            for j in truth.joints
        ]
        crosses = [bool((t < 0).any() or (t >= ct.TICKS_PER_REV).any()) for t in ticks]
        # A leader has a joint whose reading wraps 4095 -> 0 inside its travel; a follower
        # never (its Position Control Mode could not follow across).
        assert any(crosses) == (arm.role == "leader"), arm.name


def test_mapping_sends_the_follower_where_the_leader_is(calibrated: Calibrated):
    """Leader joint pose -> leader bus reading (truth) -> mapping -> the follower's own bus
    reading for the same joint pose (truth)."""
    mappings = mappings_for(calibrated.spec, calibrated.records)
    rng = np.random.default_rng(5)
    for follower in calibrated.spec.followers:
        m = mappings[follower.name]
        lt, ft = calibrated.rig.truth[m.leader], calibrated.rig.truth[follower.name]
        body = [k for k, n in enumerate(follower.joint_names) if n != follower.gripper]
        for _ in range(20):
            q = np.array([rng.uniform(j.stop_min_rad, j.stop_max_rad) for j in ft.joints])
            leader_bus = np.array([lt.joints[k].reading_rad(q[k]) for k in range(len(q))])
            follower_bus = np.array([ft.joints[k].reading_rad(q[k]) for k in range(len(q))])
            goal = m.map(leader_bus)
            np.testing.assert_allclose(goal[body], follower_bus[body], atol=2 * TICK)
        g = follower.joint_names.index(follower.gripper or "")
        for which in ("gripper_closed_rad", "gripper_open_rad"):
            x = np.zeros(len(follower.joints))
            x[g] = lt.joints[g].reading_rad(getattr(lt, which))
            expected = ft.joints[g].reading_rad(getattr(ft, which))
            assert m.map(x)[g] == pytest.approx(expected, abs=3 * TICK), which


def test_a_power_cycle_between_calibration_and_use_changes_nothing(calibrated: Calibrated):
    spec, rig = calibrated.spec, calibrated.rig
    name = "left_leader"
    truth = rig.truth[name]
    m = mappings_for(spec, calibrated.records)["left_follower"]
    # The joint whose reading wraps: put it a little past the wrap (the leader hangs there).
    ref = calibrated.reference[name]
    k, joint = next(
        (k, j)
        for k, j in enumerate(truth.joints)
        if abs(j.offset_ticks) > ct.CENTER_TICKS - 300 and j.name != spec.arm(name).gripper
    )
    toward_wrap = 1.0 if joint.offset_ticks * joint.direction > 0 else -1.0
    pose = np.array([ref[j.name] for j in truth.joints])
    pose[k] = ref[joint.name] + toward_wrap * 0.9
    rig.hold_operator(True, name)
    try:
        wait_pose(rig, name, pose, rig.calibration_move(name, "pose", angles=pose))
        arm = spec.arm(name).model_copy(update={"port": rig.ports[name]})
        with DynamixelBus(arm) as bus:
            before = bus.read_state().position_rad
            # Whole turns counted since power-on: outside one turn.
            assert abs(before[k]) > math.pi
            goal_before = m.map(before)
            mid = arm.joints[k].id
            result, _ = bus._packet.reboot(bus._port, mid)  # noqa: SLF001 (the wire REBOOT)
            assert result == sdk.COMM_SUCCESS
            after = _read_after_boot(bus, k).position_rad
        assert abs(after[k]) <= math.pi  # back within one turn, as after a power cycle
        assert abs(abs(after[k] - before[k]) - 2 * math.pi) < 1e-9
        np.testing.assert_allclose(m.map(after), goal_before, atol=1e-9)
        # And the joint angle the record gives is the true one, before and after.
        cal = _arm(calibrated, name).joints[k]
        assert cal.to_joint(after[k]) == pytest.approx(pose[k], abs=TICK)
    finally:
        wait_until(rig.calibration_end(name))
        rig.hold_operator(False, name)


def test_checks_pass_when_the_leaders_match_and_refuse_a_pose_delta(calibrated: Calibrated):
    spec, rig = calibrated.spec, calibrated.rig
    rig.hold_operator(True)
    try:
        # Each leader held where its follower stands (what a person does before recording).
        targets = {f.follows or "": joint_pose(rig, f.name) for f in spec.followers}
        ends = {a: rig.calibration_move(a, "pose", angles=p) for a, p in targets.items()}
        for leader, pose_rad in targets.items():
            wait_pose(rig, leader, pose_rad, ends[leader])
        results = run_checks(spec, calibrated.data_root, ports=rig.ports)
        fails = [str(r) for r in results if r.status == Status.FAIL]
        assert fails == []
        assert sum(r.check == "pose delta" and r.status == Status.OK for r in results) == 2

        pose = joint_pose(rig, "left_follower")
        shoulder = spec.arm("left_follower").joint_names.index("shoulder")
        pose[shoulder] += 1.0
        wait_pose(
            rig, "left_leader", pose, rig.calibration_move("left_leader", "pose", angles=pose)
        )
        results = run_checks(
            spec,
            calibrated.data_root,
            ports=rig.ports,
            policy=RecordingPolicy(max_calibration_age_days=1),
        )
        (fail,) = [r for r in results if r.status == Status.FAIL]
        assert (fail.check, fail.subject, fail.joint) == ("pose delta", "left_follower", "shoulder")
        delta = float(fail.measured.split()[0])
        assert abs(delta) == pytest.approx(1.0, abs=0.02)
        assert "move left_leader's shoulder" in fail.fix
        # A looser threshold lets it through.
        relaxed = run_checks(
            spec,
            calibrated.data_root,
            ports=rig.ports,
            policy=RecordingPolicy(max_pose_delta_rad=1.2),
        )
        assert not [r for r in relaxed if r.status == Status.FAIL]
    finally:
        for f in spec.followers:
            rig.calibration_end(f.follows or "")
        rig.hold_operator(False)


def test_doctor_fails_naming_each_arm_before_calibration_and_passes_after(
    calibrated: Calibrated,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    # The doctor's own virtual rig is built like the calibrated one (same rig id, same build).
    empty = tmp_path / "empty"
    assert cli("doctor", "--rig", "sim-bimanual", "--data-dir", str(empty), "--no-cameras") == 1
    out = capsys.readouterr().out
    for arm in ("left_leader", "right_leader", "left_follower", "right_follower"):
        assert f"teleop calibrate --rig sim-bimanual --arm {arm}" in out
        assert any(
            line.startswith("FAIL") and "calibration record" in line and arm in line
            for line in out.splitlines()
        )
    assert out.rstrip().splitlines()[-1].startswith("doctor: FAIL (4 failed")

    data = str(calibrated.data_root)
    assert cli("doctor", "--rig", "sim-bimanual", "--data-dir", data, "--no-cameras") == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    ok_deltas = [ln for ln in out.splitlines() if ln.startswith("OK") and "pose delta" in ln]
    assert len(ok_deltas) == 2
    assert "doctor: OK" in out or "doctor: WARN" in out  # camera records are only a warning

    # Too old for a strict lab: refused, naming the arm and the limit.
    assert (
        cli(
            "doctor",
            "--rig",
            "sim-bimanual",
            "--data-dir",
            data,
            "--no-cameras",
            "--max-calibration-age-days",
            "0",
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "calibration age" in out and "(limit 0 days)" in out
