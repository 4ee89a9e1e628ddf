"""Mapping through records (round trip, gripper normalisation, turn invariance) and the
pure pre-recording checks."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from calibration import checks
from calibration.mapping import JointMapping, mappings_for
from calibration.records import CalibrationError, CalibrationMissingError, parse_utc
from calibration.store import CalibrationStore
from rigs.dynamixel.bus import MotorInfo
from tests.calibration.conftest import SPEC, arm_record, camera_rec

LEADER_OFF = [0.4, -0.2, 2.9, 0.1, 0.0, -0.3, 0.05]
LEADER_DIR = [1, -1, 1, 1, -1, 1, 1]
FOLLOWER_OFF = [-0.1, 0.2, 0.05, -0.3, 0.15, 0.0, -0.02]
FOLLOWER_DIR = [-1, -1, 1, 1, 1, -1, -1]
LEADER_GRIP = (1.3, -0.5)  # open, closed
FOLLOWER_GRIP = (-0.9, 0.6)  # reversed and narrower


def _records(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    for side in ("left", "right"):
        store.save(
            arm_record(
                SPEC,
                f"{side}_leader",
                offsets=LEADER_OFF,
                directions=LEADER_DIR,
                gripper=LEADER_GRIP,
            )
        )
        store.save(
            arm_record(
                SPEC,
                f"{side}_follower",
                offsets=FOLLOWER_OFF,
                directions=FOLLOWER_DIR,
                gripper=FOLLOWER_GRIP,
            )
        )
    return store.active(SPEC.id)


def test_mapping_round_trips_and_follows_directions(tmp_path: Path):
    active = _records(tmp_path)
    m = mappings_for(SPEC, active)["left_follower"]
    assert m.leader == "left_leader"
    assert m.record_ids == (active["left_leader"].id, active["left_follower"].id)
    rng = np.random.default_rng(1)
    for _ in range(50):
        joint = rng.uniform(-1.2, 1.2, 7)
        leader = np.array(LEADER_OFF) + np.array(LEADER_DIR) * joint
        goal = m.map(leader)
        body = slice(0, 6)  # the gripper scales (below)
        np.testing.assert_allclose(
            goal[body], (np.array(FOLLOWER_OFF) + np.array(FOLLOWER_DIR) * joint)[body], atol=1e-12
        )
        np.testing.assert_allclose(np.angle(np.exp(1j * (m.unmap(goal) - leader))), 0.0, atol=1e-12)


def test_gripper_closed_and_open_map_onto_the_followers(tmp_path: Path):
    m = mappings_for(SPEC, _records(tmp_path))["right_follower"]
    g = SPEC.arm("right_follower").joint_names.index("gripper")
    for leader_value, follower_value in zip(LEADER_GRIP, FOLLOWER_GRIP, strict=True):
        x = np.zeros(7)
        x[g] = leader_value
        assert m.map(x)[g] == pytest.approx(follower_value, abs=1e-12)
    x[g] = 0.5 * (LEADER_GRIP[0] + LEADER_GRIP[1])
    assert m.map(x)[g] == pytest.approx(0.5 * (FOLLOWER_GRIP[0] + FOLLOWER_GRIP[1]))
    assert m.goal_lower_rad[g] == pytest.approx(min(FOLLOWER_GRIP))
    assert m.goal_upper_rad[g] == pytest.approx(max(FOLLOWER_GRIP))


def test_a_reading_that_counted_a_whole_turn_maps_the_same(tmp_path: Path):
    m = mappings_for(SPEC, _records(tmp_path))["left_follower"]
    # The elbow's offset is near +pi: past the wrap the reading is either ~3.3 (multi-turn,
    # torque off since power-on) or ~-2.98 (after a power cycle), the same position.
    x = np.array(LEADER_OFF) + 0.4 * np.array(LEADER_DIR)
    y = x.copy()
    y[2] -= 2 * math.pi
    assert x[2] > math.pi
    np.testing.assert_allclose(m.map(x), m.map(y), atol=1e-12)


def test_identity_and_the_old_constructor_still_work():
    m = JointMapping.identity("l", "f", 3)
    np.testing.assert_array_equal(m.map(np.array([0.1, -0.2, 3.0])), [0.1, -0.2, 3.0])
    legacy = JointMapping("l", "f", offset_rad=np.full(3, 0.5), direction=np.array([1, -1, 1.0]))
    np.testing.assert_allclose(legacy.map(np.ones(3)), [1.5, -0.5, 1.5])
    assert legacy.direction is legacy.gain


def test_mappings_need_a_record_per_arm_that_fits_the_rig(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    store.save(arm_record(SPEC, "left_leader"))
    with pytest.raises(CalibrationMissingError, match="arm left_follower .* --arm left_follower"):
        mappings_for(SPEC, store.active(SPEC.id))
    other = SPEC.model_copy(
        update={
            "arms": [
                a.model_copy(update={"gripper": None, "joints": a.joints[:-1]}) for a in SPEC.arms
            ]
        }
    )
    for a in SPEC.arms:
        store.save(arm_record(SPEC, a.name))
    with pytest.raises(CalibrationError, match="has joints .* the rig file has"):
        mappings_for(other, store.active(SPEC.id))


# -- checks ---------------------------------------------------------------------------------


def test_pose_delta_refuses_naming_arm_joint_and_delta(tmp_path: Path):
    active = _records(tmp_path)
    mappings = mappings_for(SPEC, active)
    joint = np.array([0.1, -0.5, 0.6, 0.0, 0.3, 0.0, 0.0])
    leader = np.array(LEADER_OFF) + np.array(LEADER_DIR) * joint
    follower = np.array(FOLLOWER_OFF) + np.array(FOLLOWER_DIR) * joint
    follower[6] = FOLLOWER_GRIP[0] + (FOLLOWER_GRIP[1] - FOLLOWER_GRIP[0]) * (
        (leader[6] - LEADER_GRIP[0]) / (LEADER_GRIP[1] - LEADER_GRIP[0])
    )
    positions = {"left_leader": leader, "left_follower": follower.copy()}
    assert checks.pose_deltas(SPEC, mappings, positions) == []
    positions["left_follower"][1] += 0.95  # the follower's shoulder stands 0.95 rad away
    (problem,) = checks.pose_deltas(SPEC, mappings, positions)
    assert (problem.subject, problem.joint, problem.severity) == (
        "left_follower",
        "shoulder",
        "fail",
    )
    assert problem.measured == "-0.95 rad from left_leader"
    assert problem.threshold == "0.80 rad"
    assert "move left_leader's shoulder" in problem.fix
    line = str(problem)
    assert "\n" not in line and "left_follower.shoulder" in line and "0.95" in line
    # The threshold is configurable.
    assert checks.pose_deltas(SPEC, mappings, positions, threshold_rad=1.0) == []


def test_missing_stale_and_mismatching_records(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    store.save(arm_record(SPEC, "left_leader", created_utc="2025-01-01T00:00:00.000000Z"))
    store.save(arm_record(SPEC, "right_leader"))
    store.save(camera_rec(SPEC, "left_wrist", serial="AAA", width=320, height=240))
    active = store.active(SPEC.id)
    missing = checks.missing_records(SPEC, active)
    assert {(p.subject, p.severity) for p in missing} == {
        ("left_follower", "fail"),
        ("right_follower", "fail"),
        ("overhead", "warn"),
        ("low", "warn"),
        ("right_wrist", "warn"),
    }
    strict = checks.missing_records(SPEC, active, cameras_required=True)
    assert all(p.severity == "fail" for p in strict)

    now = parse_utc("2025-01-10T00:00:00.000000Z")
    (stale,) = [p for p in checks.stale_records(active, now=now) if p.subject == "left_leader"]
    assert stale.measured.endswith("9.0 days old") and stale.threshold == "7 days"
    assert checks.stale_records(active, now=now, max_age_days=10) == [] or all(
        p.subject != "left_leader" for p in checks.stale_records(active, now=now, max_age_days=10)
    )

    # A motor answering with another model than the record, a new firmware, a camera swap.
    live = [
        MotorInfo(1, "waist", "XM430-W350", 1020, 53),
        MotorInfo(2, "shoulder", "XM430-W350", 1020, 52),
    ]
    problems = checks.record_mismatches(
        SPEC, active, motors={"left_leader": live}, camera_serials={"left_wrist": "BBB"}
    )
    found = {(p.check, p.subject, p.severity) for p in problems}
    assert ("motor firmware", "left_leader", "warn") in found
    assert ("camera serial", "left_wrist", "fail") in found
    assert ("camera resolution", "left_wrist", "fail") in found
    wrong_model = SPEC.model_copy(
        update={
            "arms": [
                a.model_copy(
                    update={
                        "joints": [a.joints[0].model_copy(update={"model": "XL430-W250"})]
                        + a.joints[1:]
                    }
                )
                if a.name == "right_leader"
                else a
                for a in SPEC.arms
            ]
        }
    )
    (model,) = [
        p for p in checks.record_mismatches(wrong_model, active) if p.check == "record motors"
    ]
    assert model.subject == "right_leader" and model.joint == "waist"
    assert "XM430-W350" in model.measured and "XL430-W250" in model.threshold


def test_follower_range_across_the_wrap_disk_and_latency():
    m = JointMapping(
        "l",
        "f",
        np.zeros(7),
        np.ones(7),
        goal_lower_rad=np.full(7, -1.0),
        goal_upper_rad=np.array([1.0, 1, 1, 1, 1, 1, 3.3]),
    )
    (wrap,) = checks.follower_wraps(SPEC, {"left_follower": m})
    assert (wrap.subject, wrap.joint, wrap.check) == ("left_follower", "gripper", "follower wrap")
    assert checks.disk_space("/d", int(50e9), min_free_gb=1, warn_free_gb=10) == []
    assert checks.disk_space("/d", int(5e9), min_free_gb=1, warn_free_gb=10)[0].severity == "warn"
    assert checks.disk_space("/d", int(0.5e9), min_free_gb=1, warn_free_gb=10)[0].severity == "fail"
    assert checks.latency_timer("a", "/dev/ttyUSB0", 16)[0].measured == "/dev/ttyUSB0: 16 ms"
    assert checks.latency_timer("a", "/dev/pts/3", None) == []


def test_records_in_the_future_are_flagged(tmp_path: Path):
    store = CalibrationStore(tmp_path)
    store.save(arm_record(SPEC, "left_leader", created_utc="2025-01-01T00:00:00.000000Z"))
    now = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)  # this computer's clock is behind
    (p,) = checks.stale_records(store.active(SPEC.id), now=now)
    assert p.severity == "fail" and "future" in p.measured and "clock" in p.fix
