"""`teleop record --live`: the episode's messages served to Foxglove while it records.

A Node client built on Foxglove's own packages (tests/foxglove/live_client.mjs:
@foxglove/ws-protocol's FoxgloveClient over `ws`, @foxglove/rosmsg, rosmsg2-serialization)
watches a real recording; a raw socket that subscribes and then never reads shows that a
stalled viewer costs the recording nothing; bad addresses fail before any folder exists; the
throttle and the drop counting are checked on the tap alone, without a network.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from rigs.spec import RigSpecError, load_rig, parse_rig
from teleop.cli import main
from teleop.episode.reader import iter_messages, summarize
from teleop.episode.schemas import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    JOINT_STATE,
)
from teleop.live import (
    CameraThrottle,
    LiveAddress,
    LivePublisher,
    LiveViewError,
    camera_of,
    parse_live_address,
)
from tests.foxglove_readers import FOXGLOVE_DIR
from tests.waiting import wait_until

JOINT_TOPIC = "/left_follower/joint_states"
CAMERA_TOPIC = "/cameras/overhead/color/compressed"
FOXGLOVE_SUBPROTOCOL = "foxglove.sdk.v1"  # what foxglove-sdk 0.30's server accepts


# -- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "host", "port"),
    [
        (None, "127.0.0.1", 8765),
        ("", "127.0.0.1", 8765),
        ("9000", "127.0.0.1", 9000),
        ("0.0.0.0:8765", "0.0.0.0", 8765),
        ("localhost:8000", "127.0.0.1", 8000),
        ("[::1]:8765", "::1", 8765),
        ("  10.0.0.5:0 ", "10.0.0.5", 0),
    ],
)
def test_live_address_forms(spec, host, port):
    address = parse_live_address(spec)
    assert (address.host, address.port) == (host, port)


def test_live_address_url_brackets_ipv6():
    assert LiveAddress("::1", 8765).url == "ws://[::1]:8765"
    assert LiveAddress().url == "ws://127.0.0.1:8765"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nope", "expected PORT or HOST:PORT"),
        ("127.0.0.1:", "port must be a number"),
        ("127.0.0.1:80x", "port must be a number"),
        ("127.0.0.1:70000", "above 65535"),
        ("::1:8765", "IPv6 address in brackets"),
        ("[::1]8765", "expected [IPV6]:PORT"),
        ("[127.0.0.1]:8765", "brackets are for IPv6 only"),
        ("example.com:8765", "is not an IP address"),
    ],
)
def test_malformed_live_addresses_say_what_is_expected(spec, says):
    with pytest.raises(LiveViewError, match=r"^--live ") as info:
        parse_live_address(spec)
    assert says in str(info.value) and "\n" not in str(info.value)


# -- the rig file ----------------------------------------------------------------------------------


def test_rig_live_camera_fps_defaults_to_10_and_must_be_positive_and_finite():
    text = load_rig("sim-bimanual").toml_text
    assert parse_rig(text, "preset").spec.live.camera_fps == 10.0
    assert parse_rig(text + "\n[live]\ncamera_fps = 2.5\n", "r.toml").spec.live.camera_fps == 2.5
    for bad, says in (("0", "greater than 0"), ("-3", "greater than 0"), ("inf", "finite"),
                      ("nan", "finite")):  # fmt: skip
        with pytest.raises(RigSpecError, match=f"field 'live.camera_fps'.*{says}"):
            parse_rig(text + f"\n[live]\ncamera_fps = {bad}\n", "r.toml")


# -- the tap, without a network ------------------------------------------------------------------------


def test_camera_of_names_the_camera_of_camera_topics_only():
    assert camera_of("/cameras/overhead/color/compressed") == "overhead"
    assert camera_of("/cameras/low/depth") == "low"
    assert camera_of("/cameras/low/camera_info") == "low"
    assert camera_of("/left_follower/joint_states") is None
    assert camera_of("/diagnostics") is None
    assert camera_of("/cameras/") is None


def feed_rig(publisher: LivePublisher, seconds: float) -> dict[str, int]:
    """What the writer would hand the tap: a 30 fps camera with colour, info and depth (one
    log time per frame), a 50 Hz joint state, a 1 Hz diagnostics message. Returns how many
    messages of each topic were fed."""
    fed: dict[str, int] = {}

    def tap(topic: str, type_name: str, t_ns: int, size: int = 100) -> None:
        publisher.tap(topic, type_name, t_ns, bytes(size))
        fed[topic] = fed.get(topic, 0) + 1

    events = []
    for k in range(int(seconds * 30)):
        events.append((round(k * 1e9 / 30), "frame"))
    for k in range(int(seconds * 50)):
        events.append((k * 20_000_000, "joints"))
    for k in range(int(seconds)):
        events.append((k * 1_000_000_000 + 1, "diagnostics"))
    for t_ns, what in sorted(events):
        if what == "frame":
            # The writer's order: colour, camera_info, depth, all with the frame's log time.
            tap("/cameras/overhead/color/compressed", COMPRESSED_IMAGE, t_ns, 5000)
            tap("/cameras/overhead/camera_info", CAMERA_INFO, t_ns)
            tap("/cameras/overhead/depth", COMPRESSED_IMAGE, t_ns, 8000)
        elif what == "joints":
            tap(JOINT_TOPIC, JOINT_STATE, t_ns)
        else:
            tap("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", t_ns)
    return fed


def queued(publisher: LivePublisher) -> list[tuple[str, str, int, bytes]]:
    return list(publisher._queue)


def test_cameras_are_throttled_to_the_rig_rate_with_their_info_and_depth_and_nothing_else():
    publisher = LivePublisher(camera_fps=10, queue_max=100_000, queue_max_bytes=2**30)
    fed = feed_rig(publisher, seconds=3.0)
    q = queued(publisher)
    by_topic: dict[str, list[int]] = {}
    for topic, _type, t_ns, _data in q:
        by_topic.setdefault(topic, []).append(t_ns)
    # Everything that is not a camera passes, every message, in order.
    assert len(by_topic[JOINT_TOPIC]) == fed[JOINT_TOPIC] == 150
    assert len(by_topic["/diagnostics"]) == fed["/diagnostics"] == 3
    # The camera: every third frame of 30 fps (10 fps), its three messages together.
    colour = by_topic["/cameras/overhead/color/compressed"]
    assert len(colour) == 30
    assert by_topic["/cameras/overhead/camera_info"] == colour
    assert by_topic["/cameras/overhead/depth"] == colour
    gaps = {b - a for a, b in zip(colour, colour[1:], strict=False)}
    assert all(abs(g - 100_000_000) <= 1 for g in gaps), gaps
    s = publisher.stats()
    assert s.throttled == 3 * (90 - 30)
    assert s.dropped == 0 and s.published == 0 and s.queued == len(q)
    assert s.throttled + s.queued == sum(fed.values())


def test_a_camera_slower_than_the_live_rate_passes_every_frame():
    throttle = CameraThrottle(10)
    # 5 fps with ±5 ms of jitter: all pass.
    times = [k * 200_000_000 + (5_000_000 if k % 2 else -5_000_000) for k in range(1, 40)]
    assert all(throttle.passes("cam", t) for t in times)


def test_jitter_does_not_lower_the_live_rate():
    throttle = CameraThrottle(10)
    # 30 fps, every frame 0-3 ms late or early at random-ish: still 10 passed per second.
    times = [round(k * 1e9 / 30) + ((k * 7919) % 7 - 3) * 1_000_000 for k in range(300)]
    passed = sum(throttle.passes("cam", t) for t in times)
    assert 99 <= passed <= 101


def test_a_full_queue_drops_and_counts_and_never_raises():
    publisher = LivePublisher(camera_fps=10, queue_max=10, queue_max_bytes=2**30)
    for k in range(25):
        publisher.tap(JOINT_TOPIC, JOINT_STATE, k * 20_000_000, bytes(200))
    s = publisher.stats()
    assert (s.queued, s.dropped) == (10, 15)
    # Bytes bound too: 3 messages of 300 bytes fit in 1000, the next ones do not.
    small = LivePublisher(camera_fps=10, queue_max=100, queue_max_bytes=1000)
    for k in range(6):
        small.tap(JOINT_TOPIC, JOINT_STATE, k, bytes(300))
    assert (small.stats().queued, small.stats().dropped) == (3, 3)
    # Whatever it is given, the tap never raises into the writer's thread: it counts.
    small.tap(JOINT_TOPIC, JOINT_STATE, 99, None)  # type: ignore[arg-type]
    small.tap(None, JOINT_STATE, 99, b"x")  # type: ignore[arg-type]
    assert small.stats().errors == 2


def test_a_publisher_never_started_stops_cleanly():
    publisher = LivePublisher(camera_fps=10)
    publisher.tap(JOINT_TOPIC, JOINT_STATE, 1, b"x")
    stats = publisher.stop()
    assert stats.queued == 1 and stats.published == 0
    publisher.tap(JOINT_TOPIC, JOINT_STATE, 2, b"x")  # after stop: ignored, not queued
    assert publisher.stats().queued == 1


# -- bad input on the command line ---------------------------------------------------------------------


def _record_args(data: Path, *extra: str) -> list[str]:
    return ["record", "--rig", "sim-bimanual", "--operator", "op", "--task", "t",
            "--seconds", "1", "--data-dir", str(data), *extra]  # fmt: skip


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("teleop: error: ")
    return err[0]


def _no_session(data: Path) -> bool:
    return not data.exists() or not any(
        p.is_dir() and p.name != "calibration" for p in data.iterdir()
    )


def test_live_port_in_use_fails_before_any_session(tmp_path, capsys, calibrated_root):
    data = calibrated_root(tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(_record_args(data, "--live", f"127.0.0.1:{port}")) == 2
    line = _one_error_line(capsys)
    assert f"127.0.0.1:{port} is already in use" in line and "another port" in line
    assert _no_session(data)


def test_live_host_not_of_this_machine_fails_before_any_session(tmp_path, capsys, calibrated_root):
    data = calibrated_root(tmp_path / "data")
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of a machine here. Only a bind
    # is tried, nothing is sent.
    assert main(_record_args(data, "--live", "192.0.2.1:8765")) == 2
    line = _one_error_line(capsys)
    assert "192.0.2.1 is not an address of this machine" in line and "127.0.0.1" in line
    assert _no_session(data)


@pytest.mark.parametrize("spec", ["nope", "127.0.0.1:http", "::1:8765", "lab-pc:8765"])
def test_malformed_live_address_fails_before_anything(tmp_path, capsys, spec):
    data = tmp_path / "data"
    assert main(_record_args(data, "--live", spec)) == 2
    assert f"--live {spec!r}" in _one_error_line(capsys)
    assert not data.exists()


# -- a real recording, watched ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recording:
    """``teleop record --live`` as a subprocess; stderr lines collected as they come."""

    def __init__(self, data: Path, port: int, seconds: float):
        cmd = [
            sys.executable,
            "-m",
            "teleop.cli",
            *_record_args(data, "--live", f"127.0.0.1:{port}"),
        ]
        cmd[cmd.index("--seconds") + 1] = f"{seconds:g}"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, start: str) -> str:
        def found() -> str | None:
            return next((line for line in self.lines if line.startswith(start)), None)

        wait_until(
            lambda: found() is not None or self.proc.poll() is not None,
            f"a stderr line starting {start!r}",
            60,
        )
        line = found()
        assert line is not None, f"teleop record exited {self.proc.returncode}: {self.lines}"
        return line

    def finish(self, timeout_s: float = 120) -> Path:
        """Wait for the exit (status 0) and return the session directory it printed."""
        self.proc.wait(timeout_s)  # stdout is one line: the pipe never fills
        self._reader.join(10)
        assert self.proc.returncode == 0, self.lines
        assert self.proc.stdout is not None
        return Path(self.proc.stdout.read().strip())

    def closing_line(self) -> str:
        """The live view's counters, printed when the session ends."""
        return next(line for line in reversed(self.lines) if line.startswith("live view ws://"))


def assert_episode_intact(session: Path) -> None:
    """The episode file is complete: indexed summary, every message readable, counts agree."""
    (path,) = session.glob("episode_*.mcap")
    assert not list(session.glob("*.partial"))
    s = summarize(path)
    read = sum(1 for _ in iter_messages(path))
    assert read == s.message_count > 0
    cycles = int(s.metadata["quality"]["joint_samples"])
    assert cycles > 0
    for arm in ("left_leader", "right_leader", "left_follower", "right_follower"):
        assert s.topics[f"/{arm}/joint_states"].message_count == cycles


def node_client(url: str, *args: str) -> list[str]:
    from tests.foxglove_readers import node

    if not (FOXGLOVE_DIR / "node_modules" / "@foxglove" / "ws-protocol").is_dir():
        raise RuntimeError(
            "Foxglove's client is not installed: run `bash setup.sh test` (it runs "
            "`npm ci --prefix tests/foxglove`)"
        )
    return [node(), str(FOXGLOVE_DIR / "live_client.mjs"), url, *args]


@pytest.mark.timeout(240)
def test_foxglove_client_watches_a_recording_and_the_file_is_intact(tmp_path, calibrated_root):
    data = calibrated_root(tmp_path / "data")
    port = free_port()
    rec = Recording(data, port, seconds=8)
    url_line = rec.wait_for_line("live view: ws://")
    assert f"ws://127.0.0.1:{port}" in url_line
    client = subprocess.run(
        node_client(f"ws://127.0.0.1:{port}", "--topic", JOINT_TOPIC, "--topic", CAMERA_TOPIC,
                    "--count", "5", "--timeout", "120"),
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    session = rec.finish()
    assert client.returncode == 0, (client.stdout, client.stderr)
    got = json.loads(client.stdout)
    assert got["subprotocol"] == FOXGLOVE_SUBPROTOCOL

    joints = got["topics"][JOINT_TOPIC]
    assert (joints["schema_name"], joints["schema_encoding"], joints["encoding"]) == (
        JOINT_STATE, "ros2msg", "cdr",
    )  # fmt: skip
    assert joints["decoded"] >= 5 and joints["failed"] == 0 and joints["error"] is None
    names = load_rig("sim-bimanual").spec.arm("left_follower").joint_names
    first = joints["first"]
    assert first["name"] == names and len(first["position"]) == len(names)
    assert first["header"]["frame_id"] == "left_follower_base_link"

    image = got["topics"][CAMERA_TOPIC]
    assert image["schema_name"] == COMPRESSED_IMAGE and image["encoding"] == "cdr"
    assert image["decoded"] >= 5 and image["failed"] == 0
    assert image["first"]["format"] == "jpeg"
    assert image["first"]["data"]["bytes"] > 1000
    assert image["first"]["header"]["frame_id"] == "overhead_color_optical_frame"

    assert_episode_intact(session)
    closing = rec.closing_line()
    assert closing.startswith(f"live view ws://127.0.0.1:{port}: ") and "(at most 1)" in closing
    assert " 0 dropped" in closing


# -- a viewer that stops reading ---------------------------------------------------------------------------


class StalledViewer:
    """A raw WebSocket client: upgrades with Foxglove's subprotocol, subscribes to every
    channel advertised until a camera's is among them, then never reads again (a tiny receive
    buffer, so the server's sends back up at once)."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(60)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {FOXGLOVE_SUBPROTOCOL}\r\n\r\n".encode()
        )
        self._buf = b""
        while b"\r\n\r\n" not in self._buf:
            self._recv()
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.subscribed: list[str] = []

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buf += chunk

    def _frame(self) -> tuple[int, bytes]:
        def need(n: int) -> None:
            while len(self._buf) < n:
                self._recv()

        need(2)
        n, at = self._buf[1] & 0x7F, 2
        if n == 126:
            need(4)
            n, at = struct.unpack(">H", self._buf[2:4])[0], 4
        elif n == 127:
            need(10)
            n, at = struct.unpack(">Q", self._buf[2:10])[0], 10
        need(at + n)
        opcode, payload = self._buf[0] & 0x0F, self._buf[at : at + n]
        self._buf = self._buf[at + n :]
        return opcode, payload

    def _send_text(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(b"\x81" + length + mask + masked)

    def subscribe_until(self, done: Callable[[list[str]], bool]) -> None:
        """Read advertisements (nothing else flows yet) until ``done(topics)``, then subscribe
        to every channel at once. Subscribing as they come would start the data before the
        last advertisement is read, and a slow machine could have the server give up on this
        client while it still reads."""
        advertised: dict[int, str] = {}
        while not done(list(advertised.values())):
            opcode, payload = self._frame()
            if opcode != 1:
                continue
            message = json.loads(payload)
            if message.get("op") != "advertise":
                continue
            advertised.update({c["id"]: c["topic"] for c in message["channels"]})
        subs = [{"id": i, "channelId": i} for i in advertised]
        self._send_text(json.dumps({"op": "subscribe", "subscriptions": subs}))
        self.subscribed = list(advertised.values())

    def close(self) -> None:
        self.sock.close()


@pytest.mark.timeout(240)
def test_a_viewer_that_stops_reading_costs_the_recording_nothing(tmp_path, calibrated_root):
    data = calibrated_root(tmp_path / "data")
    port = free_port()
    rec = Recording(data, port, seconds=6)
    rec.wait_for_line("live view: ws://")
    viewer = StalledViewer(port)
    try:
        viewer.subscribe_until(lambda topics: CAMERA_TOPIC in topics and JOINT_TOPIC in topics)
        # From here on nothing is read: the server's sends to it back up.
        session = rec.finish()
    finally:
        viewer.close()
    assert_episode_intact(session)
    (entry,) = json.loads((session / "session.json").read_text())["episodes"]
    assert entry["status"] == "kept" and entry["quality"]["joint_samples_lost"] == 0
    closing = rec.closing_line()
    assert closing.startswith(f"live view ws://127.0.0.1:{port}: ") and "(at most 1)" in closing


def test_stop_returns_even_when_a_subscribed_viewer_never_reads():
    """The SDK's stop() waits for every client's close frame without a timeout; the
    publisher's stop must not: it shuts the stuck connection down and returns."""
    publisher = LivePublisher(LiveAddress("127.0.0.1", 0), camera_fps=10).start()
    viewer: StalledViewer | None = None
    try:
        # The channel exists before the viewer connects, so it is advertised on connection:
        # a channel made while a client connects can be advertised to it before the SDK has
        # it in that client's table (on a busy machine the subscription then finds "unknown
        # channel").
        publisher.tap(CAMERA_TOPIC, COMPRESSED_IMAGE, 1, bytes(20_000))
        wait_until(lambda: publisher.stats().published >= 1, "the camera channel")
        viewer = StalledViewer(publisher.address.port)
        viewer.subscribe_until(lambda topics: CAMERA_TOPIC in topics)
        wait_until(lambda: publisher.stats().clients == 1, "the viewer's subscription")
        # 40 MB, far more than the socket buffers between us and a viewer that reads nothing;
        # fed no faster than the publisher takes it, so none is dropped on our side.
        for k in range(2000):
            publisher.tap(CAMERA_TOPIC, COMPRESSED_IMAGE, (k + 1) * 200_000_000, bytes(20_000))
            if publisher.stats().queued > 200:
                wait_until(lambda: publisher.stats().queued < 50, "the publisher to catch up")
        wait_until(lambda: publisher.stats().queued == 0, "the queue to drain")
        stats = publisher.stop()  # returns (the test's timeout would catch a hang)
        assert stats.published == 2001 and stats.dropped == 0 and stats.max_clients == 1
        assert not publisher.running
    finally:
        publisher.stop()
        if viewer is not None:
            viewer.close()


# -- the benchmark ------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_bench_record_live_reports_the_recording_without_and_with_a_client(capsys):
    assert main(["bench", "record", "--live", "--seconds", "1", "--rates", "50"]) == 0
    out = capsys.readouterr().out
    for label in ("live view off", "live view on, no client", "live view on, 1 client"):
        assert label in out
    assert "client (Node, @foxglove/ws-protocol, every topic): received" in out
