"""The scripted operator: repeatable for a seed, inside the joint limits, smooth like a hand,
and doing a recognisable pick-and-place task."""

from __future__ import annotations

import numpy as np
import pytest

from rigs.spec import load_rig
from rigs.virtual.operator import ScriptedOperator

SPEC = load_rig("sim-bimanual").spec
LEFT = SPEC.arm("left_leader")
RIGHT = SPEC.arm("right_leader")
GRIPPER = LEFT.joint_names.index("gripper")


def trajectory(op: ScriptedOperator, seconds: float, dt: float) -> np.ndarray:
    return np.array([op.angles(t) for t in np.arange(0.0, seconds, dt)])


def test_same_seed_same_motion_and_order_of_queries_does_not_matter():
    times = np.linspace(0.0, 90.0, 400)
    a = ScriptedOperator(LEFT, seed=11, side="left")
    forward = np.array([a.angles(t) for t in times])
    b = ScriptedOperator(LEFT, seed=11, side="left")
    backward = np.array([b.angles(t) for t in times[::-1]])[::-1]
    assert np.array_equal(forward, backward)


def test_seeds_and_arms_differ():
    times = np.linspace(5.0, 60.0, 200)
    base = np.array([ScriptedOperator(LEFT, 1, "left").angles(t) for t in times])
    other_seed = np.array([ScriptedOperator(LEFT, 2, "left").angles(t) for t in times])
    other_arm = np.array([ScriptedOperator(RIGHT, 1, "right").angles(t) for t in times])
    assert np.abs(base - other_seed).mean() > 0.05
    assert np.abs(base - other_arm).mean() > 0.05


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("arm,side", [(LEFT, "left"), (RIGHT, "right")])
def test_inside_limits_and_smooth_like_a_hand(arm, side, seed):
    dt = 0.005
    q = trajectory(ScriptedOperator(arm, seed, side), 200.0, dt)
    lo = np.array([j.min_rad for j in arm.joints])
    hi = np.array([j.max_rad for j in arm.joints])
    assert (q >= lo).all() and (q <= hi).all()
    velocity = np.diff(q, axis=0) / dt
    acceleration = np.diff(velocity, axis=0) / dt
    assert np.abs(velocity).max() < 1.7  # rad/s, well under 2
    assert np.abs(acceleration).max() < 15.0  # rad/s^2: no jumps or kinks
    assert np.isfinite(q).all()


def test_it_does_a_pick_and_place_task_that_varies_between_cycles():
    op = ScriptedOperator(LEFT, seed=5, side="left")
    times = np.arange(0.0, 120.0, 0.05)
    phases = [op.phase(t) for t in times]
    for name in ("reach", "close", "lift", "place", "release", "return", "rest"):
        assert name in phases
    assert op.cycle(119.0) >= 5  # several cycles in two minutes

    q = np.array([op.angles(t) for t in times])
    holding = np.array([op.holding(t) for t in times])
    reaching = np.array([p == "reach" for p in phases])
    # The gripper is closed while holding and open while reaching.
    assert (
        q[holding & np.array([p == "lift" for p in phases]), GRIPPER].max()
        < q[reaching, GRIPPER].min()
    )
    # While holding there is an object the follower's gripper closes on.
    obj = [op.object_rad(t) for t in times[holding]]
    assert all(
        o is not None and LEFT.joints[GRIPPER].min_rad < o < LEFT.joints[GRIPPER].max_rad
        for o in obj
    )
    assert op.object_rad(0.0) is None

    # Where it reaches differs from cycle to cycle.
    reach_ends = []
    for k in range(4):
        t_end = max(
            t for t, p in zip(times, phases, strict=True) if p == "reach" and op.cycle(t) == k
        )
        reach_ends.append(op.angles(t_end))
    spread = np.ptp(np.array(reach_ends), axis=0)
    assert spread.max() > 0.1


def test_side_must_be_left_or_right():
    with pytest.raises(ValueError, match="side"):
        ScriptedOperator(LEFT, 0, "middle")
