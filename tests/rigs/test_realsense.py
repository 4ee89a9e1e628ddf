"""The RealSense driver against the virtual RealSense, through the real pyrealsense2 API.

No hardware: every camera here is an ``rs.software_device`` fed rendered frames, opened by
the same sensor -> syncer (-> align) code that opens a USB camera.
"""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace

import numpy as np
import pyrealsense2 as rs
import pytest

from rigs.cameras.base import CameraError, driver_for
from rigs.cameras.realsense import HW_CLOCK_WRAP_NS, RealSenseCamera, list_devices
from rigs.spec import load_rig
from rigs.virtual.realsense_device import FIRMWARE, MODEL, VirtualRealSense
from rigs.virtual.renderer import Renderer
from rigs.virtual.world import SharedWorld, WorldLayout

RIG = load_rig("sim-bimanual").spec
W, H = 320, 240  # small frames keep the suite quick; the code path is the same
_serials = itertools.count(1)


@pytest.fixture
def world():
    w = SharedWorld(WorldLayout.from_spec(RIG), create=True)
    w.write("left_follower", np.array([0.2, 0.3, 0.2, 0.0, 0.8, 0.0, 1.0]))
    w.write("right_follower", np.array([-0.2, 0.4, 0.2, 0.0, 0.7, 0.0, 0.3]))
    yield w
    w.close()


def camera_spec(name: str = "overhead", **changes):
    base = next(c for c in RIG.cameras if c.name == name)
    update = {
        "driver": "realsense",
        "serial": f"9{next(_serials):011d}",
        "width": W,
        "height": H,
        "depth": True,
    }
    update.update(changes)
    return base.model_copy(update=update)


@pytest.fixture
def virtual(world):
    """Start virtual devices on demand; close every one at the end of the test."""
    made: list[VirtualRealSense] = []

    def make(spec, **kwargs) -> VirtualRealSense:
        device = VirtualRealSense(spec, rig=RIG, world=world, **kwargs)
        made.append(device)
        device.start()
        return device

    yield make
    for device in made:
        device.close()


def read_n(cam: RealSenseCamera, n: int, timeout_s: float = 2.0):
    return [cam.read(timeout_s=timeout_s) for _ in range(n)]


def angles(world) -> dict[str, np.ndarray]:
    return {arm: world.read(arm) for arm in ("left_follower", "right_follower")}


def test_registered_under_its_rig_file_name():
    assert driver_for("realsense") is RealSenseCamera


def test_opens_by_serial_and_reads_colour_and_depth_at_the_spec_size(virtual, world):
    spec = camera_spec()
    virtual(spec)
    cam = RealSenseCamera(spec, rig=RIG, world=world)  # runtime resources are accepted
    with cam:
        assert cam.is_connected
        frames = read_n(cam, 20)
    assert not cam.is_connected
    for f in frames:
        assert f.color.shape == (H, W, 3) and f.color.dtype == np.uint8
        assert f.depth is not None and f.depth.shape == (H, W) and f.depth.dtype == np.uint16
    # The syncer pairs every frame after start-up (a librealsense 2.59 quirk broke this:
    # see the actual_fps metadata set in VirtualRealSense).
    assert cam.incomplete_framesets <= 2


def test_colour_and_depth_of_a_frameset_are_the_renderers_for_that_frame(virtual, world):
    spec = camera_spec()
    device = virtual(spec)
    with RealSenseCamera(spec) as cam:
        frames = read_n(cam, 5)
    renderer = Renderer(RIG, "overhead", W, H)
    for f in frames:
        produced = device.produced_depth(f.frame_number)
        assert produced is not None
        assert np.array_equal(f.depth, produced), "depth is bit-exact"
        # The world is still, so colour is determined by (frame number, device stamp): the
        # burned-in text carries both, so this checks they travelled intact through librealsense.
        color, depth = renderer.render(angles(world), f.frame_number, f.device_stamp_ns)
        assert np.array_equal(f.color, color)
        assert np.array_equal(f.depth, depth)


def test_frame_numbers_and_stamps_increase_and_capture_precedes_receipt(virtual):
    spec = camera_spec(depth=False)
    virtual(spec)
    with RealSenseCamera(spec) as cam:
        frames = read_n(cam, 15)
    numbers = [f.frame_number for f in frames]
    assert all(b > a for a, b in itertools.pairwise(numbers))
    for key in ("device_stamp_ns", "capture_stamp_ns", "receipt_stamp_ns"):
        stamps = [getattr(f, key) for f in frames]
        assert all(b > a for a, b in itertools.pairwise(stamps)), key
    for f in frames:
        assert f.depth is None
        assert f.capture_stamp_ns <= f.receipt_stamp_ns
        # The host-clock mapping is sane: receipt after capture, never seconds later.
        assert f.receipt_stamp_ns - f.capture_stamp_ns < 5_000_000_000
    # The device clock is its own (not the host's) and ticks in microseconds.
    assert abs(frames[0].device_stamp_ns - frames[0].capture_stamp_ns) > 1_000_000
    assert all(f.device_stamp_ns % 1000 == 0 for f in frames)


def test_intrinsics_match_the_renderer(virtual):
    spec = camera_spec("low")
    virtual(spec)
    cam = RealSenseCamera(spec)
    with pytest.raises(CameraError, match="after connect"):
        cam.intrinsics()
    with cam:
        k = cam.intrinsics()
    want = Renderer(RIG, "low", W, H).intrinsics()
    assert (k.width, k.height) == (want.width, want.height)
    # librealsense stores intrinsics as float32.
    for field in ("fx", "fy", "cx", "cy"):
        assert getattr(k, field) == pytest.approx(getattr(want, field), rel=1e-6), field
    assert k.distortion_model == "plumb_bob" and k.coeffs == (0.0,) * 5


def test_info_names_the_device_and_the_applied_settings(virtual):
    spec = camera_spec(exposure_us=8000, white_balance_k=5000, gain=20)
    device = virtual(spec)
    with RealSenseCamera(spec) as cam:
        cam.read(timeout_s=2.0)
        info = cam.info()
    assert info.driver == "realsense"
    assert (info.model, info.serial, info.firmware) == (MODEL, spec.serial, FIRMWARE)
    assert info.extra["product_line"] == "D400"
    assert info.extra["usb_type"] == "virtual"
    assert info.extra["color_mode"] == f"{W}x{H}@30 bgr8"
    assert info.extra["depth_mode"] == f"{W}x{H}@30 z16"
    assert info.extra["timestamp_domain"] == "hardware_clock"
    # Auto off, exposure in the RGB sensor's 100 µs units, white balance in kelvin.
    assert info.extra["enable_auto_exposure"] == "0" and info.extra["exposure"] == "80"
    sensor = next(s for s in device.device.query_sensors() if s.supports(rs.option.white_balance))
    assert sensor.get_option(rs.option.enable_auto_exposure) == 0
    assert sensor.get_option(rs.option.exposure) == 80
    assert sensor.get_option(rs.option.gain) == 20
    assert sensor.get_option(rs.option.enable_auto_white_balance) == 0
    assert sensor.get_option(rs.option.white_balance) == 5000


def test_an_injected_drop_is_a_frame_number_gap_of_that_size(virtual):
    spec = camera_spec()
    device = virtual(spec)
    with RealSenseCamera(spec) as cam:
        before = read_n(cam, 3)
        device.inject_drop(3)
        after = read_n(cam, 8)
    numbers = [f.frame_number for f in before + after]
    steps = [b - a for a, b in itertools.pairwise(numbers)]
    assert 4 in steps, numbers  # three frame numbers never delivered
    assert device.frames_dropped == 3
    if device.frames_overrun == 0:  # a badly stalled host may lose frames of its own
        assert sorted(steps)[-1] == 4 and steps.count(4) == 1, numbers


def test_a_freeze_repeats_the_image_under_new_frame_numbers(virtual):
    spec = camera_spec(depth=False)
    device = virtual(spec)
    deadline = time.monotonic() + 30
    with RealSenseCamera(spec) as cam:
        a, b = read_n(cam, 2)
        assert not np.array_equal(a.color, b.color), "live frames differ (sensor noise)"
        device.inject_freeze(1.0)
        # Within the freeze frames keep coming, with new numbers, and the image repeats.
        run = [cam.read(timeout_s=2.0)]
        while len(run) < 4:
            f = cam.read(timeout_s=2.0)
            run = run + [f] if np.array_equal(f.color, run[-1].color) else [f]
            assert time.monotonic() < deadline, "no repeated image during the freeze"
        # After it, the image changes again.
        while np.array_equal((later := cam.read(timeout_s=2.0)).color, run[0].color):
            assert time.monotonic() < deadline, "the image still repeats long after the freeze"
    numbers = [f.frame_number for f in run]
    assert all(b > a for a, b in itertools.pairwise(numbers))
    assert later.frame_number > numbers[-1]


def test_a_silent_device_makes_read_raise_naming_the_camera(virtual):
    spec = camera_spec("low")
    device = virtual(spec)
    with RealSenseCamera(spec) as cam:
        cam.read(timeout_s=2.0)
        device.inject_disconnect()
        t0 = time.monotonic()
        with pytest.raises(CameraError, match=r"'low'.*within 0\.300 s") as err:
            for _ in range(10):  # frames the syncer already held come first
                cam.read(timeout_s=0.3)
        assert time.monotonic() - t0 < 10 * 0.3 + 1.0
        assert spec.serial in str(err.value)
        device.reconnect()
        resumed = cam.read(timeout_s=2.0)
    assert resumed.frame_number > 0


def test_an_unknown_serial_is_a_one_line_error_listing_what_is_connected(virtual):
    present = camera_spec()
    virtual(present)
    spec = camera_spec("low", serial="123456789012")
    with pytest.raises(CameraError) as err:
        RealSenseCamera(spec).connect()
    message = str(err.value)
    assert "\n" not in message
    assert "'low'" in message and "'123456789012'" in message
    assert present.serial in message
    assert "teleop cameras" in message


def test_a_mode_the_device_lacks_lists_the_available_ones(virtual):
    spec = camera_spec()
    virtual(spec)
    wrong = spec.model_copy(update={"fps": 15})
    with pytest.raises(CameraError, match=rf"no colour mode {W}x{H}@15.*available: {W}x{H}@30"):
        RealSenseCamera(wrong).connect()


def test_list_devices_shows_the_virtual_device_and_its_modes(virtual):
    spec = camera_spec()
    virtual(spec)
    rows = {row["serial"]: row for row in list_devices()}
    row = rows[spec.serial]
    assert row["name"] == MODEL and row["firmware"] == FIRMWARE
    assert row["virtual"] is True and row["product_line"] == "D400"
    assert row["color_modes"] == [f"{W}x{H}@30 bgr8"]
    assert row["depth_modes"] == [f"{W}x{H}@30 z16"]


def test_a_closed_virtual_device_is_no_longer_found(world):
    spec = camera_spec()
    device = VirtualRealSense(spec, rig=RIG, world=world)
    device.close()
    assert spec.serial not in {row["serial"] for row in list_devices()}
    with pytest.raises(CameraError, match="no RealSense with serial"):
        RealSenseCamera(spec).connect()


def test_aligned_depth_has_the_colour_size_and_agrees_with_the_render(virtual):
    spec = camera_spec(align_depth=True)
    device = virtual(spec)
    with RealSenseCamera(spec) as cam:
        frames = read_n(cam, 3)
        assert cam.info().extra["depth_aligned_to_color"] == "true"
    for f in frames:
        assert f.depth is not None and f.depth.shape == f.color.shape[:2]
        produced = device.produced_depth(f.frame_number)
        # Identity extrinsics: rs.align maps each pixel onto itself, except that its
        # pixel-edge rounding leaves a few hole lines (0) and the image's last row/column.
        holes = f.depth == 0
        assert holes.mean() < 0.1
        assert np.mean(f.depth[~holes] == produced[~holes]) > 0.99


def test_depth_in_other_units_is_converted_to_millimetres(virtual):
    spec = camera_spec()
    device = virtual(spec, depth_units_m=0.0001)  # D405-style 0.1 mm units
    with RealSenseCamera(spec) as cam:
        frames = read_n(cam, 3)
        assert cam.info().extra["depth_units_mm"] == "0.1"
    for f in frames:
        assert np.array_equal(f.depth, device.produced_depth(f.frame_number))


def test_jitter_delays_delivery_but_keeps_the_frames(virtual):
    spec = camera_spec(depth=False)
    device = virtual(spec)
    device.inject_jitter(0.004)
    with RealSenseCamera(spec) as cam:
        frames = read_n(cam, 10)
    assert all(b.frame_number > a.frame_number for a, b in itertools.pairwise(frames))
    device.inject_jitter(0)


def test_read_before_connect_and_after_disconnect_raises(virtual):
    spec = camera_spec("low", depth=False)
    virtual(spec)
    cam = RealSenseCamera(spec)
    with pytest.raises(CameraError, match="'low' is not connected"):
        cam.read()
    cam.connect()
    cam.read(timeout_s=2.0)
    cam.disconnect()
    with pytest.raises(CameraError, match="'low'"):
        cam.read()


def test_the_hardware_clock_is_unwrapped_at_32_bit_microseconds():
    cam = RealSenseCamera(camera_spec())

    def frame(ms: float):
        return SimpleNamespace(
            get_frame_timestamp_domain=lambda: rs.timestamp_domain.hardware_clock,
            get_timestamp=lambda: ms,
        )

    wrap_ms = HW_CLOCK_WRAP_NS / 1e6
    first = cam._device_ns(frame(wrap_ms - 10.0))
    second = cam._device_ns(frame(23.0))  # the counter wrapped between the two frames
    assert second - first == 33_000_000
