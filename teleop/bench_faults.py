"""``teleop bench torque-off``: how soon the followers lose torque after a bus fault.

The promise is 100 ms from a follower bus going silent (or a servo reporting a hardware
error) to the other followers' torque being switched off. Each trial records on the virtual
rig, injects the fault once the episode holds a second of data, and reads the time of the
first Torque Enable = 0 write from the virtual servos' own log. Figures, not a verdict.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rigs.dynamixel.control_table import HardwareError
from rigs.spec import load_rig
from teleop.bench import _calibrate_quietly
from teleop.recording.policy import RecordingPolicy
from teleop.recording.run import start_session
from teleop.rig_runtime import RigRuntime

FAULTS = ("bus_silent", "hardware_error")


def _trial(rig: str, data_root: Path, fault: str, seed: int) -> tuple[float, str]:
    """Milliseconds from injecting ``fault`` on left_follower to right_follower torque-off
    (NaN if none was seen), and the fault the recorder reported."""
    with RigRuntime(load_rig(rig), seed=seed) as runtime:
        recorder, _session = start_session(
            runtime,
            data_root,
            operator="bench",
            task="torque-off",
            policy=RecordingPolicy(min_free_gb=0),
        )
        try:
            recorder.start_episode()
            deadline = time.monotonic() + 30
            while recorder.samples_written < recorder.rate_hz and time.monotonic() < deadline:
                time.sleep(0.01)
            virtual = runtime.virtual
            assert virtual is not None
            t_fault = time.monotonic_ns()
            if fault == "bus_silent":
                virtual.inject_bus_silent("left_follower")
                victim = "right_follower"
            else:
                virtual.inject_hardware_error("left_follower", 4, int(HardwareError.OVERLOAD))
                victim = "right_follower"
            while recorder.fault is None and time.monotonic() < deadline:
                time.sleep(0.002)
            recorder.stop_episode()
            offs = virtual.torque_offs_after(victim, t_fault)
            ms = (min(offs) - t_fault) / 1e6 if offs else float("nan")
            return ms, str(recorder.fault)
        finally:
            recorder.stop()


def run_bench_torque_off(*, rig: str, trials: int, out: Callable[[str], None]) -> None:
    """Run ``trials`` of each fault and print min / median / max torque-off time."""
    with tempfile.TemporaryDirectory(prefix="teleop-bench-") as tmp:
        root = Path(tmp)
        _calibrate_quietly(rig, root)
        out(f"torque-off after a left_follower fault, {trials} trials each, rig {rig}")
        out(f"{'fault':16} {'min ms':>8} {'median':>8} {'max ms':>8}  missed")
        for fault in FAULTS:
            results = [_trial(rig, root, fault, seed) for seed in range(trials)]
            got = [t for t, _ in results if t == t]
            missed = len(results) - len(got)
            if got:
                out(
                    f"{fault:16} {min(got):8.1f} {statistics.median(got):8.1f} "
                    f"{max(got):8.1f}  {missed}"
                )
            else:
                out(f"{fault:16} {'-':>8} {'-':>8} {'-':>8}  {missed}")
            for t, why in results:
                if t != t:
                    out(f"  no torque-off seen; the recorder reported: {why}")
