"""The loop's mapping and clamps: what reaches a follower is bounded in range and step."""

from __future__ import annotations

import numpy as np

from calibration.mapping import JointMapping
from rigs.spec import load_rig
from teleop.control.safety import Clamp

SPEC = load_rig("sim-bimanual").spec
FOLLOWER = SPEC.arm("left_follower")


def test_identity_mapping_passes_leader_angles_through():
    m = JointMapping.identity("left_leader", "left_follower", 7)
    x = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(m.map(x), x, atol=1e-12)


def test_mapping_applies_direction_and_offset():
    m = JointMapping(
        "l", "f", offset_rad=np.full(7, 0.5), direction=np.array([1, -1, 1, 1, 1, 1, -1.0])
    )
    out = m.map(np.ones(7))
    assert out[0] == 1.5 and out[1] == -0.5 and out[6] == -0.5


def test_clamp_limits_joints_to_their_range():
    clamp = Clamp.for_arm(FOLLOWER, SPEC.safety)
    target = np.array([j.max_rad + 1.0 for j in FOLLOWER.joints])
    previous = target.copy()  # no step limit in play
    out = clamp.apply(target, np.array([j.max_rad for j in FOLLOWER.joints]))
    np.testing.assert_allclose(out, [j.max_rad for j in FOLLOWER.joints])
    assert clamp.limit_hits == 1
    assert previous is not out


def test_clamp_bounds_the_step_per_cycle():
    clamp = Clamp.for_arm(FOLLOWER, SPEC.safety)
    step = SPEC.safety.max_step_rad
    previous = np.zeros(7)
    target = np.array([1.0, -1.0, 0.01, 0, 0, 0, 0])
    out = clamp.apply(target, previous)
    np.testing.assert_allclose(out, [step, -step, 0.01, 0, 0, 0, 0])
    assert clamp.step_hits == 1
    # Repeated cycles converge to the target without ever exceeding the step.
    cmd = out
    for _ in range(20):
        new = clamp.apply(target, cmd)
        assert np.max(np.abs(new - cmd)) <= step + 1e-12
        cmd = new
    np.testing.assert_allclose(cmd, target)


def test_margin_shrinks_the_range():
    safety = SPEC.safety.model_copy(update={"joint_limit_margin_rad": 0.1})
    clamp = Clamp.for_arm(FOLLOWER, safety)
    assert clamp.upper_rad[0] == FOLLOWER.joints[0].max_rad - 0.1
