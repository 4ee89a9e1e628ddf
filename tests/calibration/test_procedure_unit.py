"""The procedure as a step machine (no rig: a fake bus), and the virtual servos' mounting and
turn counting it relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.procedure import (
    CalibrationProcedure,
    CalibrationStepError,
    StepKind,
    run_steps,
)
from rigs.dynamixel import control_table as ct
from rigs.dynamixel.bus import JointReading, MotorInfo
from rigs.virtual.servo import VirtualServo
from tests.calibration.conftest import SPEC

ARM = SPEC.arm("right_follower")
N = len(ARM.joints)


class FakeBus:
    """Reads whatever pose the test sets (bus radians); records torque writes."""

    def __init__(self) -> None:
        self.pose = np.zeros(N)
        self.torque: list[bool] = []
        self.motors = [MotorInfo(j.id, j.name, j.model, 1, 52) for j in ARM.joints]

    def read_state(self) -> JointReading:
        return JointReading(self.pose.copy(), np.zeros(N), np.zeros(N), True)

    def set_torque(self, enabled: bool) -> None:
        self.torque.append(enabled)

    def hardware_info(self) -> dict[str, str]:
        return {"adapter_serial": "FT123"}


def _proc(bus: FakeBus) -> CalibrationProcedure:
    return CalibrationProcedure(SPEC, ARM.name, bus, operator="op1", samples=3)


def test_steps_in_order_with_prompts():
    proc = _proc(FakeBus())
    kinds = [s.kind for s in proc.steps]
    assert kinds[:2] == [StepKind.TORQUE_OFF, StepKind.REFERENCE]
    assert kinds[-2:] == [StepKind.GRIPPER_OPEN, StepKind.GRIPPER_CLOSE]
    sweeps = [s.joint for s in proc.steps if s.kind == StepKind.SWEEP]
    assert sweeps == [n for n in ARM.joint_names if n != "gripper"]
    assert "support the arm" in proc.steps[0].prompt  # a follower goes limp
    assert proc.current is proc.steps[0] and not proc.done


def test_a_person_driven_calibration_with_a_redo():
    bus = FakeBus()
    proc = _proc(bus)
    offsets = np.array([0.3, -3.0, 0.1, 0.0, 0.2, -0.1, 0.05])  # shoulder near the wrap
    directions = np.array([1, -1, 1, -1, 1, 1, 1])
    redone = False

    proc.confirm()  # torque off
    assert bus.torque == [False]
    bus.pose = offsets.copy()
    proc.confirm()  # reference
    for k, name in enumerate(ARM.joint_names[:-1]):
        assert proc.current.joint == name
        if name == "elbow" and not redone:
            # Confirmed without moving: refused, and the step stays.
            with pytest.raises(CalibrationStepError, match="elbow moved only 0.000 rad"):
                proc.confirm()
            redone = True
            assert proc.current.joint == "elbow"
        angles = (0.0, 0.6, 1.2, 0.4, -0.5, -1.1, -0.2, 0.0)
        for joint_angle in angles:
            pose = offsets.copy()
            pose[k] = offsets[k] + directions[k] * joint_angle
            bus.pose = pose
            live = proc.readings()
        # Live extremes are in the servo's sense (the direction is known only at confirm).
        seen = [directions[k] * a for a in angles]
        assert live.joints[k].min_rad == pytest.approx(min(seen))
        assert live.joints[k].max_rad == pytest.approx(max(seen))
        proc.confirm()
    g = N - 1
    bus.pose = offsets.copy()
    bus.pose[g] = offsets[g] + 1.1
    proc.confirm()  # open
    bus.pose[g] = offsets[g] - 0.4
    proc.confirm()  # closed
    assert proc.done
    record = proc.result(created_utc="2025-01-01T00:00:00.000000Z")
    cal = record.calibration
    assert cal.arm == ARM.name and cal.adapter_serial == "FT123"
    for k, j in enumerate(cal.joints[:-1]):
        assert j.direction == directions[k], j.name
        assert j.offset_rad == pytest.approx(offsets[k])
        assert (j.min_rad, j.max_rad) == pytest.approx((-1.1, 1.2))
    # The shoulder went past the wrap (offset -3.0 - 1.2 < -pi) and still measured right.
    assert cal.joints[1].offset_ticks == round(-3.0 / ct.RAD_PER_TICK) + ct.CENTER_TICKS
    assert cal.gripper.open_rad == pytest.approx(offsets[g] + 1.1)
    assert cal.gripper.closed_rad == pytest.approx(offsets[g] - 0.4)
    assert cal.joints[g].direction == 1 and cal.joints[g].max_rad == pytest.approx(1.1)


def test_gripper_that_did_not_move_goes_back_to_open():
    bus = FakeBus()
    proc = _proc(bus)
    proc.confirm()
    proc.confirm()
    for k in range(N - 1):
        for a in (0.0, 0.5, -0.5, 0.0):
            bus.pose = np.zeros(N)
            bus.pose[k] = a
            proc.readings()
        proc.confirm()
    bus.pose = np.zeros(N)
    proc.confirm()  # open
    with pytest.raises(CalibrationStepError, match="open it fully"):
        proc.confirm()  # closed at the same angle
    assert proc.current.kind == StepKind.GRIPPER_OPEN
    with pytest.raises(CalibrationStepError, match="not finished"):
        proc.result()


def test_a_sweep_past_half_a_turn_is_refused():
    bus = FakeBus()
    proc = _proc(bus)
    proc.confirm()
    proc.confirm()
    for a in (0.0, 1.0, 3.1, -1.0):
        bus.pose = np.zeros(N)
        bus.pose[0] = a
        proc.readings()
    with pytest.raises(CalibrationStepError, match="too close to half a turn"):
        proc.confirm()


def test_run_steps_needs_a_way_to_confirm():
    with pytest.raises(ValueError, match="performer or a confirmed"):
        run_steps(_proc(FakeBus()))


def test_person_errors_go_to_on_error_and_the_step_repeats():
    bus = FakeBus()
    proc = _proc(bus)
    errors = []
    presses = iter([True] * 3 + [False] * 10**6)

    def confirmed() -> bool:
        # Torque, reference, then a sweep confirmed without motion; then stop the test.
        if len(errors) == 1:
            raise KeyboardInterrupt
        return next(presses)

    with pytest.raises(KeyboardInterrupt):
        run_steps(proc, confirmed=confirmed, on_error=lambda s, e: errors.append((s.joint, str(e))))
    assert errors and errors[0][0] == "waist" and "moved only" in errors[0][1]


# -- the virtual servo's mounting and turn counting ------------------------------------------


def test_servo_mounting_and_turns_forgotten_at_reboot():
    s = VirtualServo(
        1, "XL430-W250", position_rad=0.0, mount_offset_ticks=2000, mount_direction=-1, now=0.0
    )
    assert s.position_rad == pytest.approx(0.0)
    assert s.present_ticks == 2048 + 2000
    s.external_rad = -0.5  # joint -0.5 rad: shaft +326 ticks, past 4095
    s.step(0.01)
    assert s.position_rad == pytest.approx(-0.5)
    counted = s.present_ticks
    assert counted == round(4048 + 0.5 / ct.RAD_PER_TICK) > 4095  # torque off: turns counted
    s.reboot(0.02, 0.0)
    assert s.present_ticks == counted - 4096  # back within one turn, shaft unmoved
    assert s.position_rad == pytest.approx(-0.5)


def test_switching_to_position_mode_brings_the_reading_within_one_turn():
    s = VirtualServo(1, "XM430-W350", position_rad=0.0, mount_offset_ticks=-2040, now=0.0)
    s.external_rad = -0.2  # moved by hand below tick 0
    s.step(0.01)
    assert s.present_ticks < 0
    s.external_rad = None
    # What the driver does for a follower: mode, goal = present, torque on.
    assert s.write(ct.OPERATING_MODE, bytes([ct.OperatingMode.POSITION])) == 0
    present = s.present_ticks
    assert 0 <= present < 4096
    assert s.write(ct.GOAL_POSITION, present.to_bytes(4, "little", signed=True)) == 0
    assert s.write(ct.TORQUE_ENABLE, b"\x01") == 0
    s.step(0.5)
    assert s.position_rad == pytest.approx(-0.2, abs=ct.RAD_PER_TICK)
    assert not math.isnan(s.position_rad)


def test_the_terminal_confirms_on_enter_and_yes_skips_the_torque_question(tmp_path):
    import io
    import os

    from calibration.procedure import Step
    from teleop.cli.calibration import Terminal
    from teleop.errors import TeleopError

    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as stdin, os.fdopen(write_fd, "w") as keys:
        out = io.StringIO()
        term = Terminal(out, stdin, yes=True, live_every_s=0.0)
        torque = Step(StepKind.TORQUE_OFF, "t", "p")
        sweep = Step(StepKind.SWEEP, "s", "p", "waist")
        term.on_step(torque)
        assert term.confirmed()  # --yes: no question before torque goes off
        term.on_step(sweep)
        assert "press Enter" in out.getvalue()
        assert not term.confirmed()
        keys.write("\n")
        keys.flush()
        assert term.confirmed()
        keys.close()
        with pytest.raises(TeleopError, match="stdin closed"):
            term.confirmed()
