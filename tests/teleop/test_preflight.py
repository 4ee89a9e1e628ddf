"""The one pre-flight evaluation: what the recorder refuses at start is what `teleop doctor`
fails, for the same records, readings and policy."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from calibration.store import CalibrationStore
from teleop.doctor import Status, run_checks
from teleop.recording.policy import RecordingPolicy
from teleop.recording.preflight import evaluate
from tests.calibration.conftest import SPEC, arm_record

_NOT_PREFLIGHT = {"rig file", "disk space", "bus port", "latency timer", "motors"}


def _calibrate(root: Path) -> None:
    store = CalibrationStore(root)
    for arm in SPEC.arms:
        store.save(arm_record(SPEC, arm.name))


def _doctor_failures(root: Path, positions, policy, now) -> set[tuple[str, str]]:
    rows = run_checks(SPEC, root, open_buses=False, positions=positions, policy=policy, now=now)
    return {
        (r.check, r.where)
        for r in rows
        if r.status == Status.FAIL and r.check not in _NOT_PREFLIGHT
    }


def _standing_still(root: Path) -> dict[str, np.ndarray]:
    """Every follower exactly where its leader sends it (leaders at 0.1 rad)."""
    pre = evaluate(SPEC, CalibrationStore(root).active(SPEC.id), motors={}, positions={})
    assert pre.mappings is not None
    positions = {}
    for f in SPEC.followers:
        leader = np.full(len(SPEC.arm(f.follows or "").joints), 0.1)
        positions[f.follows or ""] = leader
        positions[f.name] = pre.mappings[f.name].map(leader)
    return positions


def test_a_follower_far_from_its_leader_fails_both_the_doctor_and_the_start(tmp_path: Path):
    _calibrate(tmp_path)
    active = CalibrationStore(tmp_path).active(SPEC.id)
    positions = _standing_still(tmp_path)
    now = dt.datetime.now(dt.UTC)
    policy = RecordingPolicy()
    assert evaluate(SPEC, active, motors={}, positions=positions, now=now).failures == []
    assert _doctor_failures(tmp_path, positions, policy, now) == set()

    shoulder = SPEC.arm("left_follower").joint_names.index("shoulder")
    positions["left_follower"] = positions["left_follower"].copy()
    positions["left_follower"][shoulder] += 1.0
    start = evaluate(SPEC, active, motors={}, positions=positions, policy=policy, now=now)
    assert {(p.check, p.where) for p in start.failures} == {
        ("pose delta", "left_follower.shoulder")
    }
    assert _doctor_failures(tmp_path, positions, policy, now) == {
        ("pose delta", "left_follower.shoulder")
    }
    # A looser policy lets both through.
    loose = RecordingPolicy(max_pose_delta_rad=1.2)
    assert evaluate(SPEC, active, motors={}, positions=positions, policy=loose).failures == []
    assert _doctor_failures(tmp_path, positions, loose, now) == set()


def test_old_records_fail_both_and_stop_before_the_pose_is_judged(tmp_path: Path):
    _calibrate(tmp_path)
    active = CalibrationStore(tmp_path).active(SPEC.id)
    positions = _standing_still(tmp_path)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    policy = RecordingPolicy(max_calibration_age_days=1)
    start = evaluate(SPEC, active, motors={}, positions=positions, policy=policy, now=later)
    expected = {("calibration age", arm.name) for arm in SPEC.arms}
    assert {(p.check, p.where) for p in start.failures} == expected
    assert start.mappings is None  # followers would not follow records that failed
    assert _doctor_failures(tmp_path, positions, policy, later) == expected


def test_without_records_both_name_each_arm_unless_uncalibrated_is_allowed(tmp_path: Path):
    start = evaluate(SPEC, {}, motors={}, positions={})
    expected = {("calibration record", arm.name) for arm in SPEC.arms}
    assert {(p.check, p.where) for p in start.failures} == expected
    now = dt.datetime.now(dt.UTC)
    assert _doctor_failures(tmp_path, {}, RecordingPolicy(), now) == expected

    allowed = evaluate(
        SPEC, {}, motors={}, positions={}, policy=RecordingPolicy(allow_uncalibrated=True)
    )
    assert allowed.failures == [] and allowed.mappings is not None
    assert set(allowed.mappings) == {f.name for f in SPEC.followers}
