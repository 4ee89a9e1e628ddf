"""The "opencv" driver: video files paced like a camera, V4L2 devices (faked), mode listing."""

from __future__ import annotations

import errno
import hashlib
import math
import os
import struct
import threading
import time

import cv2
import numpy as np
import pytest

from rigs.cameras import opencv_camera as oc
from rigs.cameras import v4l2
from rigs.cameras.base import CameraError, driver_for
from rigs.cameras.opencv_camera import OpenCVCamera
from rigs.cameras.video_file import VideoFileCamera
from rigs.spec import Camera as CameraSpec

W, H = 160, 120
GRID = 4  # the frame index is drawn as GRID×GRID black/white blocks, one bit each


def draw_index(index: int, width: int = W, height: int = H) -> np.ndarray:
    """A frame whose blocks spell ``index`` in binary; survives JPEG/MPEG-4 compression."""
    img = np.zeros((height, width, 3), np.uint8)
    bw, bh = width // GRID, height // GRID
    for bit in range(GRID * GRID):
        if index >> bit & 1:
            r, c = divmod(bit, GRID)
            img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = 255
    return img


def read_index(img: np.ndarray) -> int:
    height, width = img.shape[:2]
    bw, bh = width // GRID, height // GRID
    value = 0
    for bit in range(GRID * GRID):
        r, c = divmod(bit, GRID)
        block = img[
            r * bh + bh // 4 : (r + 1) * bh - bh // 4, c * bw + bw // 4 : (c + 1) * bw - bw // 4
        ]
        if block.mean() > 128:
            value |= 1 << bit
    return value


def write_video(path, fourcc: str, frames: int, fps: float = 30.0) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc}"
    for i in range(frames):
        writer.write(draw_index(i))
    writer.release()
    return str(path)


@pytest.fixture(params=[("MJPG", "avi"), ("mp4v", "mp4")], ids=["mjpg-avi", "mp4v-mp4"])
def video(request, tmp_path):
    fourcc, ext = request.param
    return write_video(tmp_path / f"clip.{ext}", fourcc, 12)


def spec(**changes) -> CameraSpec:
    base = {"name": "bench", "driver": "opencv", "width": W, "height": H, "fps": 30}
    base.update(changes)
    return CameraSpec(**base)


def increasing(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


def test_registered_under_its_rig_file_name_choosing_device_or_file():
    opencv = driver_for("opencv")
    assert opencv is oc.open_opencv
    assert type(opencv(spec(path="/srv/clips/clip.avi"))) is VideoFileCamera
    assert type(opencv(spec(path="clip.mp4"))) is VideoFileCamera  # relative: a file, too
    assert type(opencv(spec(path="/dev/v4l/by-id/usb-Cam-video-index0"))) is OpenCVCamera
    assert type(opencv(spec(index=0))) is OpenCVCamera


def test_extra_runtime_resources_are_accepted_and_ignored(video):
    for cam in (
        driver_for("opencv")(spec(path=video), rig=object(), world=object()),
        VideoFileCamera(spec(path=video), rig=object(), world=object()),
        OpenCVCamera(spec(index=0), rig=object(), world=object()),
    ):
        assert not cam.is_connected


# -- video files --------------------------------------------------------------------------------


def test_file_frames_arrive_in_order_then_the_end_is_an_error(video):
    cam = VideoFileCamera(spec(path=video, fps=60))
    frames = []
    with cam:
        with pytest.raises(CameraError, match=r"camera 'bench': video file ended"):
            for _ in range(13):
                frames.append(cam.read(timeout_s=1.0))
        with pytest.raises(CameraError, match="video file ended"):  # and stays ended
            cam.read(timeout_s=1.0)
    numbers = [f.frame_number for f in frames]
    # A slow test machine may make the driver skip frames, as a live camera would; what was
    # delivered is in file order and every frame is the one its number says.
    assert numbers[0] == 0 and increasing(numbers)
    assert len(frames) + cam.frames_skipped == 12
    assert [read_index(f.color) for f in frames] == numbers
    for key in ("device_stamp_ns", "capture_stamp_ns", "receipt_stamp_ns"):
        assert increasing([getattr(f, key) for f in frames]), key
    for f in frames:
        # The device stamp is the file's own timestamp: frame n at n / 30 s.
        assert f.device_stamp_ns == pytest.approx(f.frame_number * 1e9 / 30, abs=1e6)
        assert f.receipt_stamp_ns >= f.capture_stamp_ns
        assert f.color.shape == (H, W, 3) and f.color.dtype == np.uint8 and f.depth is None


def test_file_is_paced_at_the_spec_fps_not_the_files(tmp_path):
    path = write_video(tmp_path / "clip.avi", "MJPG", 10, fps=10)
    cam = VideoFileCamera(spec(path=path, fps=30, loop=True))
    with cam:
        t0 = time.monotonic_ns()
        frames = [cam.read(timeout_s=5.0) for _ in range(30)]
        elapsed_ns = time.monotonic_ns() - t0
    # A 10 fps file delivered at the spec's 30 fps: 30 frames in at least 29 periods of 1/30 s
    # (at the file's rate it would be 2.9 s; a loaded machine only makes it longer).
    assert elapsed_ns >= 29 * round(1e9 / 30)
    # Capture stamps sit on the delivery schedule: whole periods of 1/30 s apart, and frames
    # one period apart exist (at the file's 10 fps every step would be three periods).
    period = round(1e9 / 30)
    steps = [
        (b.capture_stamp_ns - a.capture_stamp_ns) / period
        for a, b in zip(frames, frames[1:], strict=False)
    ]
    for step in steps:
        assert step == pytest.approx(round(step), abs=1e-3) and step >= 1
    assert min(round(step) for step in steps) == 1


def test_loop_continues_past_the_end_with_monotonic_numbers_and_stamps(video):
    cam = VideoFileCamera(spec(path=video, fps=120, loop=True))
    with cam:
        frames = [cam.read(timeout_s=1.0) for _ in range(30)]
    numbers = [f.frame_number for f in frames]
    assert numbers[-1] >= 29 and increasing(numbers)
    assert [read_index(f.color) for f in frames] == [n % 12 for n in numbers]
    device = [f.device_stamp_ns for f in frames]
    assert increasing(device)
    assert increasing([f.capture_stamp_ns for f in frames])
    # Across the seam the file's clock goes on by one frame of the file (1/30 s).
    assert device[-1] == pytest.approx(numbers[-1] * 1e9 / 30, abs=2e6)


def test_file_size_mismatch_is_an_error_naming_requested_and_actual(video):
    cam = VideoFileCamera(spec(path=video, width=320, height=240))
    with pytest.raises(CameraError) as err:
        cam.connect()
    msg = str(err.value)
    assert "'bench'" in msg and "160x120" in msg and "320x240" in msg
    assert "on_mode_mismatch" in msg and "\n" not in msg
    assert not cam.is_connected


def test_file_size_mismatch_in_warn_mode_is_reported_not_fatal(video, caplog):
    cam = VideoFileCamera(spec(path=video, width=320, height=240, on_mode_mismatch="warn"))
    with cam:
        frame = cam.read(timeout_s=1.0)
        assert cam.mismatch is not None
        assert "160x120" in cam.mismatch and "320x240" in cam.mismatch
        assert cam.info().extra["mismatch"] == cam.mismatch
        assert frame.color.shape == (H, W, 3)  # delivered as the file is
        assert cam.intrinsics().width == W
    assert any("320x240" in r.getMessage() for r in caplog.records)


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(CameraError, match=r"camera 'bench': video file .*nope\.mp4 does not exist"):
        driver_for("opencv")(spec(path=str(missing))).connect()


def test_undecodable_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(CameraError, match="junk.avi"):
        VideoFileCamera(spec(path=str(junk))).connect()


def test_read_before_connect_and_after_disconnect_is_an_error(video):
    cam = VideoFileCamera(spec(path=video))
    with pytest.raises(CameraError, match="not connected"):
        cam.read()
    cam.connect()
    cam.read(timeout_s=1.0)
    cam.disconnect()
    assert not cam.is_connected
    with pytest.raises(CameraError, match="not connected"):
        cam.read()
    cam.disconnect()  # twice is harmless


def test_disconnect_wakes_a_reader_waiting_for_the_next_frame(video):
    cam = VideoFileCamera(spec(path=video, fps=1))  # the first frame is due in 1 s
    cam.connect()
    result: list[BaseException | None] = []

    def reader():
        try:
            cam.read(timeout_s=5.0)
            result.append(None)
        except CameraError as exc:
            result.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)
    cam.disconnect()
    t.join(2.0)
    assert not t.is_alive()
    assert isinstance(result[0], CameraError) and "disconnected" in str(result[0])


def test_short_timeout_before_the_next_frame_is_an_error(video):
    with (
        VideoFileCamera(spec(path=video, fps=2)) as cam,
        pytest.raises(CameraError, match="no frame within"),
    ):
        cam.read(timeout_s=0.05)


def test_file_info_and_intrinsics(video):
    with VideoFileCamera(spec(path=video)) as cam:
        info = cam.info()
        intr = cam.intrinsics()
    with open(video, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert (info.driver, info.model, info.firmware) == ("opencv", "video file", "")
    assert info.serial == sha[:12]
    assert "presentation time" in info.extra["timestamps"]
    assert info.extra["file_fps"] == "30"
    assert (intr.width, intr.height) == (W, H)
    assert intr.fx == intr.fy == pytest.approx((W / 2) / math.tan(math.radians(35)))
    assert (intr.cx, intr.cy) == ((W - 1) / 2, (H - 1) / 2)


# -- devices: paths -----------------------------------------------------------------------------


def test_missing_device_path_names_it_and_says_how_to_find_cameras():
    path = "/dev/v4l/by-id/usb-No_Such_Camera_0000-video-index0"
    with pytest.raises(CameraError) as err:
        driver_for("opencv")(spec(path=path)).connect()
    msg = str(err.value)
    assert path in msg and "ls /dev/v4l/by-id" in msg and "teleop cameras" in msg


def test_missing_device_index_names_the_node():
    with pytest.raises(CameraError, match=r"/dev/video99 does not exist"):
        OpenCVCamera(spec(index=99)).connect()


def test_list_devices_here_does_not_crash():
    devices = v4l2.list_devices()
    assert isinstance(devices, list)
    if not any(os.path.exists(f"/dev/video{i}") for i in range(64)):
        assert devices == []


# -- devices: the driver logic against a fake VideoCapture -------------------------------------

BY_ID = "/dev/v4l/by-id/usb-Fake_Cam_0001-video-index0"
FAKE_FORMATS = [
    {
        "fourcc": "YUYV",
        "description": "YUYV 4:2:2",
        "compressed": False,
        "sizes": [{"width": 640, "height": 480, "fps": [30.0]}],
    },
    {
        "fourcc": "MJPG",
        "description": "Motion-JPEG",
        "compressed": True,
        "sizes": [
            {"width": 640, "height": 480, "fps": [30.0, 15.0]},
            {"width": 1280, "height": 720, "fps": [30.0]},
        ],
    },
]


class FakeCapture:
    """Stands in for cv2.VideoCapture on the V4L2 backend."""

    def __init__(self, *, fps=30.0, force=None, stamps=True, stall_after=None):
        self.calls: list[tuple[int, float]] = []
        self.props: dict[int, float] = {}
        self.force = force or {}
        self.fps = fps
        self.stamps = stamps
        self.stall_after = stall_after
        self.unblock = threading.Event()
        self.present = True
        self.frames = 0
        self.pos_msec = 0.0
        self.released = False

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return True

    def set(self, prop, value):
        self.calls.append((prop, value))
        self.props[prop] = value
        return prop != cv2.CAP_PROP_WB_TEMPERATURE  # one control this camera lacks

    def get(self, prop):
        if prop in self.force:
            return self.force[prop]
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.pos_msec
        return float(self.props.get(prop, 0.0))

    def read(self):
        if self.stall_after is not None and self.frames >= self.stall_after:
            self.unblock.wait(10)  # a dead device: the driver blocks
            return False, None
        if not self.present:
            return False, None
        time.sleep(1 / self.fps)
        if self.stamps:
            self.pos_msec = (time.monotonic_ns() - 3_000_000) / 1e6  # exposed 3 ms ago
        w, h = round(self.get(cv2.CAP_PROP_FRAME_WIDTH)), round(self.get(cv2.CAP_PROP_FRAME_HEIGHT))
        img = draw_index(self.frames, w, h)
        self.frames += 1
        return True, img

    def release(self):
        self.released = True


@pytest.fixture
def fake_device(monkeypatch):
    """Patch the driver so BY_ID is a camera served by FakeCapture; returns the opened fakes."""
    opened: list[FakeCapture] = []
    state = {"present": True, "make": FakeCapture}

    def probe(self):
        if not state["present"]:
            raise CameraError(f"camera {self.name!r}: {BY_ID} does not exist")
        return oc._DeviceNode(
            path=BY_ID,
            dev_path="/dev/video7",
            card="Fake Cam",
            driver="uvcvideo",
            bus_info="usb-0000:00:14.0-3",
            by_id=[BY_ID],
            formats=FAKE_FORMATS,
        )

    def open_v4l2(dev_path):
        assert dev_path == "/dev/video7"
        cap = state["make"]()
        opened.append(cap)
        return cap

    monkeypatch.setattr(OpenCVCamera, "_probe_device", probe)
    monkeypatch.setattr(OpenCVCamera, "_device_present", lambda self: state["present"])
    monkeypatch.setattr(oc, "_open_v4l2", open_v4l2)
    monkeypatch.setattr(oc, "DISCONNECT_JOIN_S", 0.2)
    monkeypatch.setattr(oc, "REOPEN_INTERVAL_S", 0.05)
    yield opened, state
    for cap in opened:
        cap.unblock.set()


def test_device_asks_for_mjpg_then_size_then_fps_and_fixes_exposure(fake_device):
    opened, _ = fake_device
    with OpenCVCamera(spec(path=BY_ID, width=640, height=480, exposure_us=10000)) as cam:
        frames = [cam.read(timeout_s=1.0) for _ in range(5)]
        info = cam.info()
    props = [p for p, _ in opened[0].calls]
    order = [
        cv2.CAP_PROP_FOURCC,
        cv2.CAP_PROP_FRAME_WIDTH,
        cv2.CAP_PROP_FRAME_HEIGHT,
        cv2.CAP_PROP_FPS,
    ]
    assert [p for p in props if p in order] == order
    values = dict(opened[0].calls)
    assert v4l2.fourcc_to_str(values[cv2.CAP_PROP_FOURCC]) == "MJPG"
    assert values[cv2.CAP_PROP_AUTO_EXPOSURE] == 1  # V4L2_EXPOSURE_MANUAL
    assert values[cv2.CAP_PROP_EXPOSURE] == 100  # 100 µs units
    assert values[cv2.CAP_PROP_AUTO_WB] == 0
    assert props.index(cv2.CAP_PROP_AUTO_EXPOSURE) < props.index(cv2.CAP_PROP_EXPOSURE)
    assert "white_balance_k=4600 (unsupported)" in info.extra["controls"]
    assert opened[0].released

    numbers = [f.frame_number for f in frames]
    assert increasing(numbers)
    assert [read_index(f.color) for f in frames] == numbers
    for f in frames:
        # The V4L2 buffer stamp is on the host monotonic clock: it is the capture time.
        assert f.device_stamp_ns is not None
        assert f.capture_stamp_ns == f.device_stamp_ns
        assert 0 < f.receipt_stamp_ns - f.capture_stamp_ns < 1_000_000_000
    assert (info.driver, info.model, info.serial) == ("opencv", "Fake Cam", "Fake_Cam_0001")
    assert "CLOCK_MONOTONIC" in info.extra["timestamps"]
    assert info.extra["fourcc"] == "MJPG" and info.extra["device"] == "/dev/video7"


def test_device_without_buffer_stamps_falls_back_to_receipt_time(fake_device):
    _, state = fake_device
    state["make"] = lambda: FakeCapture(stamps=False)
    with OpenCVCamera(spec(path=BY_ID, width=640, height=480)) as cam:
        frame = cam.read(timeout_s=1.0)
        assert "receipt" in cam.info().extra["timestamps"]
    assert frame.device_stamp_ns is None and frame.capture_stamp_ns == frame.receipt_stamp_ns


def test_device_stamps_on_another_clock_are_mapped(fake_device):
    class RealtimeStamps(FakeCapture):
        def read(self):
            ok, img = super().read()
            self.pos_msec = time.time_ns() / 1e6  # uvcvideo clock=realtime
            return ok, img

    _, state = fake_device
    state["make"] = RealtimeStamps
    with OpenCVCamera(spec(path=BY_ID, width=640, height=480)) as cam:
        frames = [cam.read(timeout_s=1.0) for _ in range(3)]
        assert "mapped" in cam.info().extra["timestamps"]
    for f in frames:
        assert f.capture_stamp_ns <= f.receipt_stamp_ns
        assert f.receipt_stamp_ns - f.capture_stamp_ns < 1_000_000_000


def test_device_mode_mismatch_is_an_error_with_requested_and_actual(fake_device):
    _, state = fake_device
    yuyv = v4l2.fourcc_to_code("YUYV")
    force = {
        cv2.CAP_PROP_FRAME_WIDTH: 640,
        cv2.CAP_PROP_FRAME_HEIGHT: 480,
        cv2.CAP_PROP_FPS: 15.0,
        cv2.CAP_PROP_FOURCC: yuyv,
    }
    state["make"] = lambda: FakeCapture(force=force)
    with pytest.raises(CameraError) as err:
        OpenCVCamera(spec(path=BY_ID, width=1280, height=720, fps=30)).connect()
    msg = str(err.value)
    assert msg.startswith("camera 'bench': ")
    assert "640x480 @ 15 fps YUYV" in msg and "1280x720 @ 30 fps" in msg
    assert BY_ID in msg and "/dev/video7" in msg and "teleop cameras" in msg


def test_device_mode_mismatch_in_warn_mode_sets_mismatch(fake_device):
    _, state = fake_device
    force = {cv2.CAP_PROP_FPS: 15.0}
    state["make"] = lambda: FakeCapture(force=force)
    cam = OpenCVCamera(spec(path=BY_ID, width=640, height=480, fps=30, on_mode_mismatch="warn"))
    with cam:
        cam.read(timeout_s=1.0)
        assert cam.mismatch is not None and "15 fps" in cam.mismatch and "30 fps" in cam.mismatch


def test_a_device_that_stops_delivering_raises_and_cannot_hang_disconnect(fake_device):
    _, state = fake_device
    state["make"] = lambda: FakeCapture(stall_after=3)
    cam = OpenCVCamera(spec(path=BY_ID, width=640, height=480))
    cam.connect()
    with pytest.raises(CameraError, match=r"camera 'bench': no frame from .*within 0\.300 s"):
        for _ in range(5):
            cam.read(timeout_s=0.3)
    t0 = time.monotonic()
    cam.disconnect()  # the grab thread is stuck in the "driver": disconnect still returns
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(CameraError, match="not connected"):
        cam.read()


def test_an_unplugged_device_is_reported_and_reopened_when_it_returns(fake_device):
    opened, state = fake_device
    with OpenCVCamera(spec(path=BY_ID, width=640, height=480)) as cam:
        before = cam.read(timeout_s=1.0)
        state["present"] = False
        opened[0].present = False
        with pytest.raises(CameraError, match="unplugged"):
            for _ in range(5):
                cam.read(timeout_s=0.2)
        state["present"] = True
        after = cam.read(timeout_s=2.0)
    assert len(opened) == 2 and opened[0].released
    assert after.frame_number > before.frame_number


def test_a_device_that_never_streams_fails_at_connect(fake_device, monkeypatch):
    _, state = fake_device
    state["make"] = lambda: FakeCapture(stall_after=0)
    monkeypatch.setattr(oc, "FIRST_FRAME_TIMEOUT_S", 0.2)
    cam = OpenCVCamera(spec(path=BY_ID, width=640, height=480))
    with pytest.raises(CameraError, match="opened but sent no frame"):
        cam.connect()
    assert not cam.is_connected


# -- V4L2 structs on synthesised buffers ------------------------------------------------------


def test_ioctl_numbers_and_struct_sizes_match_the_kernel_header():
    # Values of the macros in linux/videodev2.h on x86_64/arm64.
    assert v4l2.VIDIOC_QUERYCAP == 0x80685600
    assert v4l2.VIDIOC_ENUM_FMT == 0xC0405602
    assert v4l2.VIDIOC_ENUM_FRAMESIZES == 0xC02C564A
    assert v4l2.VIDIOC_ENUM_FRAMEINTERVALS == 0xC034564B
    assert (
        v4l2.CAPABILITY.size,
        v4l2.FMTDESC.size,
        v4l2.FRMSIZEENUM.size,
        v4l2.FRMIVALENUM.size,
    ) == (
        104,
        64,
        44,
        52,
    )


def test_fourcc_round_trip():
    assert v4l2.fourcc_to_code("MJPG") == 0x47504A4D
    assert v4l2.fourcc_to_str(0x56595559) == "YUYV"
    assert v4l2.fourcc_to_str(v4l2.fourcc_to_code("Y8")) == "Y8"


def _u32(buf: bytearray, offset: int, value: int) -> None:
    struct.pack_into("=I", buf, offset, value)


def capability_buffer(card: bytes, caps: int, device_caps: int) -> bytes:
    # Field offsets of struct v4l2_capability, written out independently of the driver's Struct.
    buf = bytearray(104)
    buf[0:8] = b"uvcvideo"
    buf[16 : 16 + len(card)] = card
    buf[48:66] = b"usb-0000:00:14.0-3"
    _u32(buf, 80, 6 << 16 | 8 << 8 | 12)
    _u32(buf, 84, caps)
    _u32(buf, 88, device_caps)
    return bytes(buf)


def test_parse_capability_uses_the_per_node_caps():
    capture = capability_buffer(b"HD Pro Webcam C920", 0x84A00001, 0x04200001)
    cap = v4l2.parse_capability(capture)
    assert (cap.driver, cap.card, cap.bus_info) == (
        "uvcvideo",
        "HD Pro Webcam C920",
        "usb-0000:00:14.0-3",
    )
    assert cap.kernel_version == "6.8.12" and cap.is_video_capture
    assert cap.buf_type == v4l2.V4L2_BUF_TYPE_VIDEO_CAPTURE
    meta = v4l2.parse_capability(capability_buffer(b"HD Pro Webcam C920", 0x84A00001, 0x04A00000))
    assert not meta.is_video_capture  # the metadata node of the same camera


class FakeV4L2:
    """Answers the four ioctls as a UVC camera with MJPG and YUYV would, via raw buffers."""

    MJPG, YUYV = 0x47504A4D, 0x56595559
    FORMATS = [(MJPG, b"Motion-JPEG", 1), (YUYV, b"YUYV 4:2:2", 0)]
    SIZES = {MJPG: [(640, 480), (1280, 720)], YUYV: "stepwise"}
    RATES = {(MJPG, 640, 480): [(1, 30), (1, 15)], (MJPG, 1280, 720): [(1001, 30000)]}

    def __init__(self):
        self.requests: list[int] = []

    def __call__(self, fd, request, arg):
        self.requests.append(request)
        assert isinstance(arg, bytes)
        buf = bytearray(arg)
        index = struct.unpack_from("=I", buf, 0)[0]
        if request == v4l2.VIDIOC_QUERYCAP:
            assert len(buf) == 104
            return capability_buffer(b"Fake UVC", 0x84A00001, 0x04200001)
        if request == v4l2.VIDIOC_ENUM_FMT:
            assert len(buf) == 64 and struct.unpack_from("=I", buf, 4)[0] == 1
            if index >= len(self.FORMATS):
                raise OSError(errno.EINVAL, "Invalid argument")
            code, desc, flags = self.FORMATS[index]
            _u32(buf, 8, flags)
            buf[12 : 12 + len(desc)] = desc
            _u32(buf, 44, code)
            return bytes(buf)
        if request == v4l2.VIDIOC_ENUM_FRAMESIZES:
            assert len(buf) == 44
            code = struct.unpack_from("=I", buf, 4)[0]
            sizes = self.SIZES[code]
            if sizes == "stepwise":
                if index > 0:
                    raise OSError(errno.EINVAL, "Invalid argument")
                _u32(buf, 8, 3)
                for i, v in enumerate((160, 1920, 16, 120, 1080, 8)):
                    _u32(buf, 12 + 4 * i, v)
                return bytes(buf)
            if index >= len(sizes):
                raise OSError(errno.EINVAL, "Invalid argument")
            _u32(buf, 8, 1)
            _u32(buf, 12, sizes[index][0])
            _u32(buf, 16, sizes[index][1])
            return bytes(buf)
        if request == v4l2.VIDIOC_ENUM_FRAMEINTERVALS:
            assert len(buf) == 52
            code, w, h = struct.unpack_from("=III", buf, 4)
            rates = self.RATES.get((code, w, h))
            if rates is None:  # YUYV: a continuous range, 1/30 s .. 1/5 s
                if index > 0:
                    raise OSError(errno.EINVAL, "Invalid argument")
                _u32(buf, 16, 2)
                for i, v in enumerate((1, 30, 1, 5, 1, 1)):
                    _u32(buf, 20 + 4 * i, v)
                return bytes(buf)
            if index >= len(rates):
                raise OSError(errno.EINVAL, "Invalid argument")
            _u32(buf, 16, 1)
            _u32(buf, 20, rates[index][0])
            _u32(buf, 24, rates[index][1])
            return bytes(buf)
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")


def test_enumerate_formats_on_a_synthesised_device():
    fake = FakeV4L2()
    cap = v4l2.read_capability(-1, ioctl=fake)
    assert cap.card == "Fake UVC" and cap.is_video_capture
    formats = v4l2.enumerate_formats(-1, cap.buf_type, ioctl=fake)
    assert [f["fourcc"] for f in formats] == ["MJPG", "YUYV"]
    mjpg, yuyv = formats
    assert mjpg["description"] == "Motion-JPEG" and mjpg["compressed"] and not yuyv["compressed"]
    assert mjpg["sizes"] == [
        {"type": "discrete", "width": 640, "height": 480, "fps": [30.0, 15.0]},
        {"type": "discrete", "width": 1280, "height": 720, "fps": [29.97]},
    ]
    (step,) = yuyv["sizes"]
    assert step["type"] == "stepwise" and (step["width"], step["height"]) == (1920, 1080)
    assert step["width_range"] == [160, 1920, 16] and step["height_range"] == [120, 1080, 8]
    assert step["fps"] == [] and step["fps_range"] == [5.0, 30.0]


def test_choose_fourcc_prefers_mjpg_where_it_offers_the_mode():
    assert v4l2.choose_fourcc(FAKE_FORMATS, 640, 480, 30) == "MJPG"
    assert v4l2.choose_fourcc(FAKE_FORMATS, 1280, 720, 30) == "MJPG"
    yuyv_only = [
        FAKE_FORMATS[0],
        {**FAKE_FORMATS[1], "sizes": [{"width": 320, "height": 240, "fps": [30.0]}]},
    ]
    assert v4l2.choose_fourcc(yuyv_only, 640, 480, 30) == "YUYV"
    assert v4l2.choose_fourcc(yuyv_only, 1920, 1080, 60) == "MJPG"  # nothing offers it: MJPG
    assert v4l2.choose_fourcc([FAKE_FORMATS[0]], 1920, 1080, 60) is None


def test_enumeration_ends_on_einval_and_reports_other_errors():
    def unplugged(fd, request, arg):
        if request == v4l2.VIDIOC_QUERYCAP:
            return capability_buffer(b"Gone", 0x84A00001, 0x04200001)
        raise OSError(errno.ENODEV, "No such device")

    with pytest.raises(OSError):
        v4l2.enumerate_formats(-1, ioctl=unplugged)

    def no_formats(fd, request, arg):
        raise OSError(errno.EINVAL, "Invalid argument")

    assert v4l2.enumerate_formats(-1, ioctl=no_formats) == []
