"""A virtual camera's sensor in a process of its own: it keeps the frame schedule and draws.

Rendering a view of the rig costs 1–2 ms of numpy and OpenCV per frame, much of it under the
GIL; rendered in the app's process, four cameras at 30 fps competed with the app's own work
(encoding, the writer, the record screen), and a camera thread that came late skipped frames
that a real camera would have kept in its buffers. A :class:`RenderProcess` is the camera's
sensor and its buffer queue: the child process keeps the device's schedule (frame *n* is
exposed at ``t0 + (n+1)·period`` on the host's monotonic clock, which every process shares),
reads the follower angles from the shared world at that moment, draws colour (and depth) into
one of ``SLOTS`` shared-memory slots and announces the frame on a pipe. The camera object in
the app takes frames in order with :meth:`RenderProcess.next_frame`; a reader late by fewer
than ``SLOTS`` frames loses none, as with a V4L2 or librealsense queue. A frame whose slot was
drawn over before it was read is skipped, so a reader late by more loses the oldest, and the
frame numbers say so. If the child itself falls behind its schedule (a starved machine), its
counter runs on and the missed frames are counted as overruns, as a device's would.

One process per camera, owned by the camera object: started on connect/start, stopped on
disconnect/close, and gone on its own when the app dies (its pipe closes).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import struct
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from rigs.realtime import normal_scheduling
from rigs.spec import RigSpec
from rigs.virtual.renderer import Renderer
from rigs.virtual.world import SharedWorld, WorldLayout

log = logging.getLogger(__name__)

SLOTS = 8  # frames the sensor buffers: 0.27 s at 30 fps
_FRAME = struct.Struct("<qqqq")  # frame number, capture (host ns), device stamp (ns), overruns
_READY = b"ready"
START_TIMEOUT_S = 60.0  # spawning imports numpy and OpenCV: seconds on a loaded machine


class RenderError(RuntimeError):
    """The renderer process did not start, or stopped answering."""


@dataclass(frozen=True)
class DeviceClock:
    """A camera's own clock: an epoch like a device's uptime, running ``drift_ppm`` fast
    from ``t0_ns`` (host monotonic), in ticks of ``tick_ns``."""

    epoch_ns: int
    t0_ns: int
    drift_ppm: int
    tick_ns: int = 1

    def at(self, host_ns: int) -> int:
        """The device clock at a host monotonic time."""
        elapsed = host_ns - self.t0_ns
        ns = self.epoch_ns + elapsed + elapsed * self.drift_ppm // 1_000_000
        return ns - ns % self.tick_ns


@dataclass(frozen=True)
class SensorFrame:
    """One frame from the sensor: its number, exposure time on the host clock and device
    stamp, its pixels (new arrays, the caller's to keep), and the sensor's overruns so far."""

    frame_number: int
    capture_ns: int
    device_ns: int
    color: np.ndarray
    depth: np.ndarray | None
    overruns: int


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    depth: bool

    @property
    def color_bytes(self) -> int:
        return self.height * self.width * 3

    @property
    def slot_bytes(self) -> int:
        return self.color_bytes + (self.height * self.width * 2 if self.depth else 0)

    @property
    def nbytes(self) -> int:
        return 8 * SLOTS + SLOTS * self.slot_bytes

    def views(self, buf: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(slot frame numbers, colour slots, depth slots) over ``buf``."""
        h, w = self.height, self.width
        numbers = np.ndarray((SLOTS,), np.int64, buffer=buf)
        slots = np.ndarray((SLOTS, self.slot_bytes), np.uint8, buffer=buf, offset=8 * SLOTS)
        color = slots[:, : self.color_bytes].reshape(SLOTS, h, w, 3)
        depth = (
            slots[:, self.color_bytes :].view(np.uint16).reshape(SLOTS, h, w)
            if self.depth
            else None
        )
        return numbers, color, depth


def _serve(
    rig: RigSpec,
    view: str,
    layout: _Layout,
    world_name: str,
    world_layout: WorldLayout,
    followers: list[str],
    shm_name: str,
    conn: Connection,
) -> None:
    # Drawing is not real-time work: never compete with the servo emulator or the control
    # loop, even if the thread that started this process was real-time.
    normal_scheduling()
    world = SharedWorld(world_layout, name=world_name)
    shm = shared_memory.SharedMemory(name=shm_name)
    numbers, colors, depths = layout.views(shm.buf)
    renderer = Renderer(rig, view, layout.width, layout.height)
    parent = os.getppid()
    conn.send_bytes(_READY)
    try:
        while not conn.poll(1.0):
            if os.getppid() != parent:
                return  # the app is gone (and its end of the pipe with it)
        clock, period_ns = conn.recv()
        n, overruns = 0, 0
        deadline = clock.t0_ns + period_ns
        while True:
            wait_ns = deadline - time.monotonic_ns()
            # Any message, or the pipe closing, means stop.
            if conn.poll(max(0.0, wait_ns / 1e9)) or os.getppid() != parent:
                return
            late_ns = time.monotonic_ns() - deadline
            if late_ns > period_ns:  # this process fell behind: the counter runs on
                missed = late_ns // period_ns
                deadline += missed * period_ns
                n += missed
                overruns += missed
            device_ns = clock.at(deadline)  # exposure at the deadline
            c, d = renderer.render({name: world.read(name) for name in followers}, n, device_ns)
            slot = n % SLOTS
            numbers[slot] = -1  # being drawn: a reader copying it now will not trust it
            colors[slot] = c
            if depths is not None:
                depths[slot] = d
            numbers[slot] = n
            conn.send_bytes(_FRAME.pack(n, deadline, device_ns, overruns))
            deadline += period_ns
            n += 1
    except (EOFError, OSError, BrokenPipeError):
        return  # the camera closed, or the app is gone
    finally:
        del numbers, colors, depths
        shm.close()
        world.close()


class RenderProcess:
    """One virtual camera's sensor: a child process that draws ``view`` of the rig on the
    device's schedule into a buffer queue of ``SLOTS`` frames.

    :meth:`start` once, then :meth:`next_frame` from one thread at a time; :meth:`close`
    stops the process.
    """

    def __init__(
        self,
        rig: RigSpec,
        view: str,
        width: int,
        height: int,
        world: SharedWorld,
        followers: list[str],
        name: str,
        *,
        depth: bool = True,
    ):
        self._rig, self._view, self._world, self._followers = rig, view, world, followers
        self._layout = _Layout(int(width), int(height), bool(depth))
        self.name = name
        self._proc: Any = None
        self._conn: Connection | None = None
        self._shm: shared_memory.SharedMemory | None = None
        self._views: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._started = False

    def spawn(self) -> None:
        """Start the process booting and return at once (:meth:`start` waits for it), so that
        several sensors boot side by side. Calling it again does nothing."""
        if self._proc is not None:
            return
        self._shm = shared_memory.SharedMemory(create=True, size=self._layout.nbytes)
        self._views = self._layout.views(self._shm.buf)
        self._views[0][:] = -1
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(
                self._rig,
                self._view,
                self._layout,
                self._world.name,
                self._world.layout,
                self._followers,
                self._shm.name,
            ),
            kwargs={"conn": theirs},
            name=f"render-{self.name}",
            daemon=True,
        )
        self._proc.start()
        theirs.close()
        self._conn = ours

    def start(self, fps: int, epoch_ns: int, drift_ppm: int, tick_ns: int = 1) -> DeviceClock:
        """Spawn the process (unless :meth:`spawn` did), wait until it can draw, and start the
        schedule now: the first frame is exposed one period later. Returns the device clock
        the frames are stamped by.

        Raises:
            RenderError: it did not come up within ``START_TIMEOUT_S``, or it was started.
        """
        if self._started:
            raise RenderError(f"camera {self.name!r}: the renderer process is already running")
        self.spawn()
        ours = self._conn
        assert ours is not None
        self._started = True
        if not ours.poll(START_TIMEOUT_S) or ours.recv_bytes() != _READY:
            self.close()
            raise RenderError(f"camera {self.name!r}: the renderer process did not start")
        clock = DeviceClock(epoch_ns, time.monotonic_ns(), drift_ppm, tick_ns)
        ours.send((clock, round(1e9 / fps)))
        return clock

    def next_frame(self, timeout_s: float) -> SensorFrame | None:
        """The oldest frame not yet taken, waiting up to ``timeout_s`` for one; None if none
        came in time. Frames drawn over before they were taken are skipped.

        Raises:
            RenderError: the process is not running or is gone.
        """
        conn, views = self._conn, self._views
        if conn is None or views is None:
            raise RenderError(f"camera {self.name!r}: the renderer process is not running")
        numbers, colors, depths = views
        end = time.monotonic() + timeout_s
        try:
            while conn.poll(max(0.0, end - time.monotonic())):
                n, capture_ns, device_ns, overruns = _FRAME.unpack(conn.recv_bytes())
                slot = n % SLOTS
                if numbers[slot] != n:
                    continue  # drawn over already: the reader was too late for it
                color = colors[slot].copy()
                depth = depths[slot].copy() if depths is not None else None
                if numbers[slot] != n:
                    continue  # drawn over while it was copied
                return SensorFrame(n, capture_ns, device_ns, color, depth, overruns)
        except (EOFError, OSError) as exc:
            raise RenderError(
                f"camera {self.name!r}: the renderer process is gone ({exc})"
            ) from None
        return None

    def close(self) -> None:
        """Stop the process and free the shared block (safe to call more than once)."""
        self._started = False
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # the child's poll sees the pipe close and it returns
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        self._views = None
        shm, self._shm = self._shm, None
        if shm is not None:
            # A next_frame() in another thread may still hold a view: then it is freed with it.
            with contextlib.suppress(BufferError):
                shm.close()
            shm.unlink()
