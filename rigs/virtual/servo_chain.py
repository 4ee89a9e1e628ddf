"""A virtual bus of Dynamixel servos that answers Protocol 2.0 packets.

:class:`VirtualChain` is one bus: raw instruction bytes in, raw status bytes out, covering the
instructions dynamixel_sdk uses (ping incl. broadcast, read, write, reg write/action, sync and
bulk read/write, fast sync/bulk read, reboot, factory reset, clear) plus fault injection, over
:class:`~rigs.virtual.servo.VirtualServo` servos mounted as :mod:`rigs.virtual.mounting` says.
It does no I/O; :mod:`rigs.virtual.server` puts chains behind pseudo-terminals.
:func:`chain_from_arm` builds one for an arm of a rig file.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rigs.dynamixel import control_table as ct
from rigs.dynamixel import protocol as p
from rigs.spec import Arm

if TYPE_CHECKING:
    import numpy as np

from rigs.virtual.mounting import ArmTruth, arm_truth
from rigs.virtual.servo import TorqueWrite, VirtualServo

# --- the bus ----------------------------------------------------------------------------------


class VirtualChain:
    """One bus of virtual servos: raw instruction bytes in, raw status bytes out.

    Call :meth:`handle` with whatever arrived on the wire; it returns the bytes to send back
    and sets :attr:`last_delay_s` to how long the reply should be held back (injected latency
    plus the servos' Return Delay Time). Physics advances lazily on each request and on
    :meth:`step`.
    """

    def __init__(
        self,
        servos: Iterable[VirtualServo] = (),
        *,
        name: str = "bus",
        reboot_time_s: float = 0.05,
        partial_packet_timeout_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.reboot_time_s = reboot_time_s
        self.partial_packet_timeout_s = partial_packet_timeout_s
        self.clock = clock
        self.parser = p.PacketParser()
        self._servos: list[VirtualServo] = []
        self._by_id: dict[int, VirtualServo] = {}
        self._by_secondary: dict[int, list[VirtualServo]] = {}
        self.silent = False
        self.latency_s = 0.0
        self.last_delay_s = 0.0
        self.packets_seen = 0
        self._last_rx = 0.0
        self.last_step = -1.0
        self._external: (
            tuple[list[VirtualServo], Callable[[float], Sequence[float] | np.ndarray]] | None
        ) = None
        for s in servos:
            self.add(s)

    # -- membership -------------------------------------------------------------------------
    def add(self, servo: VirtualServo) -> None:
        """Put a servo on the bus."""
        self._servos.append(servo)
        self._reindex()

    def _reindex(self) -> None:
        self._by_id = {}
        self._by_secondary = {}
        for s in self._servos:
            s.identity_changed = False
            self._by_id[s.id] = s
            if s.secondary_id <= p.MAX_ID:
                self._by_secondary.setdefault(s.secondary_id, []).append(s)
        # Primaries first so shadows copy an up-to-date primary.
        self._servos.sort(key=lambda s: (s.mirror_of is not None, s.id))

    @property
    def servos(self) -> dict[int, VirtualServo]:
        """Servos by their current id."""
        return dict(self._by_id)

    def servo(self, dxl_id: int) -> VirtualServo:
        """The servo that has id ``dxl_id`` now (KeyError if none)."""
        return self._by_id[dxl_id]

    def set_external_source(
        self, ids: Sequence[int], source: Callable[[float], Sequence[float] | np.ndarray]
    ) -> None:
        """Move servos ``ids`` from outside: ``source(now)`` gives their angles in radians."""
        servos = [self._by_id[i] for i in ids]
        self._external = (servos, source)
        self._apply_external(self.clock())

    def clear_external_source(self) -> None:
        """Nobody moves the servos from outside any more; they stay where they were left."""
        if self._external is None:
            return
        servos, _ = self._external
        self._external = None
        for s in servos:
            s.external_rad = None

    def _apply_external(self, now: float) -> None:
        if self._external is None:
            return
        servos, source = self._external
        for s, rad in zip(servos, source(now), strict=True):
            s.external_rad = float(rad)

    # -- physics ----------------------------------------------------------------------------
    def step(self, now: float | None = None) -> None:
        """Advance every servo to ``now``."""
        now = self.clock() if now is None else now
        self._apply_external(now)
        for s in self._servos:
            s.step(now)
        self.last_step = now

    # -- fault injection --------------------------------------------------------------------
    def set_silent(self, silent: bool = True) -> None:
        """The whole bus stops answering (adapter unplugged, power lost)."""
        self.silent = silent

    def set_motor_silent(self, dxl_id: int, silent: bool = True) -> None:
        """One motor neither hears nor answers (cable break); it keeps its last state."""
        self._by_id[dxl_id].silent = silent

    def inject_hardware_error(
        self, dxl_id: int, bits: int = int(ct.HardwareError.OVERLOAD)
    ) -> None:
        """Set Hardware Error Status bits on one motor; its torque goes off."""
        self._by_id[dxl_id].set_hardware_error(bits)

    def set_latency(self, seconds: float) -> None:
        """Hold every reply back by ``seconds`` (a slow adapter or a busy bus)."""
        self.latency_s = max(0.0, float(seconds))

    def clear_faults(self) -> None:
        """Undo silence and latency (hardware errors stay until a reboot, as on real servos)."""
        self.silent = False
        self.latency_s = 0.0
        for s in self._servos:
            s.silent = False

    def torque_log(self, dxl_id: int) -> list[TorqueWrite]:
        """Torque Enable writes one servo received, oldest first."""
        return list(self._by_id[dxl_id].torque_log)

    # -- the wire ---------------------------------------------------------------------------
    def handle(self, data: bytes, now: float | None = None) -> bytes:
        """Feed bytes from the host; return the bytes the servos send back."""
        now = self.clock() if now is None else now
        self.last_delay_s = 0.0
        if self.silent:
            self.parser.reset()
            return b""
        if self.parser.pending and now - self._last_rx > self.partial_packet_timeout_s:
            self.parser.reset()  # servos drop a packet whose rest never came
        self._last_rx = now
        out = bytearray()
        delay = 0.0
        for packet in self.parser.feed(data):
            reply, d = self._handle_packet(packet, now)
            out += reply
            delay += d
        if out:
            self.last_delay_s = self.latency_s + delay
        return bytes(out)

    def _live(self, dxl_id: int, now: float) -> VirtualServo | None:
        s = self._by_id.get(dxl_id)
        if s is None or s.silent or now < s.boot_until:
            return None
        return s

    def _actors(self, dxl_id: int, now: float) -> list[VirtualServo]:
        """Servos that act on an instruction for ``dxl_id``: its owner and secondary-id followers."""
        if dxl_id == p.BROADCAST_ID:
            return [s for s in self._servos if not s.silent and now >= s.boot_until]
        out = []
        s = self._live(dxl_id, now)
        if s is not None:
            out.append(s)
        for sec in self._by_secondary.get(dxl_id, ()):
            if sec is not s and not sec.silent and now >= sec.boot_until:
                out.append(sec)
        return out

    def _status(self, s: VirtualServo, error: int, params: bytes = b"") -> bytes:
        return p.build_status(s.id, error | s.status_error, params)

    def _handle_packet(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        if pkt.instruction == p.STATUS:
            return b"", 0.0  # another device's reply (or an echo); servos ignore them
        self.packets_seen += 1
        if now - self.last_step > 0.0005:
            self.step(now)
        inst = pkt.instruction
        handler = self._handlers.get(inst)
        broadcast = pkt.id == p.BROADCAST_ID
        if handler is None:
            s = None if broadcast else self._live(pkt.id, now)
            if s is None:
                return b"", 0.0
            s.touch(now)
            return self._status(s, p.ERR_INSTRUCTION), s.return_delay_s
        out, delay = handler(self, pkt, now)
        if any(s.identity_changed for s in self._servos):
            self._reindex()
        return out, delay

    # Each handler returns (reply bytes, reply delay in seconds).
    def _ping(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        targets = self._actors(pkt.id, now)
        if pkt.id != p.BROADCAST_ID:
            targets = targets[:1] if targets and targets[0].id == pkt.id else []
        out = bytearray()
        delay = 0.0
        for s in sorted(targets, key=lambda s: s.id):
            s.touch(now)
            info = struct.pack("<HB", s.model.number, s.table[ct.FIRMWARE_VERSION])
            out += self._status(s, 0, info)
            delay += s.return_delay_s
        return bytes(out), delay

    def _read(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        s = None if pkt.id == p.BROADCAST_ID else self._live(pkt.id, now)
        if s is None:
            return b"", 0.0
        s.touch(now)
        if s.status_return_level < 1:
            return b"", 0.0
        if len(pkt.params) != 4:
            return self._status(s, p.ERR_DATA_LENGTH), s.return_delay_s
        address, length = struct.unpack("<HH", pkt.params)
        err, data = s.read(address, length)
        return self._status(s, err, data), s.return_delay_s

    def _write_common(self, pkt: p.Packet, now: float, registered: bool) -> tuple[bytes, float]:
        actors = self._actors(pkt.id, now)
        owner = self._owner(pkt, actors)
        err = 0
        if len(pkt.params) < 3:
            err = p.ERR_DATA_LENGTH
        else:
            address = pkt.params[0] | (pkt.params[1] << 8)
            data = pkt.params[2:]
            for s in actors:
                s.touch(now)
                e = s.register_write(address, data) if registered else s.write(address, data)
                if s is owner:
                    err = e
        return self._reply(pkt, owner, err)

    @staticmethod
    def _owner(pkt: p.Packet, actors: list[VirtualServo]) -> VirtualServo | None:
        """The servo that answers: the one whose own id the packet names (not a broadcast)."""
        if pkt.id == p.BROADCAST_ID or not actors or actors[0].id != pkt.id:
            return None
        return actors[0]

    @staticmethod
    def _reply(pkt: p.Packet, owner: VirtualServo | None, err: int) -> tuple[bytes, float]:
        if owner is None or owner.status_return_level < 2:
            return b"", 0.0
        # Addressed with the id the packet used, even if the write just changed it.
        return p.build_status(pkt.id, err | owner.status_error), owner.return_delay_s

    def _write(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        return self._write_common(pkt, now, registered=False)

    def _reg_write(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        return self._write_common(pkt, now, registered=True)

    def _action(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        actors = self._actors(pkt.id, now)
        owner = self._owner(pkt, actors)
        err = 0
        for s in actors:
            s.touch(now)
            e = s.action()
            if s is owner:
                err = e
        return self._reply(pkt, owner, err)

    def _reboot(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        actors = self._actors(pkt.id, now)
        # The status goes out before the servo restarts.
        reply = self._reply(pkt, self._owner(pkt, actors), 0)
        for s in actors:
            s.reboot(now, self.reboot_time_s)
        return reply

    def _factory_reset(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        if pkt.id == p.BROADCAST_ID:
            return b"", 0.0  # the firmware ignores a broadcast factory reset
        s = self._live(pkt.id, now)
        if s is None:
            return b"", 0.0
        s.touch(now)
        option = pkt.params[0] if pkt.params else 0xFF
        reply = self._status(s, 0), s.return_delay_s  # sent before the servo resets
        err = s.factory_reset(option, now, self.reboot_time_s)
        if err:
            return self._status(s, err), s.return_delay_s
        return reply

    def _clear(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        actors = self._actors(pkt.id, now)
        owner = self._owner(pkt, actors)
        err = 0
        if pkt.params[:1] == b"\x01":
            for s in actors:
                s.touch(now)
                if s.torque_on and abs(s.vel_raw) > 1.0:
                    err = p.ERR_RESULT_FAIL if s is owner else err
                    continue
                # Clear Multi-Turn: Present Position back within one revolution; the shaft
                # itself stays where it is.
                s.reset_turns()
                s.step(now + 1e-6)
        else:
            err = p.ERR_DATA_RANGE
        return self._reply(pkt, owner, err)

    def _read_each(
        self, requests: Iterable[tuple[int, int, int]], now: float, fast: bool
    ) -> tuple[bytes, list[tuple[int, int, bytes]], float, int]:
        """Each servo's reply to a sync or bulk read of ``(id, address, length)``, in order,
        until one does not answer (later servos wait for its reply; it never comes).

        Returns the status packets (or, for a fast read, the entries of its one reply), the
        summed return delay, and how many requests were reached."""
        out = bytearray()
        entries: list[tuple[int, int, bytes]] = []
        delay = 0.0
        reached = 0
        for dxl_id, address, length in requests:
            reached += 1
            s = self._live(dxl_id, now)
            if s is None:
                break
            s.touch(now)
            if s.status_return_level < 1:
                break
            err, data = s.read(address, length)
            delay += s.return_delay_s
            if fast:
                entries.append((s.id, err | s.status_error, data))
            else:
                out += self._status(s, err, data)
        return bytes(out), entries, delay, reached

    def _sync_read(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        if len(pkt.params) < 5:
            return b"", 0.0
        address, length = struct.unpack_from("<HH", pkt.params)
        ids = pkt.params[4:]
        fast = pkt.instruction == p.FAST_SYNC_READ
        out, entries, delay, _ = self._read_each(((i, address, length) for i in ids), now, fast)
        if fast:
            return self._fast_reply(entries, len(ids), length), delay
        return out, delay

    def _bulk_read(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        params = pkt.params
        if len(params) % 5 or not params:
            return b"", 0.0
        requests = list(struct.iter_unpack("<BHH", params))
        fast = pkt.instruction == p.FAST_BULK_READ
        out, entries, delay, reached = self._read_each(requests, now, fast)
        if fast:
            total = sum(length for _, _, length in requests)
            return self._fast_reply_sized(entries, reached, total), delay
        return out, delay

    @staticmethod
    def _fast_reply(entries: list[tuple[int, int, bytes]], expected: int, length: int) -> bytes:
        return VirtualChain._fast_reply_sized(entries, expected, expected * length)

    @staticmethod
    def _fast_reply_sized(
        entries: list[tuple[int, int, bytes]], expected: int, total_data: int
    ) -> bytes:
        if not entries:
            return b""
        packet = p.build_fast_status(entries)
        if len(entries) == expected:
            return packet
        # A servo in the middle is missing: the first servo announced the full length, the
        # stream just stops where the missing one should have continued it.
        full_length = 1 + total_data + 4 * expected
        return packet[:5] + full_length.to_bytes(2, "little") + packet[7:]

    def _sync_write(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        params = pkt.params
        if len(params) < 4:
            return b"", 0.0
        address, length = struct.unpack_from("<HH", params)
        block = 1 + length
        body = params[4:]
        if length == 0 or len(body) % block:
            return b"", 0.0
        for i in range(0, len(body), block):
            for s in self._actors(body[i], now):
                s.touch(now)
                s.write(address, body[i + 1 : i + block])
        return b"", 0.0

    def _bulk_write(self, pkt: p.Packet, now: float) -> tuple[bytes, float]:
        params = pkt.params
        i = 0
        while i + 5 <= len(params):
            dxl_id, address, length = struct.unpack_from("<BHH", params, i)
            data = params[i + 5 : i + 5 + length]
            if len(data) != length:
                break
            for s in self._actors(dxl_id, now):
                s.touch(now)
                s.write(address, data)
            i += 5 + length
        return b"", 0.0

    _handlers: dict[int, Callable[[VirtualChain, p.Packet, float], tuple[bytes, float]]] = {
        p.PING: _ping,
        p.READ: _read,
        p.WRITE: _write,
        p.REG_WRITE: _reg_write,
        p.ACTION: _action,
        p.FACTORY_RESET: _factory_reset,
        p.REBOOT: _reboot,
        p.CLEAR: _clear,
        p.SYNC_READ: _sync_read,
        p.FAST_SYNC_READ: _sync_read,
        p.SYNC_WRITE: _sync_write,
        p.BULK_READ: _bulk_read,
        p.FAST_BULK_READ: _bulk_read,
        p.BULK_WRITE: _bulk_write,
    }


def chain_from_arm(
    arm: Arm,
    *,
    initial_rad: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
    now: float | None = None,
    truth: ArmTruth | None = None,
    **servo_options: Any,
) -> VirtualChain:
    """The servos of one arm of a rig spec on one bus, shadows included.

    Shadow servos get Secondary ID = their primary's id (as ALOHA-style arms are configured),
    so instructions addressed to the primary reach them too, and they mirror its motion (they
    share its mounting). ``truth`` gives each joint's mounting (default: ideal). ``initial_rad``
    are joint angles.
    """
    now = time.monotonic() if now is None else now
    angles = list(initial_rad) if initial_rad is not None else [0.0] * len(arm.joints)
    truth = truth if truth is not None else arm_truth(arm, "ideal")
    chain = VirtualChain(name=arm.name)
    for joint, rad in zip(arm.joints, angles, strict=True):
        jt = truth.joint(joint.name)
        mount = {"mount_offset_ticks": jt.offset_ticks, "mount_direction": jt.direction}
        primary = VirtualServo(
            joint.id,
            joint.model,
            baudrate=arm.baudrate,
            position_rad=rad,
            seed=seed,
            now=now,
            **mount,
            **servo_options,
        )
        chain.add(primary)
        if joint.shadow_id is not None:
            shadow = VirtualServo(
                joint.shadow_id,
                joint.model,
                baudrate=arm.baudrate,
                position_rad=rad,
                seed=seed,
                now=now,
                **mount,
                **servo_options,
            )
            shadow.table[ct.SECONDARY_ID] = joint.id
            shadow._refresh()
            shadow.mirror_of = primary
            chain.add(shadow)
    return chain
