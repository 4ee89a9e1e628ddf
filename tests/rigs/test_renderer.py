"""The synthetic renderer: deterministic, follows the joints, and its depth agrees with its image."""

from __future__ import annotations

import numpy as np
import pytest

from rigs.spec import load_rig
from rigs.virtual.renderer import VIEWS, Renderer

RIG = load_rig("sim-bimanual").spec
W, H = 640, 480
GRIPPER = 6  # index of the gripper joint in the preset's joint order
G_OPEN, G_CLOSED = 1.5, -0.6  # the preset's gripper max_rad / min_rad


def pose(
    waist=0.0, shoulder=0.0, elbow=0.0, roll=0.0, wrist=0.0, rotate=0.0, gripper=G_OPEN
) -> np.ndarray:
    return np.array([waist, shoulder, elbow, roll, wrist, rotate, gripper])


def working_pose() -> dict[str, np.ndarray]:
    """Both arms reaching towards the middle of the table, grippers pointing down."""
    return {
        "left_follower": pose(waist=0.2, shoulder=0.35, elbow=0.25, wrist=0.8, gripper=1.0),
        "right_follower": pose(waist=-0.25, shoulder=0.4, elbow=0.2, wrist=0.7, gripper=0.4),
    }


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean H×W mask of pixels that differ."""
    d = a != b
    return d.any(axis=2) if d.ndim == 3 else d


@pytest.fixture(scope="module")
def renderers() -> dict[str, Renderer]:
    return {v: Renderer(RIG, v, W, H) for v in VIEWS}


@pytest.mark.parametrize("view", VIEWS)
def test_outputs_have_the_promised_shapes(renderers, view):
    color, depth = renderers[view].render(working_pose(), 7, 1_234_567_890)
    assert color.shape == (H, W, 3) and color.dtype == np.uint8
    assert depth.shape == (H, W) and depth.dtype == np.uint16
    assert (depth > 0).mean() > 0.5, "most of every view is the table, the floor or a wall"


@pytest.mark.parametrize("view", VIEWS)
def test_deterministic_across_calls_and_instances(renderers, view):
    angles = working_pose()
    c1, d1 = renderers[view].render(angles, 42, 9_876_543_210)
    c2, d2 = renderers[view].render(angles, 42, 9_876_543_210)
    c3, d3 = Renderer(RIG, view, W, H).render(angles, 42, 9_876_543_210)
    assert c1.tobytes() == c2.tobytes() == c3.tobytes()
    assert d1.tobytes() == d2.tobytes() == d3.tobytes()


@pytest.mark.parametrize("view", VIEWS)
def test_burned_in_text_changes_with_frame_and_time_only(renderers, view):
    r = renderers[view]
    angles = working_pose()
    c1, d1 = r.render(angles, 1, 1_000_000_000)
    c2, d2 = r.render(angles, 2, 1_000_000_000)
    c3, _ = r.render(angles, 1, 2_500_000_000)
    assert np.array_equal(d1, d2), "depth never carries the text"
    for other in (c2, c3):
        diff = changed(c1, other)
        assert diff.any()
        rows, cols = np.nonzero(diff)
        # Only the text box in the top-left corner changes.
        assert rows.max() < 40 and cols.max() < W * 0.6


def test_overhead_sees_the_left_arm_move_on_the_left(renderers):
    r = renderers["overhead"]
    before = working_pose()
    after = working_pose()
    after["left_follower"][0] += 0.3  # waist
    c1, d1 = r.render(before, 0, 0)
    c2, d2 = r.render(after, 0, 0)
    diff = changed(c1, c2)
    assert diff.sum() > 500
    cols = np.nonzero(diff)[1]
    assert cols.max() < W // 2, "the left arm is on the left of the overhead image"
    assert changed(d1, d2).sum() > 500


def test_low_view_follows_the_elbow(renderers):
    r = renderers["low"]
    after = working_pose()
    after["right_follower"][2] -= 0.4  # elbow
    c1, d1 = r.render(working_pose(), 0, 0)
    c2, d2 = r.render(after, 0, 0)
    cols = np.nonzero(changed(c1, c2))[1]
    assert len(cols) > 500 and cols.min() > W // 3, "the right arm is on the right of the low view"
    assert changed(d1, d2).sum() > 500


@pytest.mark.parametrize("side", ["left", "right"])
def test_wrist_camera_sees_its_own_gripper_close_and_not_the_other(renderers, side):
    r = renderers[f"{side}_wrist"]
    other = "right" if side == "left" else "left"
    base = working_pose()
    own_closed = working_pose()
    own_closed[f"{side}_follower"][GRIPPER] = G_CLOSED
    other_closed = working_pose()
    other_closed[f"{other}_follower"][GRIPPER] = G_CLOSED
    c0, d0 = r.render(base, 0, 0)
    c1, d1 = r.render(own_closed, 0, 0)
    c2, d2 = r.render(other_closed, 0, 0)
    diff = changed(c0, c1)
    assert diff.sum() > 1000, "the fingers are large in their own wrist camera"
    rows = np.nonzero(diff)[0]
    assert rows.min() > H // 3, "the fingers come up from the bottom of the image"
    assert changed(d0, d1).sum() > 1000
    # In this pose the other arm is out of view: its gripper does not touch this image.
    assert np.array_equal(c0, c2) and np.array_equal(d0, d2)


def test_wrist_camera_moves_with_its_arm(renderers):
    r = renderers["left_wrist"]
    moved = working_pose()
    moved["left_follower"][0] += 0.2  # waist: the whole view swings
    c0, _ = r.render(working_pose(), 0, 0)
    c1, _ = r.render(moved, 0, 0)
    # The scene moves but the fingers stay put: much of the image changes, not all.
    assert 0.1 < changed(c0, c1).mean() < 0.95


def test_depth_agrees_with_the_intrinsics_and_the_scene(renderers):
    r = renderers["overhead"]
    k = r.intrinsics()
    assert (k.width, k.height) == (W, H)
    assert k.fx == k.fy > 0 and abs(k.cx - (W - 1) / 2) < 1 and abs(k.cy - (H - 1) / 2) < 1
    # Arms folded back out of the way, so the table centre is clear.
    folded = {
        name: pose(shoulder=-1.8, elbow=1.55, gripper=G_CLOSED)
        for name in ("left_follower", "right_follower")
    }
    color, depth = r.render(folded, 0, 0)
    # The overhead camera is 1.1 m above the table, looking straight down, far edge at the top.
    z_table = 1.1
    u, v = int(round(k.cx + k.fx * 0.2 / z_table)), int(round(k.cy + k.fy * 0.3 / z_table))
    assert abs(int(depth[v, u]) - 1100) <= 2
    # The red block: centre (0, 0.12) on the table, 6 cm tall.
    z_top = z_table - 0.06
    u, v = int(round(k.cx)), int(round(k.cy - k.fy * 0.12 / z_top))
    b, g, red = (int(x) for x in color[v, u])
    assert red > 150 and g < 100 and b < 100
    assert abs(int(depth[v, u]) - 1040) <= 3


def test_arm_pixels_are_nearer_than_the_table(renderers):
    r = renderers["overhead"]
    folded = {name: pose(shoulder=-1.8, elbow=1.55) for name in ("left_follower", "right_follower")}
    c0, d0 = r.render(folded, 0, 0)
    c1, d1 = r.render(working_pose(), 0, 0)
    # The table is 1.1 m below the camera, the floor 1.86 m; everything else is an arm.
    assert np.all((d1 <= 1100) | (d1 >= 1850))
    moved = changed(c0, c1)
    assert moved.sum() > 2000
    # Where the picture changed, an arm (nearer than the table) is in one of the two frames;
    # colour edges are anti-aliased, depth edges are not, hence not quite all.
    nearer = np.minimum(d0, d1)[moved] < 1095
    assert nearer.mean() > 0.9


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="sideways"):
        Renderer(RIG, "sideways", W, H)
    r = Renderer(RIG, "overhead", 64, 48)
    with pytest.raises(KeyError, match="right_follower"):
        r.render({"left_follower": pose()}, 0, 0)
    with pytest.raises(ValueError, match="left_follower"):
        r.render({"left_follower": np.zeros(3), "right_follower": pose()}, 0, 0)


def test_small_resolutions_work():
    for view in VIEWS:
        color, depth = Renderer(RIG, view, 160, 120).render(working_pose(), 3, 3)
        assert color.shape == (120, 160, 3) and depth.shape == (120, 160)
