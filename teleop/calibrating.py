"""Calibrating a rig: open its buses (or cameras) and drive the calibration procedure.

:func:`run_calibrate` opens one arm's bus (or a camera) and drives
:class:`calibration.procedure.CalibrationProcedure` through a :class:`CalibrationPrompt` (the
CLI's terminal: each step's prompt, live readings, Enter to confirm). On a virtual rig the
rig's own hands perform each step, so it runs unattended. Every calibration is stored as a new
immutable record and made the active one. The rig's parts are opened as everywhere else
(:mod:`teleop.rig_runtime`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from calibration.procedure import (
    CalibrationProcedure,
    CalibrationStepError,
    LiveReadings,
    Step,
    VirtualPerformer,
    camera_record,
    run_steps,
)
from calibration.records import (
    CalibrationRecord,
)
from calibration.store import CalibrationStore, StoredRecord
from rigs.cameras.base import CameraError
from rigs.dynamixel.bus import DynamixelBus
from rigs.spec import RigSpec, load_rig
from rigs.virtual.launcher import VirtualRig
from teleop import __version__
from teleop.errors import TeleopError
from teleop.rig_runtime import open_camera, open_rig_ports
from teleop.session import check_writable_root, resolve_data_root

OPERATOR_ENV = "TELEOP_OPERATOR"


def default_operator() -> str:
    """``$TELEOP_OPERATOR``, else the login name."""
    env = os.environ.get(OPERATOR_ENV)
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- who the calibration talks to ----------------------------------------------------------


class CalibrationPrompt(Protocol):
    """Who a calibration talks to: a person at a terminal (``teleop calibrate``), the GUI, or
    nobody (:class:`QuietPrompt`, for the virtual rig whose hands perform every step)."""

    def say(self, text: str = "") -> None: ...

    def on_step(self, step: Step) -> None: ...

    def on_readings(self, step: Step, live: LiveReadings) -> None: ...

    def confirmed(self) -> bool:
        """Has the person confirmed the current step (polled; never blocks)?"""
        ...

    def on_error(self, step: Step, exc: CalibrationStepError) -> None: ...

    def on_saved(self, target: str, stored: StoredRecord) -> None: ...


class QuietPrompt:
    """A prompt that shows nothing and confirms nothing: enough for a virtual rig."""

    def say(self, text: str = "") -> None:
        pass

    def on_step(self, step: Step) -> None:
        pass

    def on_readings(self, step: Step, live: LiveReadings) -> None:
        pass

    def confirmed(self) -> bool:
        return False

    def on_error(self, step: Step, exc: CalibrationStepError) -> None:
        pass

    def on_saved(self, target: str, stored: StoredRecord) -> None:
        pass


def calibrate_arm(
    spec: RigSpec,
    arm_name: str,
    port: str,
    *,
    operator: str,
    virtual: VirtualRig | None = None,
    prompt: CalibrationPrompt | None = None,
    out: Callable[[str], None] | None = None,
    reference_rad: dict[str, float] | None = None,
) -> CalibrationRecord:
    """Calibrate one arm on ``port``: the virtual rig's hands, or a person at ``prompt``."""
    arm = spec.arm(arm_name).model_copy(update={"port": port})
    with DynamixelBus(arm, emulated=spec.virtual) as bus:
        proc = CalibrationProcedure(
            spec,
            arm_name,
            bus,
            operator=operator,
            reference_rad=reference_rad,
            software_version=__version__,
        )
        if virtual is not None:
            say = out or (prompt.say if prompt else (lambda _t: None))
            return run_steps(
                proc,
                performer=VirtualPerformer(virtual, proc),
                on_step=lambda s: say(f"== {s.title} (virtual rig performs it)"),
                on_readings=prompt.on_readings if prompt else None,
            )
        if prompt is None or isinstance(prompt, QuietPrompt):
            raise TeleopError(
                f"calibrating {arm_name} on hardware needs a terminal to confirm steps"
            )
        return run_steps(
            proc,
            confirmed=prompt.confirmed,
            on_step=prompt.on_step,
            on_readings=prompt.on_readings,
            on_error=prompt.on_error,
        )


def calibrate_camera(
    spec: RigSpec, name: str, *, operator: str, virtual: VirtualRig | None = None, seed: int = 0
) -> CalibrationRecord:
    """Read a camera's intrinsics and serial from its driver into a record."""
    with contextlib.ExitStack() as stack:
        try:
            camera, _ = open_camera(spec, name, virtual, stack, seed)
        except CameraError:
            raise
        except Exception as exc:  # a driver that is still being written may fail any way
            raise TeleopError(
                f"camera {name}: cannot open it ({type(exc).__name__}: {exc})"
            ) from None
        info = camera.info()
        return camera_record(
            spec,
            name,
            camera.intrinsics(),
            operator=operator,
            serial=info.serial or None,
            model=info.model,
            firmware=info.firmware,
            software_version=__version__,
        )


def run_calibrate(
    rig: str,
    *,
    arms: Sequence[str] = (),
    cameras: Sequence[str] = (),
    all_targets: bool = False,
    operator: str | None = None,
    data_dir: str | None = None,
    seed: int = 0,
    prompt: CalibrationPrompt | None = None,
) -> list[StoredRecord]:
    """Calibrate arms and cameras of ``rig`` and store one record each; returns them.

    ``prompt`` shows the steps and confirms them on hardware (the CLI's terminal); on a
    virtual rig none is needed.
    """
    prompt = prompt or QuietPrompt()
    spec = load_rig(rig).spec
    arm_names = [a.name for a in spec.arms]
    cam_names = [c.name for c in spec.cameras]
    if all_targets:
        arms, cameras = arm_names, cam_names
    for name in arms:
        if name not in arm_names:
            raise TeleopError(f"rig {spec.id} has no arm {name!r}; arms: {', '.join(arm_names)}")
    for name in cameras:
        if name not in cam_names:
            raise TeleopError(
                f"rig {spec.id} has no camera {name!r}; cameras: {', '.join(cam_names) or 'none'}"
            )
    if not arms and not cameras:
        raise TeleopError("name what to calibrate: --arm NAME, --camera NAME or --all")
    operator = operator or default_operator()
    data_root = resolve_data_root(data_dir)
    check_writable_root(data_root)
    store = CalibrationStore(data_root)
    saved: list[StoredRecord] = []
    with open_rig_ports(spec, seed=seed) as (ports, virtual):
        records: dict[str, CalibrationRecord] = {}
        if virtual is not None and len(arms) > 1:
            # The virtual rig has a pair of hands per arm: its arms calibrate at once, each on
            # its own bus (a person at a real rig does one arm after another).
            with ThreadPoolExecutor(len(arms)) as pool:
                futures = {
                    name: pool.submit(
                        calibrate_arm,
                        spec,
                        name,
                        ports[name],
                        operator=operator,
                        virtual=virtual,
                        out=lambda _t: None,
                    )  # fmt: skip
                    for name in arms
                }
                records = {name: f.result() for name, f in futures.items()}
        for name in arms:
            record = records.get(name) or calibrate_arm(
                spec, name, ports[name], operator=operator, virtual=virtual, prompt=prompt
            )
            stored = store.save(record)
            saved.append(stored)
            prompt.on_saved(name, stored)
            if spec.arm(name).role == "follower" and not spec.virtual:
                prompt.say(f"torque stays off on {name}; recording switches it on where it stands")
        for name in cameras:
            record = calibrate_camera(spec, name, operator=operator, virtual=virtual, seed=seed)
            stored = store.save(record)
            saved.append(stored)
            prompt.on_saved(name, stored)
    return saved


__all__ = [
    "OPERATOR_ENV",
    "CalibrationPrompt",
    "QuietPrompt",
    "calibrate_arm",
    "calibrate_camera",
    "default_operator",
    "run_calibrate",
]
