"""``teleop calibrate`` and ``teleop calibration list|show|diff|activate``.

``calibrate`` drives :func:`teleop.calibrating.run_calibrate` with a terminal prompt: each
step's prompt, live readings, Enter to confirm (on a virtual rig the rig's own hands perform
each step, so it runs unattended). The records are presented here as tables and diffs.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from calibration.procedure import CalibrationStepError, LiveReadings, Step, StepKind
from calibration.records import (
    ArmCalibration,
    CalibrationError,
    CalibrationRecordError,
    CameraCalibration,
)
from calibration.store import CalibrationStore, StoredRecord, load_record, refuse_future
from rigs.dynamixel import control_table as ct
from rigs.spec import RigSpecError, load_rig
from rigs.virtual.launcher import VirtualRigError
from teleop.arguments import SEED, add_data_dir, identity
from teleop.calibrating import OPERATOR_ENV, default_operator, run_calibrate
from teleop.errors import TeleopError
from teleop.session import resolve_data_root


class Terminal:
    """The calibration prompt on a text stream (a :class:`~teleop.calibrating.CalibrationPrompt`):
    prompts and live readings on ``out``; Enter on ``stdin`` confirms a step."""

    def __init__(self, out: TextIO, stdin: TextIO | None, *, yes: bool, live_every_s: float):
        self.out = out
        self.stdin = stdin
        self.yes = yes
        self.live_every_s = live_every_s
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last_live = 0.0
        self._step: Step | None = None

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def on_step(self, step: Step) -> None:
        self._step = step
        self.say(f"== {step.title}")
        self.say(f"   {step.prompt}")
        if self.stdin is not None and not (self.yes and step.kind == StepKind.TORQUE_OFF):
            self.say("   (press Enter to confirm)")

    def on_readings(self, step: Step, live: LiveReadings) -> None:
        now = time.monotonic()
        if not self.tty or now - self._last_live < self.live_every_s:
            return
        self._last_live = now
        self.out.write("\r   " + _live_line(step, live) + "\x1b[K")
        self.out.flush()

    def confirmed(self) -> bool:
        step = self._step
        if self.yes and step is not None and step.kind == StepKind.TORQUE_OFF:
            return True
        if self.stdin is None:
            return False
        ready, _, _ = select.select([self.stdin], [], [], 0)
        if not ready:
            return False
        line = self.stdin.readline()
        if line == "":
            raise TeleopError("stdin closed before the calibration finished; nothing saved")
        if self.tty:
            self.out.write("\n")
        return True

    def on_error(self, step: Step, exc: CalibrationStepError) -> None:
        self.say(f"   ! {exc}")

    def on_saved(self, target: str, stored: StoredRecord) -> None:
        what = "camera " if isinstance(stored.record.calibration, CameraCalibration) else ""
        self.say(f"saved {stored.id} for {what}{target}: {stored.path}")
        if isinstance(stored.record.calibration, ArmCalibration):
            self.say(format_arm_table(stored.record.calibration))


def _live_line(step: Step, live: LiveReadings) -> str:
    if not live.ok:
        return "(bus read failed)"
    if step.joint is not None:
        j = next(j for j in live.joints if j.joint == step.joint)
        text = f"{j.joint}: {j.bus_rad:+.3f} rad (tick {j.ticks})"
        if j.from_reference_rad is not None:
            text += f", {j.from_reference_rad:+.3f} from reference"
        if j.min_rad is not None and j.max_rad is not None:
            text += f", seen {j.min_rad:+.3f} .. {j.max_rad:+.3f}"
        return text
    return "  ".join(f"{j.joint} {j.bus_rad:+.2f}" for j in live.joints)


def format_arm_table(cal: ArmCalibration) -> str:
    """The joints of an arm record as an aligned table."""
    rows = [("joint", "offset rad", "tick", "dir", "ref rad", "min rad", "max rad")]
    for j in cal.joints:
        rows.append(
            (
                j.name,
                f"{j.offset_rad:+.4f}",
                str(j.offset_ticks),
                f"{j.direction:+d}",
                f"{j.reference_rad:+.3f}",
                f"{j.min_rad:+.4f}",
                f"{j.max_rad:+.4f}",
            )
        )
    text = _table(rows)
    if cal.gripper is not None:
        g = cal.gripper
        text += (
            f"\ngripper {g.joint}: open {g.open_rad:+.4f} rad, closed {g.closed_rad:+.4f} rad "
            "(bus angles; mapped closed..open onto the follower's)"
        )
    return text


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _rig_id(store: CalibrationStore, rig: str | None) -> str | None:
    if rig is None:
        return None
    try:
        return load_rig(rig).spec.id
    except RigSpecError:
        if store.rig_dir(rig).is_dir():
            return rig  # a rig id whose file is gone: its records are still listed
        raise


def render_list(store: CalibrationStore, rig_id: str | None) -> tuple[str, int]:
    """The ``calibration list`` table and its exit code (1 if any file is unusable)."""
    rigs = [rig_id] if rig_id else store.rig_ids()
    lines: list[str] = []
    status = 0
    for rid in rigs:
        good: list[StoredRecord] = []
        bad: list[str] = []
        for path in store.paths(rid):
            try:
                good.append(load_record(path, rig_id=rid))
            except CalibrationRecordError as exc:
                bad.append(str(exc))
        good.sort(key=lambda r: (r.record.created_utc, r.id))
        active_ids = {r.target: r.id for r in good}  # newest wins
        lines.append(f"rig {rid} ({store.rig_dir(rid)}): {len(good)} records")
        rows = [("", "id", "kind", "arm/camera", "created (UTC)", "operator")]
        for r in good:
            mark = "*" if active_ids.get(r.target) == r.id else ""
            rows.append(
                (mark, r.id, r.kind, r.target, r.record.created_utc[:19], r.record.operator)
            )
        if good:
            lines.append(_table(rows))
        for message in bad:
            lines.append(f"! {message}")
            status = 1
    if not lines:
        lines.append(f"no calibration records under {store.root}")
    elif len(rigs):
        lines.append("* = active (the newest record for its arm or camera)")
    return "\n".join(lines), status


def render_show(stored: StoredRecord, active: StoredRecord | None, as_json: bool) -> str:
    """One record, readable (or its body as JSON)."""
    r = stored.record
    if as_json:
        return json.dumps(
            {"id": stored.id, "sha256": stored.sha256, "record": r.body()}, indent=2, sort_keys=True
        )
    cal = r.calibration
    current = active is None or active.id == stored.id
    state = "yes" if current else f"no (active: {active.id})"  # type: ignore[union-attr]
    lines = [
        f"record    {stored.id}",
        f"file      {stored.path}",
        f"sha256    {stored.sha256}",
        f"rig       {r.rig_id}",
        f"active    {state}",
        f"by        {r.operator} at {r.created_utc}"
        + (f" (teleop {r.software_version})" if r.software_version else ""),
    ]
    if isinstance(cal, ArmCalibration):
        follows = f", follows {cal.follows}" if cal.follows else ""
        lines.append(f"arm       {cal.arm} ({cal.role}{follows})")
        serial = f", adapter serial {cal.adapter_serial}" if cal.adapter_serial else ""
        lines.append(f"port      {cal.port}{serial}")
        motors = ", ".join(
            f"{m.id} {m.joint} {m.model} fw{m.firmware}"
            + (f" (shadow of {m.shadow_of})" if m.shadow_of is not None else "")
            for m in cal.motors
        )
        lines.append(f"motors    {motors}")
        lines.append(format_arm_table(cal))
    else:
        assert isinstance(cal, CameraCalibration)
        i = cal.intrinsics
        lines += [
            f"camera    {cal.camera} ({cal.driver}, {cal.model or 'model unknown'}, "
            f"serial {cal.serial or 'unknown'}, firmware {cal.firmware or 'unknown'})",
            f"size      {i.width}x{i.height}",
            f"focal     fx {i.fx:.3f}  fy {i.fy:.3f}",
            f"centre    cx {i.cx:.3f}  cy {i.cy:.3f}",
            f"distortion {i.distortion_model}: {', '.join(f'{c:.6g}' for c in i.coeffs)}",
        ]
    if r.notes:
        lines.append(f"notes     {r.notes}")
    return "\n".join(lines)


def _num_diff(label: str, a: float, b: float, unit: str = "", ticks: bool = False) -> str | None:
    if a == b:
        return None
    extra = f", {(b - a) / ct.RAD_PER_TICK:+.1f} ticks" if ticks else ""
    return f"{label} {a:+.4f} -> {b:+.4f} ({b - a:+.4f}{unit}{extra})"


def render_diff(a: StoredRecord, b: StoredRecord) -> str:
    """Two records side by side, joint by joint (or field by field for cameras)."""
    ra, rb = a.record, b.record
    lines = [
        f"A {a.id}  {ra.kind} {ra.target}  {ra.created_utc} by {ra.operator}",
        f"B {b.id}  {rb.kind} {rb.target}  {rb.created_utc} by {rb.operator}",
    ]
    if ra.target != rb.target or ra.kind != rb.kind:
        lines.append(f"note: A is for {ra.kind} {ra.target}, B for {rb.kind} {rb.target}")
    ca, cb = ra.calibration, rb.calibration
    if isinstance(ca, ArmCalibration) and isinstance(cb, ArmCalibration):
        names = list(dict.fromkeys(ca.joint_names + cb.joint_names))
        for name in names:
            if name not in ca.joint_names or name not in cb.joint_names:
                lines.append(f"{name}: only in {'A' if name in ca.joint_names else 'B'}")
                continue
            ja, jb = ca.joint(name), cb.joint(name)
            changes = [
                _num_diff("offset", ja.offset_rad, jb.offset_rad, " rad", ticks=True),
                None
                if ja.direction == jb.direction
                else f"direction {ja.direction:+d} -> {jb.direction:+d}",
                _num_diff("reference", ja.reference_rad, jb.reference_rad, " rad"),
                _num_diff("min", ja.min_rad, jb.min_rad, " rad"),
                _num_diff("max", ja.max_rad, jb.max_rad, " rad"),
            ]
            changed = [c for c in changes if c]
            lines.append(f"{name}: " + ("; ".join(changed) if changed else "same"))
        ga, gb = ca.gripper, cb.gripper
        if ga is not None and gb is not None:
            changed = [
                c
                for c in (
                    _num_diff("open", ga.open_rad, gb.open_rad, " rad"),
                    _num_diff("closed", ga.closed_rad, gb.closed_rad, " rad"),
                )
                if c
            ]
            lines.append(f"gripper {gb.joint}: " + ("; ".join(changed) if changed else "same"))
        elif (ga is None) != (gb is None):
            lines.append(f"gripper: only in {'A' if ga is not None else 'B'}")
        ma = {m.id: (m.joint, m.model, m.firmware) for m in ca.motors}
        mb = {m.id: (m.joint, m.model, m.firmware) for m in cb.motors}
        for mid in sorted(set(ma) | set(mb)):
            if ma.get(mid) != mb.get(mid):
                lines.append(f"motor {mid}: {ma.get(mid)} -> {mb.get(mid)}")
    elif isinstance(ca, CameraCalibration) and isinstance(cb, CameraCalibration):
        ia, ib = ca.intrinsics.model_dump(), cb.intrinsics.model_dump()
        ia.update(serial=ca.serial, driver=ca.driver)
        ib.update(serial=cb.serial, driver=cb.driver)
        same = True
        for key in sorted(ia):
            if ia[key] != ib[key]:
                same = False
                lines.append(f"{key}: {ia[key]} -> {ib[key]}")
        if same:
            lines.append("intrinsics, distortion and serial: same")
    return "\n".join(lines)


# -- argparse -------------------------------------------------------------------------------


def _calibrate(args: argparse.Namespace) -> int:
    try:
        run_calibrate(
            args.rig,
            arms=args.arm or (),
            cameras=args.camera or (),
            all_targets=args.all,
            operator=args.operator,
            data_dir=args.data_dir,
            seed=args.seed,
            # On a virtual rig its hands confirm each step; Enter on stdin only on hardware.
            prompt=Terminal(sys.stdout, sys.stdin, yes=args.yes, live_every_s=0.1),
        )
    except (CalibrationError, VirtualRigError) as exc:
        raise TeleopError(str(exc)) from None
    return 0


def _store(args: argparse.Namespace) -> CalibrationStore:
    return CalibrationStore(resolve_data_root(args.data_dir))


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    text, status = render_list(store, _rig_id(store, args.rig))
    sys.stdout.write(text + "\n")
    return status


def _activate(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        stored = store.find(args.record, _rig_id(store, args.rig))
        refuse_future(stored.record, "calibration record")
        store.activate(stored, f"activated by {args.operator or default_operator()}")
    except CalibrationError as exc:
        raise TeleopError(str(exc)) from None
    print(f"{stored.target} of rig {stored.record.rig_id}: {stored.id} is now active")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        stored = store.find(args.record, _rig_id(store, args.rig))
        try:
            active = store.active(stored.record.rig_id).get(stored.target)
        except CalibrationRecordError:
            active = None  # another file of the rig is unusable; `list` names it
        sys.stdout.write(render_show(stored, active, args.json) + "\n")
    except CalibrationError as exc:
        raise TeleopError(str(exc)) from None
    return 0


def _diff(args: argparse.Namespace) -> int:
    store = _store(args)
    rig_id = _rig_id(store, args.rig)
    try:
        a, b = store.find(args.a, rig_id), store.find(args.b, rig_id)
    except CalibrationError as exc:
        raise TeleopError(str(exc)) from None
    sys.stdout.write(render_diff(a, b) + "\n")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``calibrate`` and ``calibration`` on the CLI's sub-command parsers."""
    c = subparsers.add_parser(
        "calibrate",
        help="calibrate arms (and read camera intrinsics) into new calibration records",
        description="Step by step: torque off, reference pose, sweep each joint, open and "
        "close the gripper. On a virtual rig the rig performs the steps itself.",
    )
    c.add_argument("--rig", required=True, help="preset name or rig .toml path")
    c.add_argument("--arm", action="append", metavar="NAME", help="arm to calibrate (repeatable)")
    c.add_argument(
        "--camera", action="append", metavar="NAME", help="camera to record (repeatable)"
    )
    c.add_argument("--all", action="store_true", help="every arm and camera of the rig")
    c.add_argument(
        "--operator",
        type=identity("operator"),
        help=f"who calibrates (default ${OPERATOR_ENV} or login name)",
    )
    add_data_dir(c)
    c.add_argument(
        "--yes",
        action="store_true",
        help="switch torque off without asking (motion steps on hardware still wait for Enter)",
    )
    c.add_argument("--seed", type=SEED, default=0, help="virtual rig: scripted operator seed")
    c.set_defaults(func=_calibrate)

    cal = subparsers.add_parser("calibration", help="list, show and compare calibration records")
    sub = cal.add_subparsers(dest="calibration_action", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="records per rig; * marks the active one")
    ls.add_argument("--rig", help="only this rig (preset, .toml path or rig id)")
    add_data_dir(ls)
    ls.set_defaults(func=_list)
    sh = sub.add_parser("show", help="one record")
    sh.add_argument("record", help="record id (or a unique prefix) or file path")
    sh.add_argument("--rig", help="look only in this rig's records")
    add_data_dir(sh)
    sh.add_argument("--json", action="store_true", help="the record as JSON")
    sh.set_defaults(func=_show)
    ac = sub.add_parser(
        "activate",
        help="make a stored record (e.g. an imported one) its arm's or camera's active one",
    )
    ac.add_argument("record", help="record id (or a unique prefix) or file path")
    ac.add_argument("--rig", help="look only in this rig's records")
    ac.add_argument(
        "--operator", type=identity("operator"), help="who decides (default: login name)"
    )
    add_data_dir(ac)
    ac.set_defaults(func=_activate)
    df = sub.add_parser("diff", help="two records, joint by joint")
    df.add_argument("a", help="record id, prefix or path")
    df.add_argument("b", help="record id, prefix or path")
    df.add_argument("--rig", help="look only in this rig's records")
    add_data_dir(df)
    df.set_defaults(func=_diff)


__all__ = ["Terminal", "add_parser", "render_diff", "render_list", "render_show"]
