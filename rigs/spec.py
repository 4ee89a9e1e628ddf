"""Rig specifications: a TOML file validated by pydantic.

A rig is the set of arms (leaders and followers on their Dynamixel buses), cameras, the control
rate and safety limits. Presets ship in ``rigs/presets``; users pass a preset name or a path.
Every validation problem becomes a :class:`RigSpecError` naming the file, the field and what
was expected.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rigs.config_file import parse_toml
from rigs.dynamixel.control_table import MODELS
from rigs.errors import UserError


class RigSpecError(UserError, ValueError):
    """A rig name or file that cannot be used; the message says which and how to fix it."""


class _Strict(BaseModel):
    # Every number in a rig file is finite: inf or nan would switch a limit off unnoticed.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Baud rates a Dynamixel X-series servo can be set to (e-Manual, Baud Rate register 8).
BAUDRATES = (9_600, 57_600, 115_200, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 4_500_000)


class Joint(_Strict):
    """One joint: a primary servo, optionally a shadow servo that mirrors it on the same bus."""

    name: str = Field(min_length=1)
    id: int = Field(ge=0, le=252)
    model: str
    shadow_id: int | None = Field(default=None, ge=0, le=252)
    min_rad: float = Field(ge=-3.1416, le=3.1416)
    max_rad: float = Field(ge=-3.1416, le=3.1416)

    @model_validator(mode="after")
    def _check(self) -> Joint:
        if self.model not in MODELS:
            known = ", ".join(sorted(MODELS))
            raise ValueError(f"unknown Dynamixel model {self.model!r}; expected one of {known}")
        if self.min_rad >= self.max_rad:
            raise ValueError(f"min_rad ({self.min_rad}) must be below max_rad ({self.max_rad})")
        return self


class Arm(_Strict):
    """One arm on one bus (one U2D2 or similar adapter per arm, as on ALOHA)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    role: Literal["leader", "follower"]
    port: str = Field(
        min_length=1,
        description="serial device, e.g. /dev/serial/by-id/usb-FTDI_..., or 'virtual'",
    )
    baudrate: int = 1_000_000
    follows: str | None = Field(default=None, description="for a follower: its leader's name")
    gripper: str | None = Field(default=None, description="name of the gripper joint, if any")
    gripper_current_limit: int = Field(
        default=300,
        ge=1,
        le=65535,
        description="Current Limit register units for a follower's gripper (at most the model's)",
    )
    joints: list[Joint] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Arm:
        names = [j.name for j in self.joints]
        if len(set(names)) != len(names):
            raise ValueError(f"joint names repeat: {names}")
        ids = [j.id for j in self.joints]
        ids += [j.shadow_id for j in self.joints if j.shadow_id is not None]
        if len(set(ids)) != len(ids):
            raise ValueError(f"motor ids repeat on one bus: {sorted(ids)}")
        if self.baudrate not in BAUDRATES:
            raise ValueError(
                f"baudrate {self.baudrate} is not one a Dynamixel X servo supports "
                f"({', '.join(map(str, BAUDRATES))})"
            )
        if self.gripper is not None and self.gripper not in names:
            raise ValueError(f"gripper {self.gripper!r} is not one of the joints {names}")
        if self.gripper is not None and self.role == "follower":
            model = MODELS[next(j.model for j in self.joints if j.name == self.gripper)]
            top = model.default_current_limit
            if model.has_current_sensor and self.gripper_current_limit > top:
                raise ValueError(
                    f"gripper_current_limit {self.gripper_current_limit} is above the "
                    f"{model.name}'s maximum Current Limit ({top}); use 1..{top}"
                )
        if self.role == "follower" and self.follows is None:
            raise ValueError("a follower needs 'follows' = the name of its leader arm")
        if self.role == "leader" and self.follows is not None:
            raise ValueError("a leader cannot have 'follows'")
        return self

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]


class Camera(_Strict):
    """One camera. ``driver`` selects the implementation registered under that name."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    driver: Literal["synthetic", "realsense", "opencv"]
    serial: str | None = Field(default=None, description="realsense: the device serial number")
    path: str | None = Field(
        default=None, description="opencv: /dev/v4l/by-id/... path or a video file"
    )
    index: int | None = Field(default=None, ge=0, description="opencv: /dev/videoN index")
    width: int = Field(default=640, ge=16, le=4096)
    height: int = Field(default=480, ge=16, le=4096)
    fps: int = Field(default=30, ge=1, le=120)
    depth: bool = False
    align_depth: bool = Field(default=False, description="realsense: align depth to colour")
    auto_exposure: bool = Field(default=False, description="off by default: consistent data")
    exposure_us: int = Field(default=8000, ge=1, le=200000)
    gain: int | None = Field(default=None, ge=0)
    auto_white_balance: bool = False
    white_balance_k: int = Field(default=4600, ge=2800, le=6500)
    on_mode_mismatch: Literal["error", "warn"] = Field(
        default="error", description="opencv: when the camera gives another size or fps"
    )
    loop: bool = Field(default=False, description="opencv video file: start again at the end")
    view: Literal["overhead", "low", "left_wrist", "right_wrist"] | None = Field(
        default=None, description="virtual rig cameras: which viewpoint the renderer draws"
    )
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    stall_timeout_s: float = Field(
        default=0.5, gt=0, le=60, description="a camera silent this long is reported as stopped"
    )

    @model_validator(mode="after")
    def _check(self) -> Camera:
        if self.driver == "realsense" and not self.serial:
            raise ValueError("a realsense camera needs 'serial' (see `teleop cameras`)")
        if self.driver == "opencv" and (self.path is None) == (self.index is None):
            raise ValueError("an opencv camera needs exactly one of 'path' or 'index'")
        if self.align_depth and not self.depth:
            raise ValueError("align_depth needs depth = true")
        return self


class Safety(_Strict):
    """Limits applied to every follower command."""

    max_step_rad: float = Field(
        default=0.15,
        gt=0,
        le=0.5,
        description="largest change of any goal in one control cycle (at most 0.5 rad)",
    )
    joint_limit_margin_rad: float = Field(
        default=0.0,
        ge=0,
        description="kept clear of each joint limit; less than half of every follower joint's range",
    )


class QualityGates(_Strict):
    """Limits outside which an episode is flagged (the flags say which, with the numbers)."""

    min_rate_fraction: float = Field(
        default=0.99, gt=0, le=1, description="achieved/requested rate"
    )
    max_p99_period_error_ms: float = Field(default=2.0, gt=0)
    max_joint_samples_lost: int = Field(default=0, ge=0)
    max_frames_dropped: int = Field(default=0, ge=0, description="per camera, by the recorder")
    max_frames_missing: int = Field(default=0, ge=0, description="per camera, device gaps")
    max_duplicate_frames: int = Field(default=3, ge=0, description="per camera")
    max_skew_ms: float = Field(default=25.0, gt=0, description="frame to nearest joint sample")
    max_bus_retries: int = Field(default=10, ge=0)
    max_idle_fraction: float = Field(default=0.8, gt=0, le=1, description="leaders not moving")
    max_clamp_hits: int = Field(default=1000, ge=0)
    idle_speed_rad_s: float = Field(default=0.05, gt=0, description="below this a leader is idle")


class Controls(_Strict):
    """How the operator drives recording on this rig, beyond keys and pedals."""

    squeeze_to_start: bool = Field(
        default=False,
        description="start an episode when both leader grippers are held closed (ALOHA's habit)",
    )
    squeeze_hold_s: float = Field(
        default=0.5, gt=0, le=10, description="how long both grippers must stay closed"
    )


class Live(_Strict):
    """The live Foxglove view (``teleop record --live``): what it sends, never what is recorded."""

    camera_fps: float = Field(
        default=10.0,
        gt=0,
        allow_inf_nan=False,
        description="per camera, the most frames a second sent to live viewers (the file keeps all)",
    )


class RigSpec(_Strict):
    """A whole rig."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    embodiment: str = Field(
        default="",
        pattern=r"^[a-z0-9_-]*$",
        description="robot type shared by rigs of one kind, e.g. 'aloha'; queries select by it",
    )
    virtual: bool = Field(default=False, description="served by the virtual rig, no hardware")
    untested_on_hardware: bool = False
    control_rate_hz: float = Field(default=50.0, ge=1.0, le=1000.0)
    safety: Safety = Safety()
    quality: QualityGates = QualityGates()
    controls: Controls = Controls()
    live: Live = Live()
    arms: list[Arm] = Field(min_length=1)
    cameras: list[Camera] = []

    @model_validator(mode="after")
    def _check(self) -> RigSpec:
        names = [a.name for a in self.arms] + [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"arm and camera names must be unique: {names}")
        by_name = {a.name: a for a in self.arms}
        for arm in self.arms:
            if arm.role != "follower":
                continue
            leader = by_name.get(arm.follows or "")
            if leader is None or leader.role != "leader":
                raise ValueError(
                    f"follower {arm.name!r} follows {arm.follows!r}, which is not a leader arm"
                )
            if leader.joint_names != arm.joint_names:
                raise ValueError(
                    f"follower {arm.name!r} and leader {leader.name!r} must have the same joints "
                    f"in the same order ({arm.joint_names} vs {leader.joint_names})"
                )
        margin = self.safety.joint_limit_margin_rad
        for arm in self.followers:
            for j in arm.joints:
                if 2 * margin >= j.max_rad - j.min_rad:
                    raise ValueError(
                        f"safety.joint_limit_margin_rad {margin} leaves no room on "
                        f"{arm.name}.{j.name} ([{j.min_rad}, {j.max_rad}]): it must be below "
                        f"half of every follower joint's range"
                    )
        if not self.virtual:
            virtual_ports = [a.name for a in self.arms if a.port == "virtual"]
            if virtual_ports:
                raise ValueError(
                    f"arms {virtual_ports} use port 'virtual' but the rig is not virtual"
                )
        return self

    @property
    def leaders(self) -> list[Arm]:
        return [a for a in self.arms if a.role == "leader"]

    @property
    def followers(self) -> list[Arm]:
        return [a for a in self.arms if a.role == "follower"]

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)


class LoadedRig(_Strict):
    """A validated spec together with where it came from and its exact bytes."""

    spec: RigSpec
    source: str
    toml_text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.toml_text.encode()).hexdigest()


def preset_names() -> list[str]:
    """Names of the rig presets shipped in the package."""
    files = resources.files("rigs").joinpath("presets")
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir() if p.name.endswith(".toml"))


def parse_rig(text: str, source: str) -> LoadedRig:
    """Validate TOML text; ``source`` names it in error messages."""
    spec = parse_toml(text, RigSpec, source, RigSpecError)
    return LoadedRig(spec=spec, source=source, toml_text=text)


def load_rig(name_or_path: str | Path) -> LoadedRig:
    """Load a preset by name (``sim-bimanual``) or a rig file by path."""
    ref = str(name_or_path)
    path = Path(ref)
    if ref.endswith(".toml") or path.exists() or "/" in ref:
        if not path.is_file():
            raise RigSpecError(
                f"{ref}: no such rig file; pass a preset name ({', '.join(preset_names())}) or an existing .toml path"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RigSpecError(f"{ref}: cannot read rig file ({exc})") from None
        return parse_rig(text, str(path))
    names = preset_names()
    if ref not in names:
        raise RigSpecError(
            f"unknown rig preset {ref!r}; presets are: {', '.join(names)}, or pass a .toml path"
        )
    text = resources.files("rigs").joinpath("presets", f"{ref}.toml").read_text(encoding="utf-8")
    return parse_rig(text, f"preset {ref}")
