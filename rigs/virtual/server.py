"""The virtual servo process: one pseudo-terminal per arm, every bus served from one loop.

Each arm of the rig gets a :class:`~rigs.virtual.servo_chain.VirtualChain` behind a
pseudo-terminal. The app opens the slave side (``/dev/pts/N``) with dynamixel_sdk exactly as
it would open a U2D2; this process reads the master side, answers with status packets and
advances the physics. Leaders are moved by a :class:`~rigs.virtual.operator.ScriptedOperator`;
every arm's true joint angles go to the :class:`~rigs.virtual.world.SharedWorld` about every
2 ms for the synthetic cameras.

The process is started by :class:`rigs.virtual.launcher.VirtualRig` and controlled over a
multiprocessing connection: every request ``(command, *args)`` gets one reply
``("ok", payload)`` or ``("error", message)``. Commands: ``stop``, ``ping``,
``bus_silent(arm, silent)``, ``bus_vanish(arm)`` (close its pseudo-terminal, as an unplugged
adapter), ``motor_silent(arm, id, silent)``,
``hardware_error(arm, id, bits)``, ``latency(arm | None, seconds)``,
``clear_faults(arm | None)``, ``torque_log(arm)``, ``states(arm)``,
``hold_operator(arm | None, hold)`` (the scripted operator keeps the leader still),
``calibration_move(arm, action, joint, angles)`` and ``calibration_end(arm)`` (hands move the
arm through a calibration step, see :class:`~rigs.virtual.operator.CalibrationMoves`; both
answer with the monotonic time at which the move ends).

The servos are mounted as :func:`~rigs.virtual.mounting.arm_truth` says (``mounting``
option): ideally, or with seeded offsets and directions that a calibration has to discover.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import select
import signal
import time
import tty
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from rigs.realtime import raise_priority, settle_heap
from rigs.spec import Arm, RigSpec
from rigs.virtual.mounting import ArmTruth, arm_truth
from rigs.virtual.operator import CalibrationMoves, ScriptedOperator
from rigs.virtual.options import VirtualRigOptions
from rigs.virtual.servo import VirtualServo
from rigs.virtual.servo_chain import VirtualChain, chain_from_arm
from rigs.virtual.world import SharedWorld, WorldLayout

log = logging.getLogger(__name__)

SERVO_FIFO_PRIORITY = 30  # the control process asks for 20

TICK_S = 0.002
_READ_SIZE = 65536


def _side_of(arm: Arm, index: int) -> str:
    if "left" in arm.name:
        return "left"
    if "right" in arm.name:
        return "right"
    return "left" if index % 2 == 0 else "right"


class _Bus:
    """One arm: its chain, its pseudo-terminal and the servos whose angles are the world truth."""

    def __init__(self, arm: Arm, chain: VirtualChain) -> None:
        self.arm = arm
        self.chain = chain
        self.primaries: list[VirtualServo] = [chain.servo(j.id) for j in arm.joints]
        self.master_fd, self.slave_fd = os.openpty()
        # Raw mode: every byte passes unchanged (no echo, no CR/LF translation, no signals).
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        self.path = os.ttyname(self.slave_fd)
        self.gripper: VirtualServo | None = None
        if arm.gripper is not None:
            self.gripper = chain.servo(next(j.id for j in arm.joints if j.name == arm.gripper))
        self.object_source: Callable[[float], float | None] | None = None
        self.truth_source: Callable[[float], np.ndarray] | None = None
        self.dropped_bytes = 0

    def angles(self) -> np.ndarray:
        """True joint angles of the arm (primaries, in joint order), radians."""
        return np.fromiter((s.position_rad for s in self.primaries), float, len(self.primaries))

    def send(self, data: bytes) -> None:
        """Put reply bytes on the wire; dropped if no client drains the terminal."""
        try:
            n = os.write(self.master_fd, data)
        except BlockingIOError:
            n = 0  # nobody is reading the slave and its buffer is full
        except OSError:
            n = 0
        self.dropped_bytes += len(data) - n

    def close(self) -> None:
        """Close both ends of the pseudo-terminal."""
        for fd in (self.master_fd, self.slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class _OperatorClock:
    """A scripted operator's own time: it stands still while paused (held, or calibrating)."""

    def __init__(self, t0: float, held: bool = False) -> None:
        self.t0 = t0
        self._reasons: set[str] = set()
        self._paused_at: float | None = None
        self._paused_total_s = 0.0
        if held:
            self.pause("hold", t0)

    def pause(self, reason: str, now: float) -> None:
        if not self._reasons:
            self._paused_at = now
        self._reasons.add(reason)

    def resume(self, reason: str, now: float) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons and self._paused_at is not None:
            self._paused_total_s += max(0.0, now - self._paused_at)
            self._paused_at = None

    def t(self, now: float) -> float:
        """Seconds of script at monotonic ``now``."""
        if self._paused_at is not None:
            now = min(now, self._paused_at)
        return max(0.0, now - self.t0 - self._paused_total_s)


class _Calibration:
    """Hands on one arm: its calibration moves, and when they hand the arm back (if ending)."""

    def __init__(self, moves: CalibrationMoves) -> None:
        self.moves = moves
        self.finish_s: float | None = None


class ServoServer:
    """All buses of one rig, served from one ``select`` loop (see the module docstring)."""

    def __init__(
        self,
        spec: RigSpec,
        world_name: str | None,
        seed: int = 0,
        options: VirtualRigOptions | None = None,
    ) -> None:
        options = options or VirtualRigOptions()
        self.spec = spec
        self.seed = seed
        self.options = options
        self.grasp_objects = options.grasp_objects
        self.calibration_speed_rad_s = options.calibration_speed_rad_s
        self.calibration_hold_s = options.calibration_hold_s
        self.truths: dict[str, ArmTruth] = {
            arm.name: arm_truth(arm, options.mounting, options.mounting_seed) for arm in spec.arms
        }
        self.t0 = time.monotonic()
        self.clocks: dict[str, _OperatorClock] = {
            arm.name: _OperatorClock(self.t0, options.hold_operator) for arm in spec.leaders
        }
        self.calibrations: dict[str, _Calibration] = {}
        self.world = (
            SharedWorld(WorldLayout.from_spec(spec), name=world_name) if world_name else None
        )
        self.operators: dict[str, ScriptedOperator] = {}
        self.buses: dict[str, _Bus] = {}
        self._by_fd: dict[int, _Bus] = {}
        self._pending: list[tuple[float, int, int, bytes]] = []  # (due, seq, fd, bytes)
        self._seq = 0
        self._stop = False
        try:
            self._build(options.time_constant_s, options.reboot_time_s)
        except BaseException:
            self.close()
            raise

    def _build(self, time_constant_s: float, reboot_time_s: float) -> None:
        spec, t0 = self.spec, self.t0
        for index, arm in enumerate(spec.leaders):
            self.operators[arm.name] = ScriptedOperator(arm, self.seed, _side_of(arm, index))
        for arm in spec.arms:
            if arm.role == "leader":
                op = self.operators[arm.name]
                initial = op.angles(0.0)
            else:
                op = self.operators[arm.follows or ""]
                # A follower rests near, not exactly at, its leader's pose: the app must bring
                # it over gently, as on a real rig.
                rng = np.random.default_rng([self.seed, 7, len(self.buses)])
                lo = np.array([j.min_rad for j in arm.joints])
                hi = np.array([j.max_rad for j in arm.joints])
                initial = np.clip(op.home_rad + rng.uniform(-0.08, 0.08, len(lo)), lo, hi)
            chain = chain_from_arm(
                arm,
                initial_rad=initial,
                seed=self.seed,
                now=t0,
                truth=self.truths[arm.name],
                time_constant_s=time_constant_s,
            )
            chain.reboot_time_s = reboot_time_s
            bus = _Bus(arm, chain)
            self.buses[arm.name] = bus
            self._by_fd[bus.master_fd] = bus
            if arm.role == "leader":
                ids = [j.id for j in arm.joints]
                bus.truth_source = lambda now, name=arm.name: self._leader_angles(name, now)
                chain.set_external_source(ids, bus.truth_source)
            elif self.grasp_objects and bus.gripper is not None:
                clock = self.clocks[arm.follows or ""]
                bus.object_source = lambda now, op=op, clock=clock, name=arm.name: (
                    None if name in self.calibrations else op.object_rad(clock.t(now))
                )
        self._tick(time.monotonic())

    # -- who moves the arms -----------------------------------------------------------------
    def _leader_angles(self, name: str, now: float) -> np.ndarray:
        cal = self.calibrations.get(name)
        if cal is not None:
            if cal.finish_s is None or now < cal.finish_s:
                return cal.moves.angles(now)
            self._end_calibration(name, cal.finish_s)
        return self.operators[name].angles(self.clocks[name].t(now))

    def _begin_calibration(self, name: str, now: float) -> _Calibration:
        bus = self.buses[name]
        truth = self.truths[name]
        if bus.truth_source is not None:
            start = self._leader_angles(name, now)
        else:
            bus.chain.step(now)
            start = bus.angles()
        moves = CalibrationMoves(
            bus.arm.joint_names,
            start,
            now,
            stop_min_rad=np.array([j.stop_min_rad for j in truth.joints]),
            stop_max_rad=np.array([j.stop_max_rad for j in truth.joints]),
            gripper=truth.gripper,
            gripper_open_rad=truth.gripper_open_rad,
            gripper_closed_rad=truth.gripper_closed_rad,
            speed_rad_s=self.calibration_speed_rad_s,
            hold_s=self.calibration_hold_s,
        )
        cal = _Calibration(moves)
        self.calibrations[name] = cal
        if name in self.clocks:
            # The operator's script waits while the hands calibrate, and resumes where it was.
            self.clocks[name].pause("calibration", now)
        else:
            # A follower with torque off, moved by hand.
            if bus.gripper is not None:
                bus.gripper.block_below_rad = None
            bus.chain.set_external_source([j.id for j in bus.arm.joints], moves.angles)
        return cal

    def _end_calibration(self, name: str, at: float) -> None:
        self.calibrations.pop(name, None)
        if name in self.clocks:
            self.clocks[name].resume("calibration", at)
        else:
            bus = self.buses[name]
            bus.chain.step(at)
            bus.chain.clear_external_source()

    def calibration_move(
        self, name: str, action: str, joint: str | None, angles: list[float] | None, now: float
    ) -> float:
        """Plan one calibration move on arm ``name``; the monotonic time at which it ends."""
        if name not in self.buses:
            raise KeyError(f"no arm {name!r}; arms are {', '.join(self.buses)}")
        cal = self.calibrations.get(name)
        if cal is None:
            cal = self._begin_calibration(name, now)
        cal.finish_s = None  # a new move while handing back: the hands keep the arm
        return cal.moves.move(
            action, now, joint=joint, angles=None if angles is None else np.asarray(angles)
        )

    def calibration_end(self, name: str, now: float) -> float:
        """The hands put arm ``name`` back where they took it and let go; when that is done."""
        cal = self.calibrations.get(name)
        if cal is None:
            return now
        cal.finish_s = cal.moves.move("return", now)
        return cal.finish_s

    @property
    def ports(self) -> dict[str, str]:
        """Arm name -> pseudo-terminal slave path to open like a serial port."""
        return {name: bus.path for name, bus in self.buses.items()}

    # -- loop -------------------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        for name, cal in list(self.calibrations.items()):
            if cal.finish_s is not None and now >= cal.finish_s and name not in self.clocks:
                self._end_calibration(name, cal.finish_s)
        for name, bus in self.buses.items():
            if bus.truth_source is not None:
                # A leader is where the operator's hand puts it; its servos catch up lazily
                # when the app reads them, so the tick need not step them.
                truth = bus.truth_source(now)
            else:
                if bus.object_source is not None and bus.gripper is not None:
                    bus.gripper.block_below_rad = bus.object_source(now)
                if now - bus.chain.last_step >= TICK_S / 2:  # requests step it too
                    bus.chain.step(now)
                truth = bus.angles()
            if self.world is not None:
                self.world.write(name, truth)

    def _on_readable(self, bus: _Bus, now: float) -> None:
        try:
            data = os.read(bus.master_fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no client has the slave open; we hold it open, so rare
        if not data:
            return
        reply = bus.chain.handle(data, now)
        if not reply:
            return
        delay = bus.chain.last_delay_s
        if delay > 0.0:
            self._seq += 1
            heapq.heappush(self._pending, (now + delay, self._seq, bus.master_fd, reply))
        else:
            bus.send(reply)

    def serve(self, conn: Connection | None = None) -> None:
        """Run until a ``stop`` request (or until the controlling end of ``conn`` goes away)."""
        conn_fd = conn.fileno() if conn is not None else -1
        next_tick = time.monotonic() + TICK_S
        while not self._stop:
            fds = [*self._by_fd, conn_fd] if conn is not None else list(self._by_fd)
            now = time.monotonic()
            wake = next_tick
            if self._pending and self._pending[0][0] < wake:
                wake = self._pending[0][0]
            readable, _, _ = select.select(fds, [], [], max(0.0, wake - now))
            now = time.monotonic()
            for fd in readable:
                if fd == conn_fd:
                    assert conn is not None
                    self._on_control(conn)
                else:
                    self._on_readable(self._by_fd[fd], now)
            while self._pending and self._pending[0][0] <= now:
                _, _, fd, reply = heapq.heappop(self._pending)
                if fd in self._by_fd:  # not a bus whose port has vanished meanwhile
                    self._by_fd[fd].send(reply)
            if now >= next_tick:
                self._tick(now)
                next_tick += TICK_S
                if next_tick < now:
                    next_tick = now + TICK_S  # fell behind (suspended?): do not burst

    # -- control ----------------------------------------------------------------------------
    def _on_control(self, conn: Connection) -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            self._stop = True  # the app is gone: do not linger as an orphan
            return
        try:
            payload = self.command(*msg)
            reply: tuple[str, Any] = ("ok", payload)
        except Exception as exc:  # reported to the caller, who raises it
            reply = ("error", f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            conn.send(reply)

    def _chains(self, arm: str | None) -> list[VirtualChain]:
        if arm is None:
            return [b.chain for b in self.buses.values()]
        if arm not in self.buses:
            raise KeyError(f"no arm {arm!r}; arms are {', '.join(self.buses)}")
        return [self.buses[arm].chain]

    def command(self, name: str, *args: Any) -> Any:
        """Execute one control command (see the module docstring)."""
        if name == "stop":
            self._stop = True
        elif name == "ping":
            return self.ports
        elif name == "bus_silent":
            arm, silent = args
            for c in self._chains(arm):
                c.set_silent(bool(silent))
        elif name == "bus_vanish":
            (arm,) = args
            bus = self.buses[arm]
            if self._by_fd.pop(bus.master_fd, None) is not None:
                bus.close()  # the app's open port now fails with an I/O error: unplugged
        elif name == "motor_silent":
            arm, dxl_id, silent = args
            self._chains(arm)[0].set_motor_silent(int(dxl_id), bool(silent))
        elif name == "hardware_error":
            arm, dxl_id, bits = args
            chain = self._chains(arm)[0]
            chain.step(time.monotonic())
            chain.inject_hardware_error(int(dxl_id), int(bits))
        elif name == "latency":
            arm, seconds = args
            for c in self._chains(arm):
                c.set_latency(float(seconds))
        elif name == "clear_faults":
            (arm,) = args
            for c in self._chains(arm):
                c.clear_faults()
        elif name == "torque_log":
            (arm,) = args
            chain = self._chains(arm)[0]
            return {i: [(w.t_ns, w.value) for w in s.torque_log] for i, s in chain.servos.items()}
        elif name == "hold_operator":
            arm, hold = args
            now = time.monotonic()
            names = list(self.clocks) if arm is None else [arm]
            for n in names:
                if n not in self.clocks:
                    raise KeyError(f"{n!r} is not a leader; leaders are {', '.join(self.clocks)}")
                if hold:
                    self.clocks[n].pause("hold", now)
                else:
                    self.clocks[n].resume("hold", now)
        elif name == "calibration_move":
            arm, action, joint, angles = args
            return self.calibration_move(arm, action, joint, angles, time.monotonic())
        elif name == "calibration_end":
            (arm,) = args
            return self.calibration_end(arm, time.monotonic())
        elif name == "states":
            (arm,) = args
            chain = self._chains(arm)[0]
            chain.step(time.monotonic())
            return {i: asdict(s.state()) for i, s in chain.servos.items()}
        else:
            raise ValueError(f"unknown command {name!r}")
        return None

    def close(self) -> None:
        """Close every pseudo-terminal and detach from the shared world."""
        for bus in self.buses.values():
            bus.close()
        self.buses.clear()
        self._by_fd.clear()
        if self.world is not None:
            self.world.close()
            self.world = None


def run(
    spec_data: dict[str, Any],
    world_name: str | None,
    seed: int,
    conn: Connection,
    options: VirtualRigOptions | None = None,
) -> None:
    """Process entry point: build the server, report ``("ready", ports)``, serve until stopped."""
    # Ctrl-C in a terminal reaches the whole process group; the servos must outlive it so the
    # app can still switch torque off on its way out, as it would on real hardware.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Real servos answer in microseconds whatever the host is doing; keep the stand-in prompt.
    # Above the control loops (SCHED_FIFO 20): with two rigs (or two test runs) on one machine,
    # one rig's control process must not keep another rig's servos from answering, or a busy
    # CPU looks exactly like a silent bus. The server sleeps in select() between requests.
    raise_priority(SERVO_FIFO_PRIORITY)
    server: ServoServer | None = None
    try:
        spec = RigSpec.model_validate(spec_data)
        server = ServoServer(spec, world_name, seed, options or VirtualRigOptions())
        settle_heap()  # before "ready": a client may ping at once
        conn.send(("ready", server.ports))
        server.serve(conn)
    except Exception as exc:
        log.exception("virtual servo server failed")
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        if server is not None:
            server.close()
        with contextlib.suppress(OSError):
            conn.close()
