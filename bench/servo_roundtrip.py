"""Round-trip time of the virtual servo chain through the real dynamixel_sdk.

Each cycle is what the control loop does on one follower bus: one sync read of the 10-byte
state block (current, velocity, position) of 7 servos, then one sync write of 7 goal
positions. Prints median and p99 of the sync read, the sync write and the whole cycle, for one
bus and for all four buses in turn (as one 4-bus control cycle does).

    .venv/bin/python bench/servo_roundtrip.py [--cycles 2000] [--rig sim-bimanual]
"""

from __future__ import annotations

import argparse
import struct
import time

import dynamixel_sdk as sdk
import numpy as np

from rigs.dynamixel import control_table as ct
from rigs.spec import load_rig
from rigs.virtual.launcher import VirtualRig


class _Port(sdk.PortHandler):
    """Packet timeout for an adapter with a 1 ms latency timer (the SDK assumes 16 ms)."""

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 (SDK name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * packet_length + 4.0


def _stats(name: str, samples_s: list[float]) -> str:
    a = np.array(samples_s) * 1e6
    return (
        f"  {name:<11} median {np.median(a):7.0f} us   p99 {np.percentile(a, 99):7.0f} us   "
        f"max {a.max():7.0f} us"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--rig", default="sim-bimanual")
    args = ap.parse_args()
    spec = load_rig(args.rig).spec
    ph = sdk.PacketHandler(2.0)
    with VirtualRig(spec, seed=0) as rig:
        buses = []
        for arm in spec.arms:
            port = _Port(rig.ports[arm.name])
            port.openPort()
            ids = [j.id for j in arm.joints]
            reader = sdk.GroupSyncRead(port, ph, ct.STATE_BLOCK_START, ct.STATE_BLOCK_LENGTH)
            for i in ids:
                reader.addParam(i)
            writer = sdk.GroupSyncWrite(port, ph, ct.GOAL_POSITION, 4)
            buses.append((arm.name, port, ids, reader, writer))

        def cycle(bus: tuple, reads: list[float], writes: list[float], fails: list[int]) -> None:
            _, _, ids, reader, writer = bus
            t0 = time.perf_counter()
            if reader.txRxPacket() != sdk.COMM_SUCCESS:
                fails.append(1)
                return
            t1 = time.perf_counter()
            writer.clearParam()
            for i in ids:
                pos = struct.unpack_from("<i", bytes(reader.data_dict[i]), 6)[0]
                writer.addParam(i, list(struct.pack("<i", pos)))
            t2 = time.perf_counter()
            writer.txPacket()
            t3 = time.perf_counter()
            reads.append(t1 - t0)
            writes.append(t3 - t2)

        print(f"virtual rig {spec.id}, {args.cycles} cycles, 7 servos x 10 bytes per sync read")
        reads: list[float] = []
        writes: list[float] = []
        fails: list[int] = []
        for _ in range(50):  # warm up
            cycle(buses[2], [], [], [])
        for _ in range(args.cycles):
            cycle(buses[2], reads, writes, fails)
        print(f"one bus ({buses[2][0]}), failures {len(fails)}:")
        print(_stats("sync read", reads))
        print(_stats("sync write", writes))
        print(_stats("read+write", [r + w for r, w in zip(reads, writes, strict=True)]))

        per_cycle: list[float] = []
        reads, writes, fails = [], [], []
        for _ in range(args.cycles):
            t0 = time.perf_counter()
            for bus in buses:
                cycle(bus, reads, writes, fails)
            per_cycle.append(time.perf_counter() - t0)
        print(f"four buses in turn, failures {len(fails)}:")
        print(_stats("sync read", reads))
        print(_stats("sync write", writes))
        print(_stats("4-bus cycle", per_cycle))
        for _, port, *_ in buses:
            port.closePort()


if __name__ == "__main__":
    main()
