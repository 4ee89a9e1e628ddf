"""Start and stop the virtual rig's servo process from the app.

:class:`VirtualRig` creates the shared world block, starts :mod:`rigs.virtual.server` in its
own process (``spawn``, daemon), waits until every bus has its pseudo-terminal, and exposes
``ports`` (arm name -> ``/dev/pts/N``) for the app's Dynamixel driver. Fault injection and
inspection are forwarded to the process. ``close()`` always stops the process and unlinks the
shared memory, also when the process has died, and it runs at interpreter exit if forgotten.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import threading
import time
import weakref
import zlib
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from rigs.dynamixel.control_table import HardwareError
from rigs.errors import UserError
from rigs.spec import RigSpec
from rigs.virtual import server
from rigs.virtual.mounting import ArmTruth, arm_truth
from rigs.virtual.options import VirtualRigOptions
from rigs.virtual.servo import ServoState, TorqueWrite
from rigs.virtual.world import SharedWorld, WorldLayout

log = logging.getLogger(__name__)


def mounting_seed_for(spec: RigSpec) -> int:
    """The seed of a rig's virtual hardware build: fixed per rig id, like a physical build."""
    return zlib.crc32(spec.id.encode())


class VirtualRigError(UserError, RuntimeError):
    """The virtual rig process did not start, died, or refused a request."""


def _shutdown(proc: Any, conn: Connection, world: SharedWorld, lock: threading.Lock) -> None:
    """Stop the process and release the shared memory; safe to call in any state."""
    with lock:
        if proc.is_alive():
            try:
                conn.send(("stop",))
                if conn.poll(2.0):
                    conn.recv()
            except (OSError, EOFError):
                pass
            proc.join(2.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
        with contextlib.suppress(OSError):
            conn.close()
        with contextlib.suppress(Exception):
            proc.close()
        with contextlib.suppress(FileNotFoundError):
            world.close()


class VirtualRig:
    """The virtual servo chains of a rig, served from their own process.

    Use as ``with VirtualRig(spec, seed) as rig: ...`` or ``rig.start()`` ... ``rig.close()``.
    After ``start()``: ``ports`` maps each arm name to a pseudo-terminal path to open like a
    serial port, ``world`` is the shared joint-truth block (``world_name`` its name).

    ``options`` are the fields of :class:`~rigs.virtual.options.VirtualRigOptions` (physics,
    hardware build, scripted operator), with its defaults; ``mounting_seed`` defaults to one
    from the rig id, so every start of the same rig is the same hardware. :attr:`truth` tells
    tests what a calibration should find; :meth:`hold_operator` releases leaders held still.
    """

    def __init__(
        self,
        spec: RigSpec,
        seed: int = 0,
        *,
        start_timeout_s: float = 20.0,
        request_timeout_s: float = 5.0,
        **options: Any,
    ) -> None:
        self.spec = spec
        self.seed = seed
        self.start_timeout_s = start_timeout_s
        self.request_timeout_s = request_timeout_s
        options.setdefault("mounting_seed", mounting_seed_for(spec))
        self.options = VirtualRigOptions(**options)
        self.ports: dict[str, str] = {}
        self.world: SharedWorld | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def spawn(self) -> VirtualRig:
        """Create the world and start the process booting; return at once (:meth:`start`
        waits for its buses), so that the cameras can boot beside it. Again: nothing."""
        if self._finalizer is not None and self._finalizer.alive:
            return self
        world = SharedWorld(WorldLayout.from_spec(self.spec), create=True)
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=server.run,
            args=(self.spec.model_dump(mode="json"), world.name, self.seed, child, self.options),
            name=f"virtual-rig-{self.spec.id}",
            daemon=True,
        )
        self.world = world
        self._proc = proc
        self._conn = parent
        self._finalizer = weakref.finalize(self, _shutdown, proc, parent, world, self._lock)
        try:
            proc.start()
            child.close()  # only the child holds it now, so its death shows as EOF here
        except BaseException:
            self.close()
            raise
        return self

    def start(self) -> VirtualRig:
        """Create the world, start the process (unless :meth:`spawn` did) and wait until its
        buses are served."""
        if self.ports:
            return self
        self.spawn()
        try:
            self.ports = self._wait_ready()
        except BaseException:
            self.close()
            raise
        log.info("virtual rig %s up (pid %s): %s", self.spec.id, self._proc.pid, self.ports)
        return self

    def _wait_ready(self) -> dict[str, str]:
        assert self._conn is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._conn.poll(0.05):
                try:
                    kind, payload = self._conn.recv()
                except (EOFError, OSError):
                    break
                if kind == "ready":
                    return dict(payload)
                raise VirtualRigError(
                    f"virtual rig {self.spec.id}: server failed to start: {payload}"
                )
            if not self._proc.is_alive():
                break
        code = self._proc.exitcode
        raise VirtualRigError(
            f"virtual rig {self.spec.id}: servo process "
            + (f"exited with code {code}" if code is not None else "did not become ready")
            + f" within {self.start_timeout_s:.0f} s; run with --debug for its log"
        )

    def close(self) -> None:
        """Stop the process and unlink the shared memory (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        self.ports = {}

    def __enter__(self) -> VirtualRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_alive(self) -> bool:
        """Whether the servo process is running."""
        return (
            self._finalizer is not None
            and self._finalizer.alive
            and self._proc is not None
            and self._proc.is_alive()
        )

    @property
    def pid(self) -> int | None:
        """Process id of the running servo process (None when not running)."""
        return self._proc.pid if self._proc is not None and self.is_alive else None

    @property
    def world_name(self) -> str:
        """Name of the shared-memory block with every arm's true joint angles."""
        if self.world is None:
            raise VirtualRigError("virtual rig not started")
        return self.world.name

    # -- requests ---------------------------------------------------------------------------
    def _request(self, *msg: Any) -> Any:
        if not self.is_alive or self._conn is None:
            raise VirtualRigError(f"virtual rig {self.spec.id} is not running")
        with self._lock:
            try:
                self._conn.send(msg)
                if not self._conn.poll(self.request_timeout_s):
                    raise VirtualRigError(f"virtual rig {self.spec.id}: no answer to {msg[0]!r}")
                kind, payload = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise VirtualRigError(f"virtual rig {self.spec.id}: process gone ({exc})") from None
        if kind != "ok":
            raise VirtualRigError(f"virtual rig {self.spec.id}: {msg[0]} refused: {payload}")
        return payload

    def inject_bus_silent(self, arm: str, silent: bool = True) -> None:
        """Make a whole bus stop answering (``silent=False`` restores it)."""
        self._request("bus_silent", arm, silent)

    def inject_bus_vanish(self, arm: str) -> None:
        """Close ``arm``'s pseudo-terminal for good, as a USB adapter pulled out: the app's
        reads and writes on that port fail with an I/O error from then on."""
        self._request("bus_vanish", arm)

    def kill(self) -> None:
        """``kill -9`` the servo process: every bus's port vanishes at once, as when a USB hub
        loses power."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)

    def inject_motor_silent(self, arm: str, dxl_id: int, silent: bool = True) -> None:
        """Make one motor absent: it neither acts on nor answers any instruction."""
        self._request("motor_silent", arm, dxl_id, silent)

    def inject_hardware_error(
        self, arm: str, dxl_id: int, bits: int = int(HardwareError.OVERLOAD)
    ) -> None:
        """Set Hardware Error Status bits on a motor; it drops torque until rebooted."""
        self._request("hardware_error", arm, dxl_id, int(bits))

    def inject_latency(self, arm: str | None, seconds: float) -> None:
        """Delay every reply on ``arm`` (all buses if None) by ``seconds``; 0 removes it."""
        self._request("latency", arm, seconds)

    def clear_faults(self, arm: str | None = None) -> None:
        """Undo silence and latency (hardware errors need a REBOOT, as on real servos)."""
        self._request("clear_faults", arm)

    def torque_writes(self, arm: str) -> dict[int, list[TorqueWrite]]:
        """Per motor id: the Torque Enable writes it received (monotonic ns, value), oldest first.

        Times are ``time.monotonic_ns()`` of the servo process; the clock is system-wide, so
        they compare directly with the app's own ``time.monotonic_ns()``.
        """
        raw = self._request("torque_log", arm)
        return {int(i): [TorqueWrite(t, v) for t, v in log_] for i, log_ in raw.items()}

    def torque_offs_after(self, arm: str, t_ns: int) -> list[int]:
        """Times (monotonic ns) of the Torque Enable = 0 writes ``arm``'s motors received
        after ``t_ns``, oldest first."""
        writes = self.torque_writes(arm).values()
        return sorted(w.t_ns for log_ in writes for w in log_ if w.value == 0 and w.t_ns > t_ns)

    def servo_states(self, arm: str) -> dict[int, ServoState]:
        """Per motor id: torque, mode, goal and present ticks, hardware error, counters."""
        raw = self._request("states", arm)
        return {int(i): ServoState(**s) for i, s in raw.items()}

    # -- calibration ------------------------------------------------------------------------
    @property
    def truth(self) -> dict[str, ArmTruth]:
        """Per arm: how its servos are mounted and how far its joints travel (for tests)."""
        o = self.options
        return {a.name: arm_truth(a, o.mounting, o.mounting_seed) for a in self.spec.arms}

    def hold_operator(self, hold: bool = True, arm: str | None = None) -> None:
        """Make the scripted operator hold ``arm`` (every leader if None) still, or resume."""
        self._request("hold_operator", arm, bool(hold))

    def calibration_move(
        self,
        arm: str,
        action: str,
        *,
        joint: str | None = None,
        angles: Sequence[float] | None = None,
    ) -> float:
        """Hands move ``arm`` through one calibration step; returns when it ends.

        ``action``: ``pose`` (every joint to ``angles``, joint frame: the reference pose),
        ``sweep`` (``joint`` to its positive end of travel, its negative end, back), ``open``
        or ``close`` (the gripper). A leader's scripted operator waits meanwhile; a follower is
        moved as a person moves a torque-off arm. The time is ``time.monotonic()`` (system-wide,
        so the caller compares it with its own clock). Moves queue behind each other.
        """
        return float(
            self._request(
                "calibration_move",
                arm,
                action,
                joint,
                None if angles is None else [float(a) for a in angles],
            )
        )

    def calibration_end(self, arm: str) -> float:
        """The hands put ``arm`` back where they took it and let go; returns when that is done.

        A leader then continues its scripted motion from where it paused.
        """
        return float(self._request("calibration_end", arm))
