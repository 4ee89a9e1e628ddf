"""Synthetic camera images of the virtual rig, drawn from the follower joint angles.

The scene: a table (top at z = 0) in a plain room, a red block on the table, and the follower
arms mounted at the two ends of the table facing each other. Each arm is a ViperX-like chain
(waist, shoulder, elbow, forearm roll, wrist angle, wrist rotate, then a two-finger gripper).
Views: ``overhead`` (above the table looking down), ``low`` (at the near table edge looking
across), ``left_wrist`` / ``right_wrist`` (riding on that arm's gripper, fingers in view).

World frame: x from the left arm's base towards the right arm's base, y away from the
operator (the near table edge is at negative y), z up; metres. Camera frames follow OpenCV:
x right, y down, z forward; depth is the z coordinate (what RealSense reports), in mm.

Drawing is painter's algorithm with cv2 primitives: every surface is a flat polygon, a thick
line (a link) or a disc (a joint), drawn far to near into the colour image and, with its
depth value, into the depth image. cv2 drawing releases the GIL and is fast; the static
background of the fixed views is drawn once and copied per frame. Everything is deterministic:
the same inputs give bit-identical outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rigs.cameras.base import Intrinsics
from rigs.spec import Arm, RigSpec

VIEWS = ("overhead", "low", "left_wrist", "right_wrist")

# ViperX-like link lengths (m): base to shoulder, upper arm, forearm, wrist link, gripper.
L_BASE = 0.13
L_UPPER = 0.30
L_FOREARM = 0.30
L_WRIST = 0.07
L_GRIPPER = 0.10
PALM_LEN = 0.04  # the gripper body; the fingers take the rest of L_GRIPPER
FINGER_GAP_MIN_M = 0.006  # half the distance between the fingers when closed
FINGER_GAP_MAX_M = 0.040  # ... and fully open

_ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")

# Scene layout (m).
BASE_X = 0.50  # the arms stand at x = -BASE_X (left) and +BASE_X (right), y = 0
TABLE_HALF_X = 0.75
TABLE_HALF_Y = 0.45
FLOOR_Z = -0.76
ROOM_HALF = 2.5
ROOM_TOP_Z = 1.6
BLOCK_CENTER = (0.0, 0.12)
BLOCK_HALF = 0.03

NEAR_M = 0.03  # near clipping plane: nothing closer to a camera than this is drawn
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions so motion is smooth, not 1-px steps
_ONE = 1 << _SHIFT
_LIM = float(1 << 26)  # keeps far-off-screen points inside int32 after the shift

# Colours (BGR).
_SKY = (205, 200, 196)
_FLOOR = (92, 98, 104)
_WALLS = ((176, 170, 160), (168, 176, 182), (182, 172, 176), (160, 168, 170))
_TABLE = (120, 150, 176)  # light wood
_TABLE_TAPE = (70, 92, 110)
_LINK = (58, 58, 62)
_LINK_HI = (110, 110, 118)
_BASE = (40, 40, 44)
_FINGER = (60, 200, 250)  # yellow-orange, easy to spot in every view
_FINGER_HI = (150, 235, 255)
_ACCENT = {"left": (220, 140, 40), "right": (40, 110, 230)}  # left arm blue, right arm orange
_BLOCK = ((40, 40, 200), (30, 30, 160), (60, 60, 230))  # red block: sides and top


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    # Positive rotation about y tips +x downwards: every pitch joint bends the arm forward/down,
    # as on Interbotix arms.
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _look(forward: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World-from-camera rotation (columns: camera x right, y down, z forward)."""
    z = forward / np.linalg.norm(forward)
    x = np.cross(-up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


@dataclass(frozen=True)
class ArmPose:
    """Forward kinematics of one arm: key points (world, m) and the gripper frame."""

    base: np.ndarray
    shoulder: np.ndarray
    elbow: np.ndarray
    wrist: np.ndarray
    gripper_root: np.ndarray
    gripper_rot: np.ndarray  # columns: gripper x (pointing along the fingers), y, z
    finger_gap_m: float


def forward_kinematics(
    mount_xy: tuple[float, float], mount_yaw: float, q: np.ndarray, gripper_open: float
) -> ArmPose:
    """Joint angles (waist .. wrist_rotate, rad) and gripper opening (0..1) to an :class:`ArmPose`.

    At all zeros the upper arm is vertical and the forearm horizontal, pointing forward.
    """
    base = np.array([mount_xy[0], mount_xy[1], 0.0])
    r = _rz(mount_yaw) @ _rz(float(q[0]))
    shoulder = base + r @ np.array([0.0, 0.0, L_BASE])
    r = r @ _ry(float(q[1]))
    elbow = shoulder + r @ np.array([0.0, 0.0, L_UPPER])
    r = r @ _ry(float(q[2]))
    wrist = elbow + r @ np.array([L_FOREARM, 0.0, 0.0])
    r = r @ _rx(float(q[3])) @ _ry(float(q[4]))
    root = wrist + r @ np.array([L_WRIST, 0.0, 0.0])
    r = r @ _rx(float(q[5]))
    gap = FINGER_GAP_MIN_M + (FINGER_GAP_MAX_M - FINGER_GAP_MIN_M) * min(
        max(gripper_open, 0.0), 1.0
    )
    return ArmPose(base, shoulder, elbow, wrist, root, r, gap)


def _wrist_mount() -> tuple[np.ndarray, np.ndarray]:
    """A wrist camera's pose in its gripper frame: (position, gripper-from-camera rotation).

    Mounted above the gripper body and pitched down, as on ALOHA, so the fingers come up
    from the bottom edge of the image and the workspace ahead fills the rest.
    """
    tilt = math.radians(22.0)
    forward = np.array([math.cos(tilt), 0.0, -math.sin(tilt)])
    up = np.array([math.sin(tilt), 0.0, math.cos(tilt)])
    return np.array([-0.03, 0.0, 0.085]), _look(forward, up)


_WRIST_MOUNT_POS, _WRIST_MOUNT_ROT = _wrist_mount()


def _wrist_camera_pose(pose: ArmPose) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre and world-from-camera rotation of the wrist camera on this gripper."""
    r = pose.gripper_rot
    return pose.gripper_root + r @ _WRIST_MOUNT_POS, r @ _WRIST_MOUNT_ROT


@dataclass(frozen=True)
class _ArmSlot:
    """Where one follower stands and how to find its joints in its angle vector."""

    name: str
    side: str  # "left" or "right"
    mount_xy: tuple[float, float]
    mount_yaw: float
    joint_index: tuple[int, ...]
    gripper_index: int | None
    gripper_min_rad: float
    gripper_max_rad: float
    n_joints: int


def _arm_slots(rig: RigSpec) -> list[_ArmSlot]:
    followers = rig.followers
    if not 1 <= len(followers) <= 2:
        raise ValueError(
            f"rig {rig.id!r}: the synthetic renderer draws one or two follower arms, "
            f"not {len(followers)}"
        )
    # Which end of the table: by name when it says, otherwise by order in the rig file.
    sides: list[str] = []
    for i, arm in enumerate(followers):
        if arm.name.startswith("left"):
            sides.append("left")
        elif arm.name.startswith("right"):
            sides.append("right")
        else:
            sides.append(("left", "right")[i])
    if len(set(sides)) != len(sides):
        sides = ["left", "right"][: len(followers)]
    return [_slot(arm, side) for arm, side in zip(followers, sides, strict=True)]


def _slot(arm: Arm, side: str) -> _ArmSlot:
    names = arm.joint_names
    if all(n in names for n in _ARM_JOINTS):
        index = tuple(names.index(n) for n in _ARM_JOINTS)
    else:
        # Unfamiliar joint names: take the arm joints in order, skipping the gripper.
        index = tuple(i for i, n in enumerate(names) if n != arm.gripper)[: len(_ARM_JOINTS)]
    g_index = names.index(arm.gripper) if arm.gripper is not None else None
    g_min, g_max = (0.0, 1.0)
    if g_index is not None:
        g_min, g_max = arm.joints[g_index].min_rad, arm.joints[g_index].max_rad
    if side == "left":
        mount, yaw = (-BASE_X, 0.0), 0.0
    else:
        mount, yaw = (BASE_X, 0.0), math.pi
    return _ArmSlot(arm.name, side, mount, yaw, index, g_index, g_min, g_max, len(names))


# A primitive is (depth_m, order, kind, payload); sorting far-to-near, ties broken by the
# order it was emitted in, so drawing is deterministic.
_Prim = tuple[float, int, str, tuple]


class Renderer:
    """Draws one view of the virtual rig at a fixed resolution.

    ``render()`` takes the follower angles (radians, in each arm's rig-spec joint order, keyed
    by arm name) and returns a new colour image (H×W×3 uint8 BGR) and a new depth image (H×W
    uint16 mm, 0 = no return). Depth does not depend on ``frame_number`` or ``stamp_ns``; only
    the burned-in text in the colour image does.

    The gripper joint maps linearly from its ``min_rad`` (fingers closed) to its ``max_rad``
    (fully open). A renderer keeps scratch buffers: use one per thread.
    """

    def __init__(self, rig: RigSpec, view: str, width: int, height: int):
        if view not in VIEWS:
            raise ValueError(f"unknown synthetic view {view!r}; expected one of {', '.join(VIEWS)}")
        self.rig = rig
        self.view = view
        self.width = int(width)
        self.height = int(height)
        self._slots = _arm_slots(rig)
        self._wrist_side: str | None = None
        if view.endswith("_wrist"):
            self._wrist_side = view.removesuffix("_wrist")
            if not any(s.side == self._wrist_side for s in self._slots):
                raise ValueError(
                    f"view {view!r} needs a {self._wrist_side} follower arm in rig {rig.id!r}"
                )
        hfov_deg = {"overhead": 70.0, "low": 82.0}.get(view, 87.0)
        self._f = (self.width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        self._cx = (self.width - 1) / 2.0
        self._cy = (self.height - 1) / 2.0
        self._text_scale = max(0.35, self.height / 800.0)
        self._text_thick = 1 if self.height < 600 else 2
        # Pixel-coordinate grids for the per-pixel plane depth (inverse depth is affine in u, v).
        # (Real arrays, not broadcast views: cv2 needs contiguous rows.)
        self._u = np.tile(np.arange(self.width, dtype=np.float32), (self.height, 1))
        self._v = np.tile(np.arange(self.height, dtype=np.float32)[:, None], (1, self.width))
        self._mask = np.zeros((self.height, self.width), np.uint8)
        self._f32 = np.zeros((self.height, self.width), np.float32)
        self._inv = np.zeros((self.height, self.width), np.float32)
        self._tape = _tape_segments()
        self._planes = _scene_planes()
        self._plane_corners = np.stack([p.corners for p in self._planes])
        self._plane_normals = np.stack([p.normal for p in self._planes])
        self._plane_offsets = np.array([p.offset for p in self._planes])
        faces = _block_faces()
        self._block_normals = np.stack([f[0] for f in faces])
        self._block_corners = np.stack([f[1] for f in faces])
        self._block_colors = [f[2] for f in faces]
        self._text_boxes: dict[int, tuple[int, int, int]] = {}
        self._sky = np.empty((self.height, self.width, 3), np.uint8)
        self._sky[:] = _SKY
        if self._wrist_side is None:
            # A fixed camera: the room, the table and the block never change, draw them once.
            centre, rot = self._fixed_camera()
            self._fixed_pose = (centre, rot)
            self._background = self._draw_static(centre, rot)
            self._fixed_prims = self._block_prims(centre, rot)

    # -- public ---------------------------------------------------------------------------

    def intrinsics(self) -> Intrinsics:
        """Pinhole intrinsics of this view (no distortion)."""
        return Intrinsics(self.width, self.height, self._f, self._f, self._cx, self._cy)

    def render(
        self, follower_angles: dict[str, np.ndarray], frame_number: int, stamp_ns: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Colour (BGR uint8) and depth (uint16 mm) for these follower angles."""
        poses = {s.side: self._pose_of(s, follower_angles) for s in self._slots}
        if self._wrist_side is None:
            centre, rot = self._fixed_pose
            color = self._background[0].copy()
            depth = self._background[1].copy()
            prims = list(self._fixed_prims)
        else:
            # The camera rides on the gripper: the whole scene moves, nothing can be cached.
            centre, rot = _wrist_camera_pose(poses[self._wrist_side])
            color, depth = self._draw_static(centre, rot)
            prims = self._block_prims(centre, rot)
        for side, pose in poses.items():
            self._arm_prims(pose, side, centre, rot, prims)
        prims.sort(key=lambda p: (-p[0], p[1]))  # far to near; ties in emission order
        for prim in prims:
            self._draw(prim, color, depth)
        self._burn_in(color, frame_number, stamp_ns)
        return color, depth

    # -- scene -----------------------------------------------------------------------------

    def _fixed_camera(self) -> tuple[np.ndarray, np.ndarray]:
        if self.view == "overhead":
            # Straight down from 1.1 m; the far table edge at the top of the image, so the
            # left arm is on the left as the operator sees it.
            return np.array([0.0, 0.0, 1.1]), _look(
                np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])
            )
        # low: just beyond the near table edge, a little above the table, looking across it.
        centre = np.array([0.0, -0.70, 0.16])
        target = np.array([0.0, 0.15, 0.12])
        return centre, _look(target - centre, np.array([0.0, 0.0, 1.0]))

    def _pose_of(self, slot: _ArmSlot, angles: dict[str, np.ndarray]) -> ArmPose:
        try:
            q_all = np.asarray(angles[slot.name], dtype=np.float64)
        except KeyError:
            raise KeyError(f"follower angles for arm {slot.name!r} missing") from None
        if q_all.shape != (slot.n_joints,):
            raise ValueError(
                f"arm {slot.name!r}: expected {slot.n_joints} joint angles, got shape {q_all.shape}"
            )
        q = np.zeros(len(_ARM_JOINTS))
        q[: len(slot.joint_index)] = q_all[list(slot.joint_index)]
        opening = 1.0
        if slot.gripper_index is not None:
            g = float(q_all[slot.gripper_index])
            opening = (g - slot.gripper_min_rad) / (slot.gripper_max_rad - slot.gripper_min_rad)
        return forward_kinematics(slot.mount_xy, slot.mount_yaw, q, opening)

    # -- projection ------------------------------------------------------------------------

    def _project(self, pc: np.ndarray) -> np.ndarray:
        """Camera-frame points (z > 0) to fixed-point pixel coordinates for cv2."""
        u = self._f * pc[:, 0] / pc[:, 2] + self._cx
        v = self._f * pc[:, 1] / pc[:, 2] + self._cy
        uv = np.stack([u, v], axis=1) * _ONE
        # Keep far-off-screen points within int32 after the shift; cv2 clips the rest.
        return np.clip(np.rint(uv), -_LIM, _LIM).astype(np.int32)

    def _clip_polygon(self, pc: np.ndarray) -> np.ndarray:
        """Clip a convex camera-frame polygon to z >= NEAR_M (Sutherland–Hodgman, one plane)."""
        out: list[list[float]] = []
        pts = pc.tolist()  # plain floats: a handful of points, numpy per-row calls cost more
        n = len(pts)
        for i in range(n):
            a, b = pts[i], pts[(i + 1) % n]
            a_in, b_in = a[2] >= NEAR_M, b[2] >= NEAR_M
            if a_in:
                out.append(a)
            if a_in != b_in:
                t = (NEAR_M - a[2]) / (b[2] - a[2])
                out.append([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), NEAR_M])
        return np.array(out) if out else np.zeros((0, 3))

    # -- static part: room, table ------------------------------------------------------------

    def _draw_static(self, centre: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Room and table for one camera pose: new colour and depth images."""
        color = self._sky.copy()  # a copy is ~30x faster than filling with a BGR tuple
        projected = self._polygons(self._plane_corners, self._plane_visible(centre), centre, rot)
        # Planes are drawn back to front; when one covers the whole image (a wrist camera
        # looking at the table), nothing drawn before it can show, so skip those.
        first = 0
        for i, pts in enumerate(projected):
            if pts is not None and self._covers_image(pts):
                first = i
        # Each plane writes its inverse depth into one float image (0 = nothing there); one
        # conversion to millimetres at the end is cheaper than one per plane.
        inv = self._inv
        inv[:] = 0.0
        for plane, pts in zip(self._planes[first:], projected[first:], strict=True):
            if pts is not None:
                self._draw_plane(plane, pts, centre, rot, color, inv)
        mm = self._f32
        with np.errstate(divide="ignore"):
            np.divide(np.float32(1000.0), inv, out=mm)
        # Farther than a uint16 holds (or no surface at all, 1000/0 = inf): no return, as a
        # real sensor reports. cv2.threshold is several times faster than np.clip here.
        cv2.threshold(mm, 65535.0, 0.0, cv2.THRESH_TOZERO_INV, dst=mm)
        depth = np.empty((self.height, self.width), np.uint16)
        np.copyto(depth, mm, casting="unsafe")  # truncates to whole mm
        self._draw_table_tape(centre, rot, color)
        return color, depth

    def _covers_image(self, pts: np.ndarray) -> bool:
        poly = (pts.astype(np.float32) / _ONE).reshape(-1, 1, 2)
        w, h = self.width - 1.0, self.height - 1.0
        return all(
            cv2.pointPolygonTest(poly, c, False) > 0
            for c in ((0.0, 0.0), (w, 0.0), (0.0, h), (w, h))
        )

    def _plane_visible(self, centre: np.ndarray) -> list[bool]:
        # A plane n·X = offset is seen from its front side only (n points into the room).
        return (self._plane_normals @ centre > self._plane_offsets).tolist()

    def _polygons(
        self, corners: np.ndarray, visible: list[bool], centre: np.ndarray, rot: np.ndarray
    ) -> list[np.ndarray | None]:
        """Project K four-corner world polygons (K×4×3) at once: fixed-point pixel outlines,
        clipped to the near plane; None where not ``visible`` or wholly behind the camera."""
        cam = (corners.reshape(-1, 3) - centre) @ rot
        z = cam[:, 2]
        safe_z = np.maximum(z, NEAR_M)
        uv = np.empty((len(cam), 2))
        uv[:, 0] = self._f * cam[:, 0] / safe_z + self._cx
        uv[:, 1] = self._f * cam[:, 1] / safe_z + self._cy
        pts = np.clip(np.rint(uv * _ONE), -_LIM, _LIM).astype(np.int32)
        z_min = z.reshape(-1, 4).min(axis=1).tolist()
        out: list[np.ndarray | None] = []
        for i, seen in enumerate(visible):
            if not seen:
                out.append(None)
            elif z_min[i] >= NEAR_M:
                out.append(pts[4 * i : 4 * i + 4])
            else:  # partly behind the camera: clip (rare, so the slow path is fine)
                pc = self._clip_polygon(cam[4 * i : 4 * i + 4])
                out.append(self._project(pc) if len(pc) >= 3 else None)
        return out

    def _draw_plane(
        self,
        plane: _Plane,
        pts: np.ndarray,
        centre: np.ndarray,
        rot: np.ndarray,
        color: np.ndarray,
        inv: np.ndarray,
    ) -> None:
        x0, y0 = (pts.min(axis=0) >> _SHIFT) - 1
        x1, y1 = (pts.max(axis=0) >> _SHIFT) + 2
        x0, y0 = max(int(x0), 0), max(int(y0), 0)
        x1, y1 = min(int(x1), self.width), min(int(y1), self.height)
        if x0 >= x1 or y0 >= y1:
            return
        cv2.fillConvexPoly(color, pts, plane.color, cv2.LINE_8, _SHIFT)
        # Scratch buffers are reused: fresh full-frame allocations cost page faults each time.
        mask = self._mask[y0:y1, x0:x1]
        mask[:] = 0
        cv2.fillConvexPoly(
            mask, pts - np.array([x0 * _ONE, y0 * _ONE], np.int32), 255, cv2.LINE_8, _SHIFT
        )
        # Depth of a plane along a pixel ray: the inverse z-depth is affine in (u, v), so one
        # weighted sum of the pixel grids gives it exactly.
        k = plane.offset - float(plane.normal @ centre)
        a, b, c = (float(plane.normal @ rot[:, i]) for i in range(3))
        ka = a / (self._f * k)
        kb = b / (self._f * k)
        kc = (c - a * self._cx / self._f - b * self._cy / self._f) / k
        roi = self._f32[y0:y1, x0:x1]
        cv2.addWeighted(self._u[y0:y1, x0:x1], ka, self._v[y0:y1, x0:x1], kb, kc, dst=roi)
        cv2.copyTo(roi, mask, inv[y0:y1, x0:x1])

    def _draw_table_tape(self, centre: np.ndarray, rot: np.ndarray, color: np.ndarray) -> None:
        # Tape lines on the table (a border and a centre cross) so the table's perspective,
        # and a wrist camera's motion over it, read at a glance.
        cam = ((self._tape - centre) @ rot).tolist()
        for i in range(0, len(cam), 2):
            (x0, y0, z0), (x1, y1, z1) = cam[i], cam[i + 1]
            if z0 < NEAR_M and z1 < NEAR_M:
                continue
            if z0 < NEAR_M or z1 < NEAR_M:
                t = (NEAR_M - z0) / (z1 - z0)
                xc, yc = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                if z0 < NEAR_M:
                    x0, y0, z0 = xc, yc, NEAR_M
                else:
                    x1, y1, z1 = xc, yc, NEAR_M
            thick = max(1, round(0.012 * self._f / (0.5 * (z0 + z1))))
            a, b = self._px(x0, y0, z0), self._px(x1, y1, z1)
            cv2.line(color, a, b, _TABLE_TAPE, thick, cv2.LINE_AA, _SHIFT)

    # -- dynamic part: block and arms --------------------------------------------------------

    def _block_prims(self, centre: np.ndarray, rot: np.ndarray) -> list[_Prim]:
        # Back faces (normal pointing away from the camera) are hidden by the front ones.
        facing = (
            np.einsum("ij,ij->i", self._block_normals, centre - self._block_corners[:, 0]) > 0
        ).tolist()
        polys = self._polygons(self._block_corners, facing, centre, rot)
        z_cam = ((self._block_corners.reshape(-1, 3) - centre) @ rot[:, 2]).reshape(-1, 4)
        prims: list[_Prim] = []
        for i, pts in enumerate(polys):
            if pts is None:
                continue
            z = z_cam[i]
            d_mm = _mm(max(float(z.min()), NEAR_M))
            prims.append((float(z.mean()), len(prims), "poly", (pts, self._block_colors[i], d_mm)))
        return prims

    def _px(self, x: float, y: float, z: float) -> tuple[int, int]:
        """One camera-frame point (z > 0) to fixed-point pixel coordinates (plain floats: for
        a handful of points this is several times faster than numpy)."""
        u = (self._f * x / z + self._cx) * _ONE
        v = (self._f * y / z + self._cy) * _ONE
        return (int(round(min(max(u, -_LIM), _LIM))), int(round(min(max(v, -_LIM), _LIM))))

    def _arm_prims(
        self, pose: ArmPose, side: str, centre: np.ndarray, rot: np.ndarray, prims: list[_Prim]
    ) -> None:
        gx, gy = pose.gripper_rot[:, 0], pose.gripper_rot[:, 1]
        palm = pose.gripper_root + PALM_LEN * gx
        tip_off = (L_GRIPPER - PALM_LEN) * gx
        gap = pose.finger_gap_m
        bar = FINGER_GAP_MAX_M + 0.008
        own_wrist = self._wrist_side == side
        # Rows: start, end; with (radius m, colour, highlight, depth pieces) alongside. Long
        # links get several depth pieces so their depth follows them as they recede.
        ends: list[np.ndarray] = []
        style: list[tuple[float, tuple, tuple | None, int]] = []
        if not own_wrist:
            # A wrist camera cannot see its own arm behind it; leaving these out also keeps
            # links right at the lens from smearing across its image.
            pedestal = pose.base + np.array([0.0, 0.0, 0.05])
            ends += [
                pose.base, pedestal, pedestal, pose.shoulder, pose.shoulder, pose.elbow,
                pose.elbow, pose.wrist, pose.wrist, pose.gripper_root, pose.gripper_root, palm,
            ]  # fmt: skip
            style += [
                (0.055, _BASE, None, 1),
                (0.035, _LINK, _LINK_HI, 1),
                (0.028, _LINK, _LINK_HI, 3),
                (0.025, _LINK, _LINK_HI, 3),
                (0.022, _LINK, _LINK_HI, 1),
                (0.024, _LINK, _LINK_HI, 1),
            ]
        # Seen from the other cameras the gripper is small, so it is drawn a little chunkier
        # there; from its own wrist camera, centimetres from the lens, true to size.
        bar_r, finger_r = (0.0045, 0.006) if own_wrist else (0.009, 0.009)
        ends += [palm - bar * gy, palm + bar * gy]
        style.append((bar_r, _BASE, None, 1))
        for sgn in (-1.0, 1.0):
            root = palm + sgn * gap * gy
            ends += [root, root + tip_off]
            style.append((finger_r, _FINGER, _FINGER_HI, 2))
        discs = [] if own_wrist else [pose.shoulder, pose.elbow, pose.wrist]
        disc_radii = (0.04, 0.034, 0.03)[: len(discs)]
        cam = ((np.array(ends + discs) - centre) @ rot).tolist()
        f, near = self._f, NEAR_M
        for i, (radius, col, hi, pieces) in enumerate(style):
            (x0, y0, z0), (x1, y1, z1) = cam[2 * i], cam[2 * i + 1]
            if z0 < near and z1 < near:
                continue
            if z0 < near or z1 < near:  # clip to the near plane
                t = (near - z0) / (z1 - z0)
                xc, yc = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                if z0 < near:
                    x0, y0, z0 = xc, yc, near
                else:
                    x1, y1, z1 = xc, yc, near
            z = 0.5 * (z0 + z1)
            thick = max(1, round(2.0 * radius * f / z))
            # Colour is one stroke (pieces of different widths would show seams); depth is
            # drawn in pieces.
            along = [
                (
                    x0 + k / pieces * (x1 - x0),
                    y0 + k / pieces * (y1 - y0),
                    z0 + k / pieces * (z1 - z0),
                )
                for k in range(pieces + 1)
            ]
            uv = [self._px(*p) for p in along]
            depth_pieces = [
                (uv[k], uv[k + 1], _mm(0.5 * (along[k][2] + along[k + 1][2]) - radius))
                for k in range(pieces)
            ]
            prims.append((z, len(prims), "seg", (uv[0], uv[-1], thick, col, hi, depth_pieces)))
        accent = _ACCENT[side]
        for (x, y, z), radius in zip(cam[len(ends) :], disc_radii, strict=True):
            if z < near:
                continue
            r_fixed = max(1, round(radius * f / z * _ONE))
            # Nudged nearer than its links so the joint cap sits on top of them.
            prims.append(
                (
                    z - 0.001,
                    len(prims),
                    "disc",
                    (self._px(x, y, z), r_fixed, accent, _mm(z - radius)),
                )
            )

    def _draw(self, prim: _Prim, color: np.ndarray, depth: np.ndarray) -> None:
        kind, payload = prim[2], prim[3]
        if kind == "seg":
            a, b, thick, col, hi, depth_pieces = payload
            cv2.line(color, a, b, col, thick, cv2.LINE_AA, _SHIFT)
            if hi is not None and thick >= 4:
                # A lighter stripe along the top of a link: reads as a lit tube, not a flat bar.
                off = max(1, thick // 5) * _ONE
                cv2.line(
                    color,
                    (a[0], a[1] - off),
                    (b[0], b[1] - off),
                    hi,
                    max(1, thick // 3),
                    cv2.LINE_AA,
                    _SHIFT,
                )
            for pa, pb, d_mm in depth_pieces:
                cv2.line(depth, pa, pb, d_mm, thick, cv2.LINE_8, _SHIFT)
        elif kind == "disc":
            c, r, col, d_mm = payload
            cv2.circle(color, c, r, col, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(color, c, max(1, r // 2), _LINK, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(depth, c, r, d_mm, -1, cv2.LINE_8, _SHIFT)
        else:  # poly
            pts, col, d_mm = payload
            cv2.fillConvexPoly(color, pts, col, cv2.LINE_AA, _SHIFT)
            cv2.fillConvexPoly(depth, pts, d_mm, cv2.LINE_8, _SHIFT)

    def _burn_in(self, color: np.ndarray, frame_number: int, stamp_ns: int) -> None:
        # Integer arithmetic so the text never depends on float rounding.
        sec, rem = divmod(int(stamp_ns), 1_000_000_000)
        text = f"{self.view}  #{int(frame_number):06d}  t={sec}.{rem // 1_000_000:03d}s"
        font = cv2.FONT_HERSHEY_SIMPLEX
        box = self._text_boxes.get(len(text))
        if box is None:  # getTextSize is slow enough to matter at 120 calls a second
            (tw, th), base = cv2.getTextSize(text, font, self._text_scale, self._text_thick)
            box = self._text_boxes[len(text)] = (tw, th, base)
        tw, th, base = box
        pad = 4
        cv2.rectangle(color, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
        cv2.putText(
            color,
            text,
            (pad, pad + th),
            font,
            self._text_scale,
            (255, 255, 255),
            self._text_thick,
            cv2.LINE_AA,
        )


def _mm(z_m: float) -> int:
    return int(min(max(round(z_m * 1000.0), 1), 65535))


@dataclass(frozen=True)
class _Plane:
    """A flat convex surface: n·X = offset, bounded by ``corners`` (world, m)."""

    normal: np.ndarray
    offset: float
    corners: np.ndarray
    color: tuple[int, int, int]


def _scene_planes() -> list[_Plane]:
    """Room and table, in drawing order (the table last: from above it hides the floor)."""
    r, f, t = ROOM_HALF, FLOOR_Z, ROOM_TOP_Z
    hx, hy = TABLE_HALF_X, TABLE_HALF_Y
    return [
        _Plane(
            np.array([0.0, 0.0, 1.0]),
            f,
            np.array([[-r, -r, f], [r, -r, f], [r, r, f], [-r, r, f]]),
            _FLOOR,
        ),
        _Plane(
            np.array([0.0, -1.0, 0.0]),
            -r,
            np.array([[-r, r, f], [r, r, f], [r, r, t], [-r, r, t]]),
            _WALLS[0],
        ),
        _Plane(
            np.array([0.0, 1.0, 0.0]),
            -r,
            np.array([[r, -r, f], [-r, -r, f], [-r, -r, t], [r, -r, t]]),
            _WALLS[1],
        ),
        _Plane(
            np.array([1.0, 0.0, 0.0]),
            -r,
            np.array([[-r, -r, f], [-r, r, f], [-r, r, t], [-r, -r, t]]),
            _WALLS[2],
        ),
        _Plane(
            np.array([-1.0, 0.0, 0.0]),
            -r,
            np.array([[r, r, f], [r, -r, f], [r, -r, t], [r, r, t]]),
            _WALLS[3],
        ),
        _Plane(
            np.array([0.0, 0.0, 1.0]),
            0.0,
            np.array([[-hx, -hy, 0.0], [hx, -hy, 0.0], [hx, hy, 0.0], [-hx, hy, 0.0]]),
            _TABLE,
        ),
    ]


def _block_faces() -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int]]]:
    """The block's five visible-able faces: (outward normal, world corners, colour)."""
    h = BLOCK_HALF
    top, side_y, side_x = _BLOCK[2], _BLOCK[0], _BLOCK[1]
    faces = [
        ((0, 0, 1), [(-h, -h, 2 * h), (h, -h, 2 * h), (h, h, 2 * h), (-h, h, 2 * h)], top),
        ((0, -1, 0), [(-h, -h, 0), (h, -h, 0), (h, -h, 2 * h), (-h, -h, 2 * h)], side_y),
        ((0, 1, 0), [(h, h, 0), (-h, h, 0), (-h, h, 2 * h), (h, h, 2 * h)], side_y),
        ((-1, 0, 0), [(-h, h, 0), (-h, -h, 0), (-h, -h, 2 * h), (-h, h, 2 * h)], side_x),
        ((1, 0, 0), [(h, -h, 0), (h, h, 0), (h, h, 2 * h), (h, -h, 2 * h)], side_x),
    ]
    offset = np.array([BLOCK_CENTER[0], BLOCK_CENTER[1], 0.0])
    return [(np.array(n, float), np.array(c, float) + offset, col) for n, c, col in faces]


def _tape_segments() -> np.ndarray:
    """Tape on the table: endpoints (world, m), two rows per line."""
    hx, hy, z = TABLE_HALF_X - 0.04, TABLE_HALF_Y - 0.04, 0.002
    lines = [
        ((-hx, -hy), (hx, -hy)),
        ((hx, -hy), (hx, hy)),
        ((hx, hy), (-hx, hy)),
        ((-hx, hy), (-hx, -hy)),
        ((0.0, -hy), (0.0, hy)),
        ((-0.2, 0.0), (0.2, 0.0)),
    ]
    return np.array([(x, y, z) for line in lines for (x, y) in line])
