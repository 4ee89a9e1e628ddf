"""Shared pieces: hand-made records for pure tests, and one virtual rig (seeded mounting)
whose four arms are calibrated once per module, in parallel, by the rig's own hands (module
scope, so the rig's process is gone before other packages' tests run)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from calibration.procedure import CalibrationProcedure, VirtualPerformer, run_steps
from calibration.records import (
    ArmCalibration,
    CalibrationRecord,
    CameraCalibration,
    CameraIntrinsics,
    GripperCalibration,
    JointCalibration,
    MotorRecord,
    format_utc,
    utc_now,
)
from calibration.store import CalibrationStore, StoredRecord
from rigs.dynamixel import control_table as ct
from rigs.dynamixel.bus import DynamixelBus
from rigs.spec import RigSpec, load_rig
from rigs.virtual.launcher import VirtualRig
from teleop.cli import calibration as calibration_cli
from teleop.cli import doctor as doctor_cli

SPEC = load_rig("sim-bimanual").spec
TICK = ct.RAD_PER_TICK


def arm_record(
    spec: RigSpec,
    arm_name: str,
    *,
    offsets: list[float] | None = None,
    directions: list[int] | None = None,
    gripper: tuple[float, float] = (1.2, -0.4),  # open, closed (bus angles)
    created_utc: str | None = None,
    operator: str = "op7",
) -> CalibrationRecord:
    """A plausible arm record built by hand (no rig needed)."""
    arm = spec.arm(arm_name)
    n = len(arm.joints)
    offsets = offsets or [0.0] * n
    directions = directions or [1] * n
    joints = [
        JointCalibration(
            name=j.name,
            offset_rad=offsets[k],
            offset_ticks=int(round(offsets[k] / TICK)) + ct.CENTER_TICKS,
            direction=directions[k],  # type: ignore[arg-type]
            min_rad=j.min_rad,
            max_rad=j.max_rad,
        )
        for k, j in enumerate(arm.joints)
    ]
    motors = []
    for j in arm.joints:
        motors.append(
            MotorRecord(id=j.id, joint=j.name, model=j.model, model_number=1, firmware=52)
        )
        if j.shadow_id is not None:
            motors.append(
                MotorRecord(
                    id=j.shadow_id,
                    joint=j.name,
                    model=j.model,
                    model_number=1,
                    firmware=52,
                    shadow_of=j.id,
                )
            )
    return CalibrationRecord(
        rig_id=spec.id,
        operator=operator,
        created_utc=created_utc or format_utc(utc_now()),
        calibration=ArmCalibration(
            arm=arm.name,
            role=arm.role,
            follows=arm.follows,
            port=arm.port,
            motors=motors,
            joints=joints,
            gripper=GripperCalibration(
                joint=arm.gripper or "", open_rad=gripper[0], closed_rad=gripper[1]
            )
            if arm.gripper
            else None,
        ),
    )


def camera_rec(
    spec: RigSpec, name: str, *, serial: str = "SER1", width: int = 640, height: int = 480
) -> CalibrationRecord:
    cam = next(c for c in spec.cameras if c.name == name)
    return CalibrationRecord(
        rig_id=spec.id,
        operator="op7",
        created_utc=format_utc(utc_now()),
        calibration=CameraCalibration(
            camera=name,
            driver=cam.driver,
            serial=serial,
            intrinsics=CameraIntrinsics(
                width=width,
                height=height,
                fx=600.0,
                fy=600.0,
                cx=320.0,
                cy=240.0,
                distortion_model="plumb_bob",
                coeffs=[0.0] * 5,
            ),
        ),
    )


@dataclass
class Calibrated:
    """A running seeded virtual rig, its four arms calibrated into ``data_root``."""

    spec: RigSpec
    rig: VirtualRig
    data_root: Path
    records: dict[str, StoredRecord]
    reference: dict[str, dict[str, float]]


def _calibrate(rig: VirtualRig, spec: RigSpec, name: str) -> tuple[CalibrationRecord, dict]:
    arm = spec.arm(name).model_copy(update={"port": rig.ports[name]})
    with DynamixelBus(arm) as bus:
        proc = CalibrationProcedure(spec, name, bus, operator="op-test")
        record = run_steps(proc, performer=VirtualPerformer(rig, proc))
    return record, dict(proc.reference_rad)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calibrated]:
    data_root = tmp_path_factory.mktemp("data")
    rig = VirtualRig(SPEC, seed=3, mounting="seeded")
    rig.start()
    try:
        names = [a.name for a in SPEC.arms]
        # One person per arm: the four calibrations run at once, each on its own bus.
        with ThreadPoolExecutor(len(names)) as pool:
            results = dict(
                zip(names, pool.map(lambda n: _calibrate(rig, SPEC, n), names), strict=True)
            )
        store = CalibrationStore(data_root)
        records = {n: store.save(r) for n, (r, _) in results.items()}
        yield Calibrated(SPEC, rig, data_root, records, {n: ref for n, (_, ref) in results.items()})
    finally:
        rig.close()


def wait_until(t_monotonic: float) -> None:
    """Sleep until a monotonic time (a virtual move's end) has passed."""
    time.sleep(max(0.0, t_monotonic - time.monotonic()) + 0.01)


def wait_pose(rig: VirtualRig, arm: str, angles: np.ndarray, end: float) -> None:
    """Wait until a virtual "pose" move has put ``arm`` at ``angles`` (after its end time;
    on a loaded machine the servo process may get to it later)."""
    wait_until(end)
    deadline = time.monotonic() + 30
    while not np.allclose(joint_pose(rig, arm), angles, atol=1e-6):
        assert time.monotonic() < deadline, f"{arm} never reached the pose"
        time.sleep(0.01)


def joint_pose(rig: VirtualRig, arm: str) -> np.ndarray:
    """The true joint angles of an arm (the shared world the cameras render from)."""
    assert rig.world is not None
    return np.array(rig.world.read(arm), dtype=float)


def cli(*argv: str) -> int:
    """Run one command as ``teleop ARGV`` would (the handler's exit status)."""
    parser = argparse.ArgumentParser(prog="teleop")
    sub = parser.add_subparsers(dest="command", required=True)
    calibration_cli.add_parser(sub)
    doctor_cli.add_parser(sub)
    args = parser.parse_args(list(argv))
    return int(args.func(args))
