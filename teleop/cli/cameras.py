"""``teleop cameras``: which cameras are connected, with serials and modes, and a snapshot of each.

Without ``--rig`` it lists the RealSense devices librealsense sees and every V4L2 capture
node (UVC webcams). With ``--rig`` it opens that rig's cameras the way recording does (for a
virtual rig, including its virtual RealSense devices) and adds them to the list. With
``--snapshot DIR`` one frame of each is saved as PNG (and a false-colour depth PNG).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from rigs.cameras import realsense, v4l2
from rigs.cameras.base import Camera, CameraError
from rigs.cameras.codec import depth_preview, encode_png
from rigs.spec import Camera as CameraSpec
from rigs.spec import load_rig
from teleop.rig_runtime import RigRuntime

log = logging.getLogger(__name__)


def _modes_text(modes: list[str], limit: int = 6) -> str:
    shown = ", ".join(modes[:limit])
    return shown + (f", … ({len(modes)} in all)" if len(modes) > limit else "") if modes else "-"


def _uvc_modes(entry: dict[str, Any]) -> list[str]:
    out = []
    for fmt in entry.get("formats", []):
        for size in fmt.get("sizes", []):
            if "width" in size:
                fps = size.get("fps") or []
                out.append(
                    f"{size['width']}x{size['height']}@{fps[0] if fps else '?'} {fmt['fourcc']}"
                )
    return out


def _snapshot(camera: Camera, out_dir: Path, stem: str) -> list[Path]:
    frame = camera.read(timeout_s=3.0)
    written = [out_dir / f"{stem}_color.png"]
    written[0].write_bytes(encode_png(frame.color))
    if frame.depth is not None:
        written.append(out_dir / f"{stem}_depth.png")
        written[1].write_bytes(encode_png(depth_preview(frame.depth)))
    return written


def _snapshot_device(spec: CameraSpec, out_dir: Path, stem: str) -> list[Path]:
    from rigs.cameras.base import driver_for

    with driver_for(spec.driver)(spec) as cam:
        return _snapshot(cam, out_dir, stem)


def run_cameras(rig: str | None, snapshot_dir: Path | None, as_json: bool, seed: int = 0) -> str:
    if snapshot_dir is not None:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
    runtime = RigRuntime(load_rig(rig), seed=seed).open() if rig else None
    lines: list[str] = []
    report: dict[str, Any] = {"realsense": [], "uvc": [], "rig": []}
    try:
        rig_serials = set()
        if runtime is not None:
            for name, cam in runtime.cameras.items():
                info = cam.info()
                rig_serials.add(info.serial)
                row: dict[str, Any] = {"camera": name, "driver": info.driver, "model": info.model,
                                       "serial": info.serial, "firmware": info.firmware,
                                       "mode": f"{cam.spec.width}x{cam.spec.height}@{cam.spec.fps}"}  # fmt: skip
                if snapshot_dir is not None:
                    row["snapshots"] = [str(p) for p in _snapshot(cam, snapshot_dir, name)]
                report["rig"].append(row)
        for dev in realsense.list_devices():
            if (
                snapshot_dir is not None
                and dev["serial"] not in rig_serials
                and not dev.get("error")
            ):
                mode = (dev["color_modes"] or ["640x480@30"])[0].split()[0]
                size, fps = mode.split("@")
                w, h = (int(v) for v in size.split("x"))
                spec = CameraSpec(name="snapshot", driver="realsense", serial=dev["serial"], width=w, height=h,
                                  fps=int(fps), depth=bool(dev["depth_modes"]))  # fmt: skip
                try:
                    dev["snapshots"] = [
                        str(p) for p in _snapshot_device(spec, snapshot_dir, dev["serial"])
                    ]
                except CameraError as exc:
                    dev["snapshot_error"] = str(exc)
            report["realsense"].append(dev)
        for dev in v4l2.list_devices():
            if snapshot_dir is not None and not dev.get("error"):
                spec = CameraSpec(name="snapshot", driver="opencv", path=dev.get("by_id") or dev["path"],
                                  on_mode_mismatch="warn")  # fmt: skip
                try:
                    stem = Path(dev["path"]).name
                    dev["snapshots"] = [str(p) for p in _snapshot_device(spec, snapshot_dir, stem)]
                except CameraError as exc:
                    dev["snapshot_error"] = str(exc)
            report["uvc"].append(dev)
    finally:
        if runtime is not None:
            runtime.close()
    if as_json:
        return json.dumps(report, indent=2, default=str)
    if report["rig"]:
        lines.append(f"rig {rig}:")
        for r in report["rig"]:
            lines.append(
                f"  {r['camera']:14} {r['driver']:10} {r['model']:32} serial {r['serial']:14} {r['mode']}"
            )
            lines += [f"  {'':14} snapshot {p}" for p in r.get("snapshots", [])]
    lines.append(f"RealSense devices: {len(report['realsense'])}")
    for d in report["realsense"]:
        tag = " (virtual)" if d.get("virtual") else ""
        lines.append(
            f"  {d['serial']:14} {d['name']}{tag}  firmware {d['firmware']}  USB {d.get('usb_type') or '-'}"
        )
        lines.append(f"  {'':14} colour: {_modes_text(d['color_modes'])}")
        lines.append(f"  {'':14} depth:  {_modes_text(d['depth_modes'])}")
        lines += [f"  {'':14} snapshot {p}" for p in d.get("snapshots", [])]
        if d.get("snapshot_error"):
            lines.append(f"  {'':14} snapshot failed: {d['snapshot_error']}")
    lines.append(f"UVC (V4L2) devices: {len(report['uvc'])}")
    for d in report["uvc"]:
        lines.append(
            f"  {d['path']:12} {d.get('card', '?')}  {d.get('by_id') or '(no by-id link)'}"
        )
        lines.append(f"  {'':12} modes: {_modes_text(_uvc_modes(d))}")
        lines += [f"  {'':12} snapshot {p}" for p in d.get("snapshots", [])]
        if d.get("error") or d.get("snapshot_error"):
            lines.append(f"  {'':12} problem: {d.get('error') or d.get('snapshot_error')}")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cameras", help="list connected RealSense and UVC cameras; save snapshots")
    p.add_argument("--rig", help="also open this rig's cameras (a virtual rig brings its own)")
    p.add_argument("--snapshot", metavar="DIR", help="save one PNG per camera (and depth) here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(
        func=lambda a: (
            print(run_cameras(a.rig, Path(a.snapshot) if a.snapshot else None, a.json)) or 0
        )
    )
