"""The synthetic camera: paced like a device, stamped by its own clock, rendering the world."""

from __future__ import annotations

import threading
import time
from importlib import metadata

import numpy as np
import pytest

from rigs.cameras.base import CameraError, driver_for
from rigs.cameras.synthetic import MODEL, SyntheticCamera, synthetic_serial
from rigs.spec import load_rig
from rigs.virtual.render_process import SLOTS
from rigs.virtual.renderer import Renderer
from rigs.virtual.world import SharedWorld, WorldLayout

RIG = load_rig("sim-bimanual").spec


@pytest.fixture
def world():
    w = SharedWorld(WorldLayout.from_spec(RIG), create=True)
    w.write("left_follower", np.array([0.2, 0.3, 0.2, 0.0, 0.8, 0.0, 1.0]))
    w.write("right_follower", np.array([-0.2, 0.4, 0.2, 0.0, 0.7, 0.0, 0.3]))
    yield w
    w.close()


def camera_spec(name: str = "overhead", **changes):
    # The preset's overhead camera is a virtual RealSense; the same view as a synthetic camera.
    spec = next(c for c in RIG.cameras if c.name == name)
    base = {"driver": "synthetic", "serial": None, "depth": False}
    return spec.model_copy(update={**base, **changes})


def make(world, name: str = "overhead", **changes) -> SyntheticCamera:
    return SyntheticCamera(camera_spec(name, **changes), rig=RIG, world=world)


def test_registered_under_its_rig_file_name():
    assert driver_for("synthetic") is SyntheticCamera


def test_paced_at_fps_with_increasing_numbers_and_stamps(world):
    cam = make(world, fps=30, width=160, height=120)
    with cam:
        t0 = time.monotonic_ns()
        frames = [cam.read(timeout_s=5.0) for _ in range(30)]
        elapsed_ns = time.monotonic_ns() - t0
    # Never faster than 30 fps: 30 frames take at least 29 periods (a slow machine, longer).
    assert elapsed_ns >= 29 * round(1e9 / 30)
    numbers = [f.frame_number for f in frames]
    assert numbers[0] == 0 and all(b > a for a, b in zip(numbers, numbers[1:], strict=False))
    for key in ("device_stamp_ns", "capture_stamp_ns", "receipt_stamp_ns"):
        stamps = [getattr(f, key) for f in frames]
        assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)), key
    for f in frames:
        assert f.receipt_stamp_ns >= f.capture_stamp_ns
        assert f.color.shape == (120, 160, 3) and f.depth is None
    # Capture stamps sit on the device's schedule: whole periods apart, no accumulated drift.
    period = round(1e9 / 30)
    for a, b in zip(frames, frames[1:], strict=False):
        assert b.capture_stamp_ns - a.capture_stamp_ns == (b.frame_number - a.frame_number) * period


def test_device_clock_has_its_own_epoch_and_runs_slightly_fast(world):
    cam = make(world, fps=60, width=64, height=48)
    with cam:
        first = cam.read()
        time.sleep(0.3)
        last = cam.read()
    assert abs(first.device_stamp_ns - first.capture_stamp_ns) > 1_000_000, "not the host clock"
    host = last.capture_stamp_ns - first.capture_stamp_ns
    device = last.device_stamp_ns - first.device_stamp_ns
    assert device - host == pytest.approx(host * 20e-6, abs=2)  # 20 ppm


def test_a_reader_late_by_more_than_the_buffer_sees_the_frame_number_jump(world):
    cam = make(world, fps=50, width=64, height=48)
    with cam:
        a = cam.read()
        time.sleep(16 / 50)  # 16 periods; the sensor buffers SLOTS (8)
        b = cam.read()
        c = cam.read()
    # The oldest frames were drawn over before they were read: the number jumps past them.
    assert b.frame_number - a.frame_number >= 16 - SLOTS
    assert c.frame_number > b.frame_number
    # Every number jumped over is counted as skipped, however late each read came.
    assert cam.frames_skipped == (c.frame_number - a.frame_number + 1) - 3
    assert cam.frames_delivered == 3


def test_a_reader_late_by_less_than_the_buffer_loses_nothing(world):
    cam = make(world, fps=50, width=64, height=48)
    with cam:
        first = cam.read()
        time.sleep(3 / 50)  # three periods late, as a busy capture thread might be
        frames = [cam.read() for _ in range(6)]
    numbers = [f.frame_number for f in [first, *frames]]
    if cam.frames_overrun == 0:  # unless the sensor process itself was starved
        assert numbers == list(range(first.frame_number, first.frame_number + 7)), numbers
    assert cam.frames_skipped == cam.frames_overrun
    # Buffered frames keep the time they were exposed, not the time they were read.
    period = round(1e9 / 50)
    for a, b in zip(frames, frames[1:], strict=False):
        assert b.capture_stamp_ns - a.capture_stamp_ns == (b.frame_number - a.frame_number) * period
    assert frames[0].receipt_stamp_ns - frames[0].capture_stamp_ns > period


def test_depth_when_the_spec_asks_for_it_matches_the_renderer(world):
    cam = make(world, depth=True, width=160, height=120)
    with cam:
        frame = cam.read()
    assert frame.depth is not None and frame.depth.dtype == np.uint16
    angles = {name: world.read(name) for name in ("left_follower", "right_follower")}
    color, depth = Renderer(RIG, "overhead", 160, 120).render(
        angles, frame.frame_number, frame.device_stamp_ns
    )
    assert np.array_equal(frame.depth, depth)
    assert np.array_equal(frame.color, color)


def test_frames_follow_the_world(world):
    cam = make(world, "left_wrist", width=160, height=120)
    with cam:
        before = cam.read().color
        written_ns = time.monotonic_ns()
        world.write("left_follower", np.array([0.2, 0.3, 0.2, 0.0, 0.8, 0.0, -0.6]))
        # The sensor buffers frames (up to SLOTS): the first exposed after the write shows it.
        frame = cam.read(timeout_s=5.0)
        for _ in range(SLOTS):
            if frame.capture_stamp_ns > written_ns:
                break
            frame = cam.read(timeout_s=5.0)
        assert frame.capture_stamp_ns > written_ns
    assert not np.array_equal(before[60:], frame.color[60:]), "the gripper closed"


def test_read_after_disconnect_raises_naming_the_camera(world):
    cam = make(world, "low", width=64, height=48)
    cam.connect()
    assert cam.is_connected
    cam.read()
    cam.disconnect()
    assert not cam.is_connected
    with pytest.raises(CameraError, match="'low'"):
        cam.read()


def test_read_before_connect_raises(world):
    with pytest.raises(CameraError, match="overhead"):
        make(world).read()


def test_disconnect_wakes_a_waiting_reader(world):
    cam = make(world, fps=1, width=64, height=48)
    cam.connect()
    threading.Timer(0.1, cam.disconnect).start()
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="disconnected"):
        cam.read(timeout_s=5.0)
    assert time.monotonic() - t0 < 2.0


def test_read_times_out_when_no_frame_is_due_in_time(world):
    cam = make(world, fps=1, width=64, height=48)
    with cam, pytest.raises(CameraError, match="no frame within"):
        cam.read(timeout_s=0.05)


def test_info_and_intrinsics(world):
    cam = make(world, "right_wrist")
    before = cam.intrinsics()
    info = cam.info()
    assert info.driver == "synthetic" and info.model == MODEL
    assert (
        info.serial == synthetic_serial("right_wrist") == make(world, "right_wrist").info().serial
    )
    assert info.serial != synthetic_serial("left_wrist")
    assert info.firmware == metadata.version("teleop")  # the software is its firmware
    assert info.extra["view"] == "right_wrist"
    with cam:
        k = cam.intrinsics()
    assert k == before and (k.width, k.height) == (640, 480) and k.fx > 0


def test_a_camera_without_a_view_is_refused(world):
    spec = camera_spec().model_copy(update={"name": "side", "view": None})
    with pytest.raises(CameraError, match="'side'.*view"):
        SyntheticCamera(spec, rig=RIG, world=world)


def _renderers() -> list[str]:
    import multiprocessing

    return [p.name for p in multiprocessing.active_children() if p.name.startswith("render-")]


def test_a_prepared_camera_boots_its_sensor_and_leaves_nothing_when_never_connected(world):
    cam = make(world, fps=30, width=160, height=120)
    cam.prepare()
    assert _renderers() == ["render-overhead"]  # booting while the rig's other parts start
    cam.disconnect()
    assert _renderers() == []
    # Prepared, then connected: the same process delivers frames.
    cam.prepare()
    with cam:
        assert cam.read(timeout_s=5.0).frame_number == 0
        assert _renderers() == ["render-overhead"]
    assert _renderers() == []
