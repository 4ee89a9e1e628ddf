"""The calibration procedure as steps a terminal or a GUI can drive (no ``input()`` here).

:class:`CalibrationProcedure` calibrates one arm on a connected bus. Its ``steps`` are:

1. **torque off** – the arm goes limp so it can be moved by hand (a follower too, as on
   ALOHA: support it);
2. **reference pose** – hold the arm in the reference pose (every joint at its
   ``reference_rad``, 0 by default); the readings become the offsets;
3. **sweep** each joint (not the gripper) – from the reference to its positive end, to its
   negative end and back; live min/max are tracked, the first excursion gives the direction;
4. **open** and **close** the gripper fully.

A driver shows ``current`` (title, prompt), polls ``readings()`` for live values as often as
it likes, and calls ``confirm()`` when the person says the step is done; ``confirm()``
raises :class:`CalibrationStepError` (and the step stays current, its data reset) when the
measurement cannot be used. After the last step ``result()`` is the record.

:func:`run_steps` is that driver loop with callbacks; a :class:`Performer` moves the arm
instead of a person (:class:`VirtualPerformer`: the virtual rig's calibration moves).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from calibration.records import (
    ArmCalibration,
    CalibrationError,
    CalibrationRecord,
    CameraCalibration,
    CameraIntrinsics,
    GripperCalibration,
    IntrinsicsLike,
    JointCalibration,
    MotorRecord,
    format_utc,
    utc_now,
    wrap_rad,
)
from rigs.dynamixel import control_table as ct
from rigs.dynamixel.bus import JointReading, MotorInfo
from rigs.spec import Arm, RigSpec
from rigs.virtual.launcher import VirtualRig


class CalibrationStepError(CalibrationError):
    """A step's measurement cannot be used; the message says what to do again."""


class StepKind(enum.StrEnum):
    TORQUE_OFF = "torque_off"
    REFERENCE = "reference"
    SWEEP = "sweep"
    GRIPPER_OPEN = "gripper_open"
    GRIPPER_CLOSE = "gripper_close"


@dataclass(frozen=True)
class Step:
    """One step: what it is called, what the person does, and the joint it is about."""

    kind: StepKind
    title: str
    prompt: str
    joint: str | None = None


@dataclass(frozen=True)
class JointLive:
    """One joint in one live reading.

    ``bus_rad``/``ticks``: the raw reading. After the reference step ``from_reference_rad`` is
    the motion since the reference pose (in the servo's sense of rotation; the direction is
    known only after the sweep). During a sweep of this joint ``min_rad``/``max_rad`` are the
    extremes of that motion seen so far.
    """

    joint: str
    bus_rad: float
    ticks: int
    from_reference_rad: float | None = None
    min_rad: float | None = None
    max_rad: float | None = None


@dataclass(frozen=True)
class LiveReadings:
    """One read of the whole arm for display; ``ok`` is False if the read failed."""

    ok: bool
    joints: list[JointLive]


class BusLike(Protocol):
    """What the procedure uses of :class:`rigs.dynamixel.bus.DynamixelBus`."""

    motors: list[MotorInfo]

    def read_state(self) -> JointReading: ...

    def set_torque(self, enabled: bool) -> None: ...

    def hardware_info(self) -> dict[str, str]: ...


def default_reference_rad(arm: Arm) -> dict[str, float]:
    """The reference pose: every joint at 0, or mid-range where 0 is outside its limits."""
    return {
        j.name: 0.0 if j.min_rad < 0.0 < j.max_rad else 0.5 * (j.min_rad + j.max_rad)
        for j in arm.joints
    }


# A sweep shorter than this is not a sweep; a reading this close to half a turn from the
# reference could be either side of it.
MIN_SWEEP_RAD = 0.2
MAX_FROM_REFERENCE_RAD = math.pi - 0.15
MIN_GRIPPER_TRAVEL_RAD = 0.1


class _Sweep:
    def __init__(self) -> None:
        self.values: list[float] = []

    def add(self, rel: float) -> None:
        if len(self.values) < 200_000:
            self.values.append(rel)

    @property
    def lo(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def hi(self) -> float | None:
        return max(self.values) if self.values else None


class CalibrationProcedure:
    """Step-by-step calibration of arm ``arm_name`` of ``spec`` over a connected ``bus``.

    ``operator`` is who calibrates. ``reference_rad`` overrides the reference pose per joint
    (joint angles; :func:`default_reference_rad` otherwise). ``samples`` reads are averaged
    (median) for each held pose.
    """

    def __init__(
        self,
        spec: RigSpec,
        arm_name: str,
        bus: BusLike,
        *,
        operator: str,
        reference_rad: Mapping[str, float] | None = None,
        samples: int = 5,
        software_version: str = "",
    ) -> None:
        self.spec = spec
        self.arm = spec.arm(arm_name)
        self.bus = bus
        self.operator = operator
        self.samples = max(1, samples)
        self.software_version = software_version
        ref = default_reference_rad(self.arm)
        ref.update(reference_rad or {})
        self.reference_rad = ref
        self.names = self.arm.joint_names
        self.steps = self._build_steps()
        self._index = 0
        self._offset: np.ndarray | None = None  # bus angle at the reference, within one turn
        self._offset_ticks: np.ndarray | None = None
        self._sweeps: dict[str, _Sweep] = {}
        self._found: dict[
            str, tuple[Literal[1, -1], float, float]
        ] = {}  # joint -> direction, lo, hi
        self._gripper: dict[str, float] = {}  # "open"/"closed" -> bus angle near the offset

    # -- steps --------------------------------------------------------------------------------
    def _build_steps(self) -> list[Step]:
        arm = self.arm
        limp = (
            "support the arm: it will go limp"
            if arm.role == "follower"
            else "the leader is moved by hand"
        )
        ref_text = ", ".join(f"{n} {v:+.2f}" for n, v in self.reference_rad.items())
        steps = [
            Step(
                StepKind.TORQUE_OFF,
                f"{arm.name}: torque off",
                f"Torque goes off on every motor of {arm.name} ({limp}). Confirm to switch it off.",
            ),
            Step(
                StepKind.REFERENCE,
                f"{arm.name}: reference pose",
                f"Hold {arm.name} still in the reference pose (joint angles in rad: {ref_text}), "
                "then confirm.",
            ),
        ]
        for joint in arm.joints:
            if joint.name == arm.gripper:
                continue
            steps.append(
                Step(
                    StepKind.SWEEP,
                    f"{arm.name}: sweep {joint.name}",
                    f"From the reference pose move {joint.name} to its positive end first, then "
                    "to its negative end, then back to the reference; then confirm.",
                    joint.name,
                )
            )
        if arm.gripper is not None:
            steps += [
                Step(
                    StepKind.GRIPPER_OPEN,
                    f"{arm.name}: open the gripper",
                    f"Open the {arm.gripper} fully and hold it, then confirm.",
                    arm.gripper,
                ),
                Step(
                    StepKind.GRIPPER_CLOSE,
                    f"{arm.name}: close the gripper",
                    f"Close the {arm.gripper} fully and hold it, then confirm.",
                    arm.gripper,
                ),
            ]
        return steps

    @property
    def index(self) -> int:
        """Index of the current step (``len(steps)`` when done)."""
        return self._index

    @property
    def current(self) -> Step | None:
        """The step waiting for confirmation (None when every step is done)."""
        return self.steps[self._index] if self._index < len(self.steps) else None

    @property
    def done(self) -> bool:
        return self._index >= len(self.steps)

    # -- live values --------------------------------------------------------------------------
    def _read(self) -> JointReading:
        return self.bus.read_state()

    def readings(self) -> LiveReadings:
        """One read of the arm; during a sweep it also feeds the joint's live min/max."""
        reading = self._read()
        step = self.current
        pos = np.asarray(reading.position_rad, dtype=float)
        rel = None if self._offset is None else wrap_rad(pos - self._offset)
        if reading.ok and rel is not None and step is not None and step.kind == StepKind.SWEEP:
            k = self.names.index(step.joint or "")
            self._sweeps.setdefault(step.joint or "", _Sweep()).add(float(rel[k]))
        joints = []
        for k, name in enumerate(self.names):
            sweep = self._sweeps.get(name) if step is not None and step.joint == name else None
            joints.append(
                JointLive(
                    name,
                    float(pos[k]),
                    int(round(pos[k] / ct.RAD_PER_TICK)) + ct.CENTER_TICKS,
                    None if rel is None else float(rel[k]),
                    sweep.lo if sweep else None,
                    sweep.hi if sweep else None,
                )
            )
        return LiveReadings(bool(reading.ok), joints)

    def _held(self) -> np.ndarray:
        """Median of ``samples`` good reads: the pose being held."""
        good = []
        for _ in range(self.samples * 3):
            r = self._read()
            if r.ok:
                good.append(np.asarray(r.position_rad, dtype=float))
                if len(good) >= self.samples:
                    break
        if not good:
            raise CalibrationStepError(
                f"{self.arm.name}: no good reading from the bus; check its cable and power, "
                "then confirm again"
            )
        return np.median(np.array(good), axis=0)

    # -- confirming ---------------------------------------------------------------------------
    def reset_step(self) -> None:
        """Forget what the current step measured so far (to do it again)."""
        step = self.current
        if step is not None and step.kind == StepKind.SWEEP:
            self._sweeps.pop(step.joint or "", None)

    def confirm(self) -> None:
        """The person says the current step is done: measure it and move to the next step."""
        step = self.current
        if step is None:
            raise CalibrationStepError(f"{self.arm.name}: every step is already done")
        try:
            self._confirm(step)
        except CalibrationStepError:
            self.reset_step()
            raise
        self._index += 1

    def _confirm(self, step: Step) -> None:
        if step.kind == StepKind.TORQUE_OFF:
            self.bus.set_torque(False)
        elif step.kind == StepKind.REFERENCE:
            held = self._held()
            self._offset = np.array([wrap_rad(float(v)) for v in held])
            self._offset_ticks = np.rint(held / ct.RAD_PER_TICK).astype(int) + ct.CENTER_TICKS
        elif step.kind == StepKind.SWEEP:
            self._confirm_sweep(step.joint or "")
        else:
            assert self._offset is not None
            k = self.names.index(step.joint or "")
            x = float(self._held()[k])
            near = float(self._offset[k] + wrap_rad(x - self._offset[k]))
            key = "open" if step.kind == StepKind.GRIPPER_OPEN else "closed"
            self._gripper[key] = near
            if key == "closed":
                travel = abs(self._gripper["open"] - near)
                if travel < MIN_GRIPPER_TRAVEL_RAD:
                    self._index -= 1  # back to "open": both ends are measured again
                    self._gripper.clear()
                    raise CalibrationStepError(
                        f"{self.arm.name}: the {step.joint} moved only {travel:.3f} rad between "
                        "open and closed; open it fully, confirm, then close it fully"
                    )

    def _confirm_sweep(self, joint: str) -> None:
        sweep = self._sweeps.get(joint)
        values = np.array(sweep.values if sweep else [], dtype=float)
        span = float(values.max() - values.min()) if len(values) else 0.0
        if span < MIN_SWEEP_RAD:
            raise CalibrationStepError(
                f"{self.arm.name}: {joint} moved only {span:.3f} rad; sweep it from the "
                "reference to its positive end, its negative end and back, then confirm"
            )
        peak = float(np.max(np.abs(values)))
        if peak > MAX_FROM_REFERENCE_RAD:
            raise CalibrationStepError(
                f"{self.arm.name}: {joint} went {peak:.2f} rad from the reference pose, too "
                "close to half a turn to tell the side; use a reference pose nearer the middle "
                "of its range (reference_rad)"
            )
        # The person moves to the positive end first: the sign of the first clear excursion.
        first = values[np.argmax(np.abs(values) > 0.3 * peak)]
        direction: Literal[1, -1] = 1 if first > 0 else -1
        self._found[joint] = (direction, float(values.min()), float(values.max()))

    # -- the record ---------------------------------------------------------------------------
    def result(self, *, created_utc: str | None = None, notes: str = "") -> CalibrationRecord:
        """The calibration record of this arm (after every step is confirmed)."""
        if not self.done or self._offset is None or self._offset_ticks is None:
            raise CalibrationStepError(
                f"{self.arm.name}: the calibration is not finished "
                f"(step {self._index + 1} of {len(self.steps)})"
            )
        arm = self.arm
        joints = []
        gripper = None
        for k, name in enumerate(self.names):
            off = float(self._offset[k])
            ref = float(self.reference_rad[name])
            if name == arm.gripper:
                opened, closed = self._gripper["open"], self._gripper["closed"]
                direction: Literal[1, -1] = (
                    1 if opened > closed else -1
                )  # open is the positive sense
                ends = [ref + direction * (v - off) for v in (opened, closed)]
                lo, hi = min(ends), max(ends)
                gripper = GripperCalibration(joint=name, open_rad=opened, closed_rad=closed)
            else:
                direction, rel_lo, rel_hi = self._found[name]
                ends = [ref + direction * rel_lo, ref + direction * rel_hi]
                lo, hi = min(ends), max(ends)
            joints.append(
                JointCalibration(
                    name=name,
                    offset_rad=off,
                    offset_ticks=int(self._offset_ticks[k]),
                    direction=direction,
                    reference_rad=ref,
                    min_rad=lo,
                    max_rad=hi,
                )
            )
        info = self.bus.hardware_info()
        motors = [
            MotorRecord(
                id=m.id,
                joint=m.joint,
                model=m.model,
                model_number=m.model_number,
                firmware=m.firmware,
                shadow_of=m.shadow_of,
            )
            for m in self.bus.motors
        ]
        body = ArmCalibration(
            arm=arm.name,
            role=arm.role,
            follows=arm.follows,
            port=arm.port,
            adapter_serial=info.get("adapter_serial"),
            motors=motors,
            joints=joints,
            gripper=gripper,
        )
        return CalibrationRecord(
            rig_id=self.spec.id,
            operator=self.operator,
            created_utc=created_utc or format_utc(utc_now()),
            software_version=self.software_version,
            notes=notes,
            calibration=body,
        )


def camera_record(
    spec: RigSpec,
    camera: str,
    intrinsics: IntrinsicsLike,
    *,
    operator: str,
    serial: str | None = None,
    model: str = "",
    firmware: str = "",
    software_version: str = "",
    created_utc: str | None = None,
) -> CalibrationRecord:
    """A camera's record from its driver's ``intrinsics()`` and ``info()`` values."""
    cam = next((c for c in spec.cameras if c.name == camera), None)
    if cam is None:
        names = ", ".join(c.name for c in spec.cameras) or "none"
        raise CalibrationError(f"rig {spec.id} has no camera {camera!r}; cameras: {names}")
    return CalibrationRecord(
        rig_id=spec.id,
        operator=operator,
        created_utc=created_utc or format_utc(utc_now()),
        software_version=software_version,
        calibration=CameraCalibration(
            camera=camera,
            driver=cam.driver,
            serial=serial if serial is not None else cam.serial,
            model=model,
            firmware=firmware,
            intrinsics=CameraIntrinsics.from_intrinsics(intrinsics),
        ),
    )


# -- driving the steps --------------------------------------------------------------------------


class Performer(Protocol):
    """Something that moves the arm through each step instead of a person."""

    def begin(self, step: Step) -> None:
        """Start the motion for ``step``."""

    def done(self) -> bool:
        """Whether the motion for the current step has finished (the pose is held)."""

    def finish(self) -> None:
        """Put the arm back and let go."""


class VirtualPerformer:
    """The virtual rig's hands: each step becomes a :meth:`VirtualRig.calibration_move`."""

    def __init__(self, rig: VirtualRig, procedure: CalibrationProcedure) -> None:
        self.rig = rig
        self.arm = procedure.arm.name
        self.reference = [procedure.reference_rad[n] for n in procedure.names]
        self._end = 0.0

    def begin(self, step: Step) -> None:
        if step.kind == StepKind.TORQUE_OFF:
            self._end = time.monotonic()
        elif step.kind == StepKind.REFERENCE:
            self._end = self.rig.calibration_move(self.arm, "pose", angles=self.reference)
        elif step.kind == StepKind.SWEEP:
            self._end = self.rig.calibration_move(self.arm, "sweep", joint=step.joint)
        elif step.kind == StepKind.GRIPPER_OPEN:
            self._end = self.rig.calibration_move(self.arm, "open")
        else:
            self._end = self.rig.calibration_move(self.arm, "close")

    def done(self) -> bool:
        return time.monotonic() >= self._end

    def finish(self) -> None:
        end = self.rig.calibration_end(self.arm)
        time.sleep(max(0.0, end - time.monotonic()))


def run_steps(
    procedure: CalibrationProcedure,
    *,
    performer: Performer | None = None,
    confirmed: Callable[[], bool] | None = None,
    on_step: Callable[[Step], None] | None = None,
    on_readings: Callable[[Step, LiveReadings], None] | None = None,
    on_error: Callable[[Step, CalibrationStepError], None] | None = None,
    poll_s: float = 0.005,
) -> CalibrationRecord:
    """Drive every step: show it, read live values until it is done, confirm it.

    A step is done when the ``performer`` has finished its motion, or when ``confirmed()``
    (e.g. "Enter was pressed") returns True. A :class:`CalibrationStepError` from a step a
    person performs goes to ``on_error`` and the step starts again; with a performer (or
    without ``on_error``) it propagates.
    """
    if performer is None and confirmed is None:
        raise ValueError("run_steps needs a performer or a confirmed() callback")
    try:
        while not procedure.done:
            step = procedure.current
            assert step is not None
            if on_step is not None:
                on_step(step)
            if performer is not None:
                performer.begin(step)
            while True:
                live = procedure.readings()
                if on_readings is not None:
                    on_readings(step, live)
                if performer is not None and performer.done():
                    break
                if confirmed is not None and confirmed():
                    break
                time.sleep(poll_s)
            try:
                procedure.confirm()
            except CalibrationStepError as exc:
                if performer is not None or on_error is None:
                    raise
                on_error(step, exc)
    finally:
        if performer is not None:
            performer.finish()
    return procedure.result()
