"""``teleop doctor``: pre-flight checks of a rig, printed as an OK / WARN / FAIL table.

:func:`run_checks` is the same list of checks the recorder runs at record start: the rig file
loads; every bus port exists and its USB latency timer; every motor answers with the right
model; every arm (and camera) has a calibration record that fits the rig's motors and
cameras and is younger than the policy's ``max_calibration_age_days``; each follower stands
within its ``max_pose_delta_rad`` of where its leader would send it; the data root has the
policy's ``min_free_gb`` free (:class:`~teleop.recording.policy.RecordingPolicy`: the same
defaults as ``teleop record``).
Checks only read: no torque or mode is changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from calibration import checks
from calibration.checks import Problem
from calibration.records import CalibrationError, utc_now
from calibration.store import CalibrationStore, StoredRecord
from rigs.cameras.base import Camera
from rigs.dynamixel.bus import BusError, DynamixelBus, MotorInfo, ftdi_latency_timer_ms
from rigs.spec import LoadedRig, RigSpec, RigSpecError, load_rig
from rigs.virtual.launcher import VirtualRigError
from teleop.recording.disk import hours_left, recording_rate_bytes_s
from teleop.recording.policy import DEFAULT_POLICY, RecordingPolicy
from teleop.recording.preflight import evaluate
from teleop.rig_runtime import open_camera, open_rig_ports
from teleop.session import resolve_data_root


class Status(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's table."""

    status: Status
    check: str
    subject: str
    joint: str | None = None
    measured: str = ""
    threshold: str = ""
    fix: str = ""

    @classmethod
    def from_problem(cls, p: Problem) -> CheckResult:
        status = Status.FAIL if p.severity == "fail" else Status.WARN
        return cls(status, p.check, p.subject, p.joint, p.measured, p.threshold, p.fix)

    @property
    def where(self) -> str:
        return f"{self.subject}.{self.joint}" if self.joint else self.subject

    def __str__(self) -> str:
        limit = f" (limit {self.threshold})" if self.threshold else ""
        fix = f"; {self.fix}" if self.fix else ""
        return f"{self.status} {self.check} {self.where}: {self.measured}{limit}{fix}"


_NOT_RECORD_CHECKS = frozenset({"calibration mapping", "follower wrap", "pose delta"})
"""Problems of the evaluation that are not about a record itself (its row stays OK)."""


def _ok(check: str, subject: str, measured: str, joint: str | None = None) -> CheckResult:
    return CheckResult(Status.OK, check, subject, joint, measured)


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _bus_checks(
    spec: RigSpec,
    ports: Mapping[str, str],
    open_buses: bool,
    positions: dict[str, np.ndarray],
    motors: dict[str, list[MotorInfo]],
) -> list[CheckResult]:
    out: list[CheckResult] = []
    for arm in spec.arms:
        port = ports.get(arm.name, arm.port)
        if port == "virtual" or not os.path.exists(port):
            out.append(
                CheckResult(
                    Status.FAIL,
                    "bus port",
                    arm.name,
                    measured=f"{port} does not exist",
                    fix=f"plug in the adapter or fix 'port' for arm {arm.name} in the rig file",
                )
            )
            continue
        out.append(_ok("bus port", arm.name, port))
        timer = ftdi_latency_timer_ms(port)
        problems = checks.latency_timer(arm.name, port, timer)
        out += [CheckResult.from_problem(p) for p in problems]
        if not problems:
            text = "not an FTDI adapter" if timer is None else f"{timer} ms"
            out.append(_ok("latency timer", arm.name, text))
        if not open_buses:
            continue
        bus = DynamixelBus(arm.model_copy(update={"port": port}), emulated=spec.virtual)
        try:
            found = bus.connect()
            motors[arm.name] = found
            reading = bus.read_state()
            if reading.ok:
                positions[arm.name] = np.asarray(reading.position_rad, dtype=float)
            out.append(_ok("motors", arm.name, f"{len(found)} motors answer with the right model"))
        except BusError as exc:
            out.append(CheckResult(Status.FAIL, "motors", arm.name, measured=str(exc)))
        finally:
            bus.disconnect()
    return out


def _camera_checks(
    cameras: Mapping[str, Camera], notes: Mapping[str, str]
) -> tuple[list[CheckResult], dict[str, str], dict[str, Any]]:
    out: list[CheckResult] = []
    serials: dict[str, str] = {}
    intrinsics: dict[str, Any] = {}
    for name, cam in cameras.items():
        try:
            info = cam.info()
            intrinsics[name] = cam.intrinsics()
            if info.serial:
                serials[name] = info.serial
            out.append(_ok("camera", name, f"{info.model or info.driver} serial {info.serial}"))
        except Exception as exc:  # drivers vary; report, do not crash the checks
            out.append(
                CheckResult(Status.WARN, "camera", name, measured=f"cannot describe it ({exc})")
            )
    for name, note in notes.items():
        out.append(
            CheckResult(
                Status.WARN, "camera", name, measured=f"not opened: {note}", fix="checks skipped"
            )
        )
    return out, serials, intrinsics


def run_checks(
    rig: str | Path | LoadedRig | RigSpec,
    data_root: str | Path,
    *,
    ports: Mapping[str, str] | None = None,
    positions: Mapping[str, np.ndarray] | None = None,
    cameras: Mapping[str, Camera] | None = None,
    camera_notes: Mapping[str, str] | None = None,
    open_buses: bool = True,
    policy: RecordingPolicy = DEFAULT_POLICY,
    warn_free_gb: float = 10.0,
    camera_records_required: bool = False,
    now: dt.datetime | None = None,
) -> list[CheckResult]:
    """Every pre-flight check of ``rig`` (a preset name, path, loaded rig or spec).

    ``ports`` overrides the rig file's ports (the virtual rig's pseudo-terminals). With
    ``open_buses`` each bus is opened, pinged (model check) and read once, then closed, so
    call it while nothing else holds the buses; or pass ``positions`` (bus angles per arm)
    read elsewhere and ``open_buses=False``. ``cameras`` are opened cameras to compare with
    their records; ``camera_notes`` says why a camera was not opened.
    """
    results: list[CheckResult] = []
    if isinstance(rig, RigSpec):
        spec, source = rig, f"rig {rig.id}"
    else:
        try:
            loaded = rig if isinstance(rig, LoadedRig) else load_rig(rig)
        except RigSpecError as exc:
            return [CheckResult(Status.FAIL, "rig file", str(rig), measured=str(exc))]
        spec, source = loaded.spec, loaded.source
    results.append(
        _ok("rig file", spec.id, f"{source}: {len(spec.arms)} arms, {len(spec.cameras)} cameras")
    )

    root = Path(data_root)
    where = _existing_parent(root)
    free = shutil.disk_usage(where).free
    disk = checks.disk_space(
        str(root), free, min_free_gb=policy.min_free_gb, warn_free_gb=warn_free_gb
    )
    rate, basis = recording_rate_bytes_s(spec, root)
    hours = f"about {hours_left(free, rate):.1f} h of recording at {rate / 1e6:.2f} MB/s ({basis})"
    results += [
        CheckResult.from_problem(replace(p, measured=f"{p.measured}; {hours}")) for p in disk
    ]
    if not disk:
        results.append(_ok("disk space", str(root), f"{free / 1e9:.1f} GB free, {hours}"))

    read_positions: dict[str, np.ndarray] = {}
    motors: dict[str, list[MotorInfo]] = {}
    results += _bus_checks(spec, ports or {}, open_buses, read_positions, motors)
    read_positions.update(positions or {})

    cam_rows, serials, intrinsics = _camera_checks(cameras or {}, camera_notes or {})
    results += cam_rows

    try:
        active: dict[str, StoredRecord] = CalibrationStore(root).active(spec.id)
    except CalibrationError as exc:
        results.append(CheckResult(Status.FAIL, "calibration records", spec.id, measured=str(exc)))
        return results
    now = now or utc_now()
    pre = evaluate(
        spec,
        active,
        motors=motors,
        positions=read_positions,
        policy=policy,
        camera_serials=serials,
        camera_intrinsics=intrinsics,
        cameras_required=camera_records_required,
        now=now,
    )
    results += [CheckResult.from_problem(p) for p in pre.problems]
    flagged = {p.subject for p in pre.problems if p.check not in _NOT_RECORD_CHECKS}
    for target, r in active.items():
        if target not in flagged:
            age = (now - r.record.created).total_seconds() / 86400.0
            results.append(
                _ok(
                    "calibration record",
                    target,
                    f"{r.id} by {r.record.operator}, {age:.1f} days old",
                )
            )
    mappings = pre.mappings
    if mappings is None:
        return results
    threshold_rad = policy.max_pose_delta_rad
    measured = {p.subject for p in pre.problems if p.check == "pose delta"}
    for follower in spec.followers:
        m = mappings[follower.name]
        if follower.name in measured:
            continue
        if m.leader in read_positions and follower.name in read_positions:
            goal = m.map(read_positions[m.leader])
            worst = float(np.max(np.abs(goal - read_positions[follower.name])))
            results.append(
                CheckResult(
                    Status.OK,
                    "pose delta",
                    follower.name,
                    measured=f"largest {worst:.2f} rad from {m.leader}",
                    threshold=f"{threshold_rad:.2f} rad",
                )
            )
        else:
            results.append(
                CheckResult(
                    Status.WARN,
                    "pose delta",
                    follower.name,
                    measured="not measured (no reading of the leader and follower)",
                    fix="fix the bus checks above",
                )
            )
    return results


def run_doctor(
    rig: str,
    *,
    data_dir: str | None = None,
    seed: int = 0,
    with_cameras: bool = True,
    **options: Any,
) -> list[CheckResult]:
    """Open the rig (starting the virtual rig, leaders held still), run the checks, close."""
    try:
        loaded = load_rig(rig)
    except RigSpecError as exc:
        return [CheckResult(Status.FAIL, "rig file", rig, measured=str(exc))]
    spec = loaded.spec
    data_root = resolve_data_root(data_dir)
    try:
        with (
            open_rig_ports(spec, seed=seed, hold_operator=True) as (ports, virtual),
            contextlib.ExitStack() as stack,
        ):
            cameras: dict[str, Camera] = {}
            notes: dict[str, str] = {}
            for cam in spec.cameras if with_cameras else []:
                try:
                    cameras[cam.name], _ = open_camera(spec, cam.name, virtual, stack, seed)
                except Exception as exc:  # a driver not ready yet is a note, not a crash
                    notes[cam.name] = f"{type(exc).__name__}: {exc}"
            return run_checks(
                loaded, data_root, ports=ports, cameras=cameras, camera_notes=notes, **options
            )
    except VirtualRigError as exc:
        return [CheckResult(Status.FAIL, "virtual rig", spec.id, measured=str(exc))]
