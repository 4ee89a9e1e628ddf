"""One recording policy owns the defaults: `teleop record`, `teleop doctor` and `teleop-gui`
start from the same start checks, and the engine's default is the same policy."""

from __future__ import annotations

import inspect

from teleop.arguments import policy_from
from teleop.cli.main import build_parser
from teleop.doctor import run_checks
from teleop.recording.policy import DEFAULT_POLICY, RecordingPolicy
from teleop.recording.run import run_record, start_session
from ui.app import build_parser as gui_parser


def test_record_doctor_and_the_gui_share_the_policy_defaults():
    cli = build_parser()
    record = policy_from(cli.parse_args(["record", "--rig", "r", "--operator", "o", "--task", "t"]))
    doctor = policy_from(cli.parse_args(["doctor", "--rig", "r"]))
    gui = policy_from(gui_parser().parse_args([]))
    assert record == RecordingPolicy()
    assert doctor == gui == record  # not only the start checks: nothing else differs either


def test_options_reach_the_policy():
    cli = build_parser()
    args = cli.parse_args(
        ["record", "--rig", "r", "--operator", "o", "--task", "t", "--min-free-gb", "3",
         "--max-pose-delta", "0.5", "--max-calibration-age-days", "2", "--rate", "100",
         "--stop-free-gb", "1", "--uncalibrated"]
    )  # fmt: skip
    assert policy_from(args) == RecordingPolicy(
        rate_hz=100.0, min_free_gb=3.0, stop_free_gb=1.0, max_pose_delta_rad=0.5,
        max_calibration_age_days=2.0, allow_uncalibrated=True,
    )  # fmt: skip


def test_the_engine_defaults_are_the_same_policy():
    for fn in (start_session, run_record, run_checks):
        assert inspect.signature(fn).parameters["policy"].default is DEFAULT_POLICY
