"""The control loop in its own process.

Measured on the 2-core target (BENCHMARKS.md): with the loop as a thread beside four camera
threads and the writer, GIL hand-offs after every bus transaction pushed the p99 period error
to 3–8 ms at 100 Hz; in its own process it stays under 1 ms. The control process owns every
bus (opens, configures, reads, writes, closes them); samples reach the app through a
shared-memory ring, so the loop never waits on the app; faults and commands travel over a pipe.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from calibration.mapping import JointMapping
from rigs.dynamixel.bus import BusError, MotorInfo, open_buses
from rigs.realtime import raise_priority, settle_heap
from rigs.spec import RigSpec
from teleop.control.loop import ArmFault, CommandSource, ControlLoop, ControlSample
from teleop.control.messages import Fault, Go, Milestone, Ready, StartFailed, Stop, as_bus_error
from teleop.control.ring import LoopCounters, SampleRing

log = logging.getLogger(__name__)

SampleSink = Callable[[ControlSample, LoopCounters], None]


class ControlProcessError(BusError):
    """The control process failed in a way that is not a bus error (it died, or timed out)."""


def _child(
    spec_json: dict[str, Any],
    ports: dict[str, str],
    rate_hz: float,
    ring_name: str,
    ring_capacity: int,
    conn: Connection,
    log_level: int,
) -> None:
    # Ctrl-C reaches the whole process group: the app decides what happens (it stops the loop,
    # the followers hold). If the app dies instead, the closed pipe stops the loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(levelname)s control: %(message)s")
    priority = raise_priority()
    spec = RigSpec.model_validate(spec_json)
    ring = SampleRing(spec, capacity=ring_capacity, name=ring_name)
    try:
        buses = open_buses(spec, ports)
    except BusError as exc:
        conn.send(StartFailed(exc))
        ring.close()
        return

    def counters() -> LoopCounters:
        stats = [b.stats for b in buses.values()]
        return LoopCounters(
            loop.stats.overruns,
            sum(s.read_retries for s in stats),
            sum(s.failed_reads for s in stats),
            sum(c.limit_hits + c.step_hits for c in loop.clamps.values()),
        )

    hardware = {name: b.hardware_info() for name, b in buses.items()}
    hardware["control"] = {"scheduling": priority, "rate_hz": f"{rate_hz:g}"}
    motors = {name: list(b.motors) for name, b in buses.items()}
    try:
        positions = {name: b.read_state().position_rad for name, b in buses.items()}
    except BusError as exc:
        conn.send(StartFailed(exc))
        for b in buses.values():
            b.disconnect()
        ring.close()
        return
    conn.send(Ready(hardware, motors, positions))
    # The app checks calibration and the start pose before anything moves: wait for "go",
    # which brings the leader-to-follower mappings and the command source (None: follow).
    try:
        go = conn.recv()
        if not isinstance(go, Go):
            raise EOFError
    except (EOFError, OSError):
        for b in buses.values():
            b.disconnect()
        ring.close()
        return
    loop = ControlLoop(
        spec, buses, go.mappings, rate_hz, lambda s: ring.put(s, counters()), source=go.source
    )
    settle_heap()
    loop.start()
    fault_sent = False
    milestones_sent: set[str] = set()
    try:
        while True:
            if conn.poll(0.05) and isinstance(conn.recv(), Stop):
                break
            for name, cycle in loop.source.milestones().items():
                if name not in milestones_sent:
                    conn.send(Milestone(name, cycle))
                    milestones_sent.add(name)
            if loop.fault is not None and not fault_sent:
                f = loop.fault
                cause = f.cause if isinstance(f, ArmFault) else f
                arm = f.arm if isinstance(f, ArmFault) else ""
                role = f.role if isinstance(f, ArmFault) else ""
                conn.send(Fault(as_bus_error(cause), arm, role))
                fault_sent = True
    except (EOFError, OSError):
        pass  # the app went away: stop driving the robot
    finally:
        loop.stop()
        for b in buses.values():
            b.disconnect()
        ring.close()


class ControlProcess:
    """Starts, feeds and stops the control process; calls ``sink`` for every sample."""

    def __init__(
        self,
        spec: RigSpec,
        *,
        ports: dict[str, str],
        rate_hz: float,
        sink: SampleSink,
        ring_seconds: float = 10.0,
    ):
        self.spec = spec
        self.rate_hz = rate_hz
        self.sink = sink
        self.hardware: dict[str, dict[str, str]] = {}
        self.motors: dict[str, list[MotorInfo]] = {}
        self.initial_positions: dict[str, np.ndarray] = {}
        self.fault: BusError | None = None
        self.on_fault: Callable[[BusError], None] | None = None
        self.latest: ControlSample | None = None
        self.counters = LoopCounters(0, 0, 0, 0)
        self.milestones: dict[str, int] = {}
        """The command source's milestones as they arrive (name -> the cycle that reached it)."""
        self._ports = ports
        self._ring = SampleRing(spec, capacity=max(64, int(ring_seconds * rate_hz)), create=True)
        self._proc: Any = None
        self._conn: Connection | None = None
        self._reader = threading.Thread(target=self._read, name="control-samples", daemon=True)
        self._stop = threading.Event()
        self._lost = 0

    @property
    def samples_lost(self) -> int:
        return self._lost if self._ring is None else self._ring.lost

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect and configure every bus in the control process; read where the arms are.

        Nothing follows yet: call :meth:`go` once the start pose and calibration are checked.
        """
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_child,
            args=(
                self.spec.model_dump(mode="json"), self._ports, self.rate_hz,
                self._ring.name, self._ring.layout.capacity, child, logging.getLogger().level,
            ),
            name="teleop-control",
            daemon=True,
        )  # fmt: skip
        self._proc.start()
        child.close()
        self._conn = parent
        try:
            if not parent.poll(timeout_s):
                raise ControlProcessError(
                    f"control process did not connect the buses within {timeout_s:g} s"
                )
            msg = parent.recv()
        except EOFError:
            self._cleanup()
            raise ControlProcessError("control process exited while connecting the buses") from None
        except BaseException:
            self._cleanup()
            raise
        if isinstance(msg, StartFailed):
            self._cleanup()
            raise msg.error
        assert isinstance(msg, Ready), msg
        self.hardware, self.motors, self.initial_positions = msg.hardware, msg.motors, msg.positions

    def go(self, mappings: dict[str, JointMapping], source: CommandSource | None = None) -> None:
        """Start the loop: followers follow their leaders through ``mappings``, or take their
        commands from ``source`` (pickled to the control process); clamps use ``mappings``."""
        assert self._conn is not None, "start() first"
        self._conn.send(Go(mappings, source))
        self._reader.start()

    def _read(self) -> None:
        assert self._conn is not None
        while not self._stop.is_set():
            try:
                if self._conn.poll(0.005):
                    msg = self._conn.recv()
                    if isinstance(msg, Fault):
                        self._set_fault(ArmFault(msg.arm, msg.role, msg.error))
                    elif isinstance(msg, Milestone):
                        self.milestones[msg.name] = msg.cycle
            except (EOFError, OSError):
                if not self._stop.is_set():
                    self._set_fault(ControlProcessError("control process died; check the log"))
                self._drain()
                return
            self._drain()

    def _drain(self) -> None:
        for sample, counters in self._ring.take():
            self.latest = sample
            self.counters = counters
            self.sink(sample, counters)

    def _set_fault(self, exc: BusError) -> None:
        if self.fault is None:
            self.fault = exc
            log.error("control loop stopped: %s", exc)
            if self.on_fault is not None:
                self.on_fault(exc)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop (followers keep holding their last command) and the process."""
        self._stop.set()  # from here on, the child closing its pipe is expected
        if self._conn is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(Stop())
        if self._proc is not None:
            self._proc.join(timeout_s)
        if self._reader.is_alive():
            self._reader.join(timeout_s)
        if self._ring is not None:
            self._drain()  # whatever the loop published before it stopped
        self._cleanup()

    def _cleanup(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(2.0)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._ring is not None:
            self._lost = self._ring.lost
            self._ring.close()
            self._ring = None  # type: ignore[assignment]
