"""A virtual camera's renderer in a process of its own.

Rendering a view of the rig costs 1–2 ms of numpy and OpenCV per frame, much of it under the
GIL; four cameras at 30 fps rendered in the app's process competed with the app's own work
(encoding, the writer, the record screen), and a starved virtual camera looked like a real
one dropping frames. A :class:`RenderProcess` keeps the camera's pacing, frame numbers,
clocks and fault injection where they were (the camera object in the app) and moves only the
drawing: at each frame deadline the camera asks for frame *n*, the process reads the follower
angles from the shared world (as the camera did), draws colour and depth into a shared-memory
block and answers; the camera copies the pixels out. The request and the wait for the answer
release the GIL.

One process per camera, owned by the camera object: started on connect/start, stopped on
disconnect/close, and gone on its own when the app dies (its pipe closes).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import struct
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from rigs.realtime import normal_scheduling
from rigs.spec import RigSpec
from rigs.virtual.renderer import Renderer
from rigs.virtual.world import SharedWorld, WorldLayout

log = logging.getLogger(__name__)

_REQUEST = struct.Struct("<qq")  # frame number, device stamp (ns): burned into the image
_READY = b"ready"
_DONE = b"k"
START_TIMEOUT_S = 60.0  # spawning imports numpy and OpenCV: seconds on a loaded machine
RENDER_TIMEOUT_S = 10.0


class RenderError(RuntimeError):
    """The renderer process did not start, or stopped answering."""


def _serve(
    rig: RigSpec,
    view: str,
    width: int,
    height: int,
    world_name: str,
    layout: WorldLayout,
    followers: list[str],
    shm_name: str,
    conn: Connection,
) -> None:
    # Drawing is not real-time work: never compete with the servo emulator or the control
    # loop, even if the thread that started this process was real-time.
    normal_scheduling()
    world = SharedWorld(layout, name=world_name)
    shm = shared_memory.SharedMemory(name=shm_name)
    color = np.ndarray((height, width, 3), np.uint8, buffer=shm.buf)
    depth = np.ndarray((height, width), np.uint16, buffer=shm.buf, offset=color.nbytes)
    renderer = Renderer(rig, view, width, height)
    parent = os.getppid()
    conn.send_bytes(_READY)
    try:
        while True:
            try:
                while not conn.poll(1.0):
                    if os.getppid() != parent:
                        return  # the app is gone (and its end of the pipe with it)
                request = conn.recv_bytes()
            except (EOFError, OSError):
                return  # the camera closed, or the app is gone
            frame_number, stamp_ns = _REQUEST.unpack(request)
            angles = {name: world.read(name) for name in followers}
            c, d = renderer.render(angles, frame_number, stamp_ns)
            color[...] = c
            depth[...] = d
            conn.send_bytes(_DONE)
    finally:
        del color, depth
        shm.close()
        world.close()


class RenderProcess:
    """Draws one view of the rig (``Renderer``) in a child process, frame by frame.

    Call :meth:`start` once, then :meth:`render` from one thread at a time; :meth:`close`
    stops the process. The follower angles are read by the child from ``world`` at the time
    of each request.
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
    ):
        self._args: tuple[Any, ...] = (rig, view, int(width), int(height), world, followers)
        self.name = name
        self._proc: Any = None
        self._conn: Connection | None = None
        self._shm: shared_memory.SharedMemory | None = None
        self._color: np.ndarray | None = None
        self._depth: np.ndarray | None = None

    def start(self) -> None:
        """Spawn the process and wait until it can draw.

        Raises:
            RenderError: it did not come up within ``START_TIMEOUT_S``.
        """
        if self._proc is not None:
            return
        rig, view, width, height, world, followers = self._args
        nbytes = height * width * 3 + height * width * 2
        self._shm = shared_memory.SharedMemory(create=True, size=nbytes)
        self._color = np.ndarray((height, width, 3), np.uint8, buffer=self._shm.buf)
        self._depth = np.ndarray(
            (height, width), np.uint16, buffer=self._shm.buf, offset=self._color.nbytes
        )
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve,
            args=(rig, view, width, height, world.name, world.layout, followers, self._shm.name),
            kwargs={"conn": theirs},
            name=f"render-{self.name}",
            daemon=True,
        )
        self._proc.start()
        theirs.close()
        self._conn = ours
        if not ours.poll(START_TIMEOUT_S) or ours.recv_bytes() != _READY:
            self.close()
            raise RenderError(f"camera {self.name!r}: the renderer process did not start")

    def render(self, frame_number: int, stamp_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H×W×3 BGR) and depth (H×W uint16 mm) of the view now: new arrays.

        Raises:
            RenderError: the process is not running or did not answer in time.
        """
        conn, color, depth = self._conn, self._color, self._depth
        if conn is None or color is None or depth is None:
            raise RenderError(f"camera {self.name!r}: the renderer process is not running")
        try:
            conn.send_bytes(_REQUEST.pack(int(frame_number), int(stamp_ns)))
            if not conn.poll(RENDER_TIMEOUT_S) or conn.recv_bytes() != _DONE:
                raise RenderError(f"camera {self.name!r}: the renderer process stopped answering")
        except (EOFError, OSError) as exc:
            raise RenderError(
                f"camera {self.name!r}: the renderer process is gone ({exc})"
            ) from None
        return color.copy(), depth.copy()

    def close(self) -> None:
        """Stop the process and free the shared block (safe to call more than once)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # the child's recv gets EOF and it returns
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        self._color = self._depth = None
        shm, self._shm = self._shm, None
        if shm is not None:
            # A render() in another thread may still hold a view: then it is freed with it.
            with contextlib.suppress(BufferError):
                shm.close()
            shm.unlink()
