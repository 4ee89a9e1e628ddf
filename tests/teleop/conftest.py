"""Fixtures for the engine's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigs.spec import load_rig
from teleop.recording.policy import RecordingPolicy
from teleop.recording.run import start_session
from teleop.rig_runtime import RigRuntime


@pytest.fixture()
def recording(tmp_path: Path, calibrated_root):
    """(runtime, recorder) of an open session at 50 Hz on the virtual rig, for fault tests."""
    with RigRuntime(load_rig("sim-bimanual"), seed=2) as runtime:
        recorder, _session = start_session(
            runtime,
            calibrated_root(tmp_path),
            operator="op",
            task="t",
            policy=RecordingPolicy(rate_hz=50.0, min_free_gb=0),
        )
        try:
            yield runtime, recorder
        finally:
            recorder.stop()
