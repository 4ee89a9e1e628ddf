"""One episode's follower joints, commands and camera frames, aligned on one time grid.

Both training exporters (LeRobot, ACT/ALOHA HDF5) read episodes through this module, so the
alignment rules live in one place:

- **Arms.** The followers (an arm with both ``/<arm>/joint_states`` and
  ``/<arm>/joint_commands``), ``left*`` first, then ``right*``, then any other by name. Joint
  order is the order of ``JointState.name`` in the messages; shadow motors never appear there
  (the recorder publishes one entry per joint), and a message whose names differ from the
  episode's first is an error rather than a silent reorder.
- **Control cycles.** The recorder writes, per control cycle, one ``joint_states`` and one
  ``joint_commands`` message for every follower, so the k-th message of each topic belongs to
  cycle k. A cycle's time is the first arm's ``joint_states`` ``header.stamp`` (the midpoint
  of its sync read). A cycle cut short by a truncated file is dropped.
- **Grid.** Either one row per control cycle (``fps=None``: the ACT layout), or a fixed grid
  ``t0 + k/fps`` from the first cycle to the last (LeRobot), where each row takes the cycle
  whose stamp is nearest (values are never interpolated: state and action stay a pair that
  was really measured and written together).
- **Cameras.** Colour frames only (depth is not exported). For each row and camera, the frame
  whose capture time (``header.stamp``) is nearest the row's time, if it lies within half the
  camera's frame period (the period from the topic's mean rate). Otherwise (a dropped frame,
  a stalled camera) the row is flagged for that camera (:attr:`AlignedRow.missing`) and takes
  the newest frame captured before its time: a frame from the future would show a policy
  what has not happened yet. A row before the camera's first frame takes that first frame.

The file is read once, in log-time order. Frames are held compressed only while some pending
row may still choose them, and each chosen frame is decoded once, when its row is emitted, so
memory stays flat however long the episode is.
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rigs.cameras.codec import CodecError, decode_jpeg_rgb
from teleop.episode.reader import EpisodeReadError, iter_messages, summarize
from teleop.export.atomic import ExportError

_COLOR_TOPIC = re.compile(r"^/cameras/([^/]+)/color/compressed$")
# A frame received more than this long after its capture is treated as lost: without such a
# bound, a camera that stops mid-episode would hold every later row (and the other cameras'
# frames) in memory until the end of the file. Recorded latencies are well under 0.2 s.
MAX_FRAME_LATENCY_NS = 1_000_000_000


@dataclass(frozen=True)
class EpisodeLayout:
    """What an episode offers to a training export: arms, joints, cameras, provenance."""

    path: Path
    episode_id: str
    """``provenance.episode_id`` (``<session>/episode_NNNN``), else the file name."""
    task: str
    """``provenance.task`` (the task's name), "" when missing."""
    rig_id: str
    arms: tuple[str, ...]
    """Follower arms, left first then right."""
    arm_joints: tuple[tuple[str, ...], ...]
    """Each arm's joint names, in message order."""
    cameras: tuple[str, ...]
    """Cameras with a colour stream, sorted by name."""
    camera_rate_hz: dict[str, float]
    cycle_count: int
    """Complete control cycles (the fewest messages of any follower state/command topic)."""
    span_ns: int
    """Log-time span of the first follower's joint_states (≈ first to last cycle)."""

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Qualified joint names, ``<arm>.<joint>``, in row order (arms, then joints)."""
        return tuple(
            f"{a}.{j}" for a, js in zip(self.arms, self.arm_joints, strict=True) for j in js
        )

    def row_count_estimate(self, fps: float | None) -> int:
        """Rows :func:`iter_aligned` will give (exact for ``fps=None``, ±1 otherwise)."""
        if fps is None:
            return self.cycle_count
        return int(self.span_ns * fps / 1e9) + 1 if self.cycle_count else 0


@dataclass(frozen=True)
class AlignedRow:
    """One row of the grid. Arrays are in :attr:`EpisodeLayout.joint_names` order."""

    index: int
    time_ns: int
    """The grid time (UTC ns, on the capture-time scale of ``header.stamp``)."""
    cycle_stamp_ns: int
    """Stamp of the control cycle whose values this row holds."""
    position: np.ndarray
    """Follower positions (rad), float64."""
    velocity: np.ndarray
    """Follower velocities (rad/s), float64."""
    effort: np.ndarray
    """Follower currents (mA), float64."""
    command: np.ndarray
    """Goal positions written to the followers that cycle (rad), float64."""
    images: dict[str, np.ndarray]
    """Camera name → H×W×3 uint8 RGB (empty when images were not asked for). Shared
    between rows that use the same frame: do not modify."""
    frame_stamps_ns: dict[str, int]
    """Camera name → capture stamp of the frame used."""
    missing: tuple[str, ...] = ()
    """Cameras with no frame within half a period of ``time_ns`` (an older frame is used)."""


def read_layout(path: Path) -> EpisodeLayout:
    """Read an episode's layout from its summary and first follower messages.

    Raises:
        ExportError: the file is unreadable, or has no follower joints to export.
    """
    path = Path(path)
    try:
        summary = summarize(path)
    except EpisodeReadError as exc:
        raise ExportError(str(exc)) from exc
    topics = summary.topics
    followers = [
        t.split("/")[1]
        for t in topics
        if t.endswith("/joint_commands") and f"/{t.split('/')[1]}/joint_states" in topics
    ]
    if not followers:
        raise ExportError(f"{path}: no follower joint_states and joint_commands; not exportable")
    arms = tuple(sorted(followers, key=_arm_order))
    cameras = tuple(sorted(m.group(1) for t in topics if (m := _COLOR_TOPIC.match(t))))
    rates = {}
    for cam in cameras:
        rate = topics[f"/cameras/{cam}/color/compressed"].rate_hz
        rates[cam] = rate if rate else 30.0
    counts = [topics[f"/{a}/{kind}"].message_count for a in arms for kind in _ARM_KINDS]
    first = topics[f"/{arms[0]}/joint_states"]
    span_ns = (first.last_log_time_ns or 0) - (first.first_log_time_ns or 0)
    provenance = summary.metadata.get("provenance", {})
    return EpisodeLayout(
        path=path,
        episode_id=provenance.get("episode_id") or path.stem,
        task=provenance.get("task", ""),
        rig_id=provenance.get("rig_id", ""),
        arms=arms,
        arm_joints=_first_joint_names(path, arms),
        cameras=cameras,
        camera_rate_hz=rates,
        cycle_count=min(counts),
        span_ns=span_ns,
    )


def iter_aligned(
    layout: EpisodeLayout, *, fps: float | None = None, images: bool = True
) -> Iterator[AlignedRow]:
    """Yield the episode's rows in time order, reading the file once.

    Args:
        layout: from :func:`read_layout`.
        fps: a fixed grid of this rate, or None for one row per control cycle.
        images: decode the chosen frames (False: stamps and flags only).

    Raises:
        ExportError: the file is damaged, a joint list changes mid-episode, or a frame
            cannot be decoded; the message names the file.
    """
    aligner = _Aligner(layout, fps, images)
    topics = [f"/{a}/{kind}" for a in layout.arms for kind in _ARM_KINDS]
    topics += [f"/cameras/{c}/color/compressed" for c in layout.cameras]
    try:
        for m in iter_messages(layout.path, topics):
            yield from aligner.feed(m.topic, m.log_time_ns, m.message)
    except EpisodeReadError as exc:
        raise ExportError(str(exc)) from exc
    yield from aligner.finish()


def read_layouts(episodes: Sequence[Path]) -> list[EpisodeLayout]:
    """The layouts of episodes to export together (see :func:`check_same_rig`).

    Raises:
        ExportError: no episodes, an unreadable one, or one that differs from the first.
    """
    if not episodes:
        raise ExportError("no episodes to export; check the episode selection (--where)")
    layouts = [read_layout(Path(p)) for p in episodes]
    check_same_rig(layouts)
    return layouts


def check_same_rig(layouts: Sequence[EpisodeLayout]) -> None:
    """Raise :class:`ExportError` naming the first episode whose joints or cameras differ
    from the first episode's (a training dataset has one shape)."""
    first = layouts[0]
    for layout in layouts[1:]:
        if layout.joint_names != first.joint_names:
            raise ExportError(
                f"{layout.path}: joints {list(layout.joint_names)} differ from "
                f"{first.path}'s; export one rig's episodes at a time"
            )
        if layout.cameras != first.cameras:
            raise ExportError(
                f"{layout.path}: cameras {list(layout.cameras)} differ from {first.path}'s "
                f"{list(first.cameras)}; export one rig's episodes at a time"
            )


# -- internals -------------------------------------------------------------------------------

_ARM_KINDS = ("joint_states", "joint_commands")


def _arm_order(name: str) -> tuple[int, str]:
    for rank, side in enumerate(("left", "right")):
        if name.startswith(side):
            return rank, name
    return 2, name


def _first_joint_names(path: Path, arms: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    names: dict[str, tuple[str, ...]] = {}
    messages = iter_messages(path, [f"/{a}/joint_states" for a in arms])
    try:
        for m in messages:
            names.setdefault(m.topic.split("/")[1], tuple(m.message.name))
            if len(names) == len(arms):
                break
    except EpisodeReadError as exc:
        raise ExportError(str(exc)) from exc
    finally:
        messages.close()
    for arm in arms:
        joints = names.get(arm)
        if not joints:
            raise ExportError(f"{path}: /{arm}/joint_states has no joint names; not exportable")
        if len(set(joints)) != len(joints):
            raise ExportError(f"{path}: /{arm}/joint_states repeats a joint name: {joints}")
    return tuple(names[a] for a in arms)


def _stamp_ns(message: Any) -> int:
    stamp = message.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass
class _Cycle:
    stamp_ns: int
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    command: np.ndarray


@dataclass
class _Row:
    index: int
    time_ns: int
    cycle: _Cycle
    choices: dict[str, _Choice] = field(default_factory=dict)
    """Camera → its frame, once decided."""


class _Camera:
    """Frames of one camera that some pending row may still choose (compressed)."""

    def __init__(self, name: str, rate_hz: float):
        self.name = name
        self.tolerance_ns = int(0.5e9 / rate_hz)
        self.stamps: list[int] = []
        self.data: list[bytes] = []
        self.decoded: tuple[int, np.ndarray] | None = None
        """The last decoded frame, reused while rows keep choosing it."""

    def add(self, stamp_ns: int, data: bytes) -> None:
        # Stamps normally increase; insort keeps the search right if a device clock steps.
        i = bisect.bisect_right(self.stamps, stamp_ns)
        self.stamps.insert(i, stamp_ns)
        self.data.insert(i, data)

    def resolve(self, t_ns: int, now_log_ns: int | None) -> _Choice | None:
        """The frame for a row at ``t_ns``; None while a later frame could still be nearer.

        ``now_log_ns`` is the newest log time read so far (None at the end of the file).
        """
        i = bisect.bisect_left(self.stamps, t_ns)
        if (
            i == len(self.stamps)
            and now_log_ns is not None
            and now_log_ns <= t_ns + self.tolerance_ns + MAX_FRAME_LATENCY_NS
        ):
            return None
        if not self.stamps:
            return _Choice(None, False)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.stamps)]
        j = min(candidates, key=lambda k: abs(self.stamps[k] - t_ns))
        in_tolerance = abs(self.stamps[j] - t_ns) <= self.tolerance_ns
        if not in_tolerance:
            j = max(i - 1, 0)  # the newest frame before t, else the first
        # Frames before the chosen one can never be chosen by a later row.
        del self.stamps[:j], self.data[:j]
        return _Choice((self.stamps[0], self.data[0]), in_tolerance)


@dataclass(frozen=True)
class _Choice:
    frame: tuple[int, bytes] | None
    """(stamp, jpeg) of the chosen frame, None when the camera has no frame at all."""
    in_tolerance: bool


class _Aligner:
    def __init__(self, layout: EpisodeLayout, fps: float | None, images: bool):
        self.layout = layout
        self.period_ns = None if fps is None else 1e9 / fps
        self.images = images
        self.arm_index = {a: i for i, a in enumerate(layout.arms)}
        self.states: list[deque[Any]] = [deque() for _ in layout.arms]
        self.commands: list[deque[Any]] = [deque() for _ in layout.arms]
        self.cameras = {c: _Camera(c, layout.camera_rate_hz[c]) for c in layout.cameras}
        self.pending: deque[_Row] = deque()
        self.last_cycle: _Cycle | None = None
        self.t0_ns: int | None = None
        self.next_index = 0

    def feed(self, topic: str, log_ns: int, message: Any) -> Iterator[AlignedRow]:
        parts = topic.split("/")
        if parts[1] == "cameras":
            self.cameras[parts[2]].add(_stamp_ns(message), message.data)
        else:
            i = self.arm_index[parts[1]]
            names = tuple(message.name)
            if names != self.layout.arm_joints[i]:
                raise ExportError(
                    f"{self.layout.path}: {topic} joint names changed mid-episode "
                    f"({list(names)} instead of {list(self.layout.arm_joints[i])})"
                )
            (self.states if parts[2] == "joint_states" else self.commands)[i].append(message)
            while all(self.states) and all(self.commands):
                self._add_cycle(self._pop_cycle())
        return self._emit(now_log_ns=log_ns)

    def finish(self) -> Iterator[AlignedRow]:
        return self._emit(now_log_ns=None)

    def _pop_cycle(self) -> _Cycle:
        states = [q.popleft() for q in self.states]
        commands = [q.popleft() for q in self.commands]

        def joined(messages: list[Any], field: str, kind: str) -> np.ndarray:
            for arm, joints, m in zip(
                self.layout.arms, self.layout.arm_joints, messages, strict=True
            ):
                if len(getattr(m, field)) != len(joints):
                    raise ExportError(
                        f"{self.layout.path}: /{arm}/{kind} has {len(getattr(m, field))} "
                        f"{field} values for {len(joints)} joints"
                    )
            return np.concatenate([np.asarray(getattr(m, field), float) for m in messages])

        return _Cycle(
            stamp_ns=_stamp_ns(states[0]),
            position=joined(states, "position", "joint_states"),
            velocity=joined(states, "velocity", "joint_states"),
            effort=joined(states, "effort", "joint_states"),
            command=joined(commands, "position", "joint_commands"),
        )

    def _add_cycle(self, cycle: _Cycle) -> None:
        """Create the grid rows up to this cycle's stamp; each takes the nearer of the two
        cycles around it (rows are made only up to the newest cycle, so no later one can be
        nearer)."""
        prev, self.last_cycle = self.last_cycle, cycle
        if self.period_ns is None:
            self._append_row(cycle.stamp_ns, cycle)
            return
        if self.t0_ns is None:
            self.t0_ns = cycle.stamp_ns
        while (t := self.t0_ns + round(self.next_index * self.period_ns)) <= cycle.stamp_ns:
            nearest = cycle
            if prev is not None and t - prev.stamp_ns < cycle.stamp_ns - t:
                nearest = prev
            self._append_row(t, nearest)

    def _append_row(self, t_ns: int, cycle: _Cycle) -> None:
        self.pending.append(_Row(self.next_index, t_ns, cycle))
        self.next_index += 1

    def _emit(self, now_log_ns: int | None) -> Iterator[AlignedRow]:
        while self.pending:
            row = self.pending[0]
            for name, cam in self.cameras.items():
                if name not in row.choices:
                    choice = cam.resolve(row.time_ns, now_log_ns)
                    if choice is None:
                        return
                    row.choices[name] = choice
            self.pending.popleft()
            yield self._finish_row(row)

    def _finish_row(self, row: _Row) -> AlignedRow:
        images: dict[str, np.ndarray] = {}
        stamps: dict[str, int] = {}
        missing = []
        for name, cam in self.cameras.items():
            choice = row.choices[name]
            frame = choice.frame
            if not choice.in_tolerance:
                missing.append(name)
            if frame is None:  # the camera has no frame at all
                continue
            stamps[name] = frame[0]
            if self.images:
                images[name] = self._decode(cam, frame)
        c = row.cycle
        return AlignedRow(
            index=row.index,
            time_ns=row.time_ns,
            cycle_stamp_ns=c.stamp_ns,
            position=c.position,
            velocity=c.velocity,
            effort=c.effort,
            command=c.command,
            images=images,
            frame_stamps_ns=stamps,
            missing=tuple(missing),
        )

    def _decode(self, cam: _Camera, frame: tuple[int, bytes]) -> np.ndarray:
        if cam.decoded is not None and cam.decoded[0] == frame[0]:
            return cam.decoded[1]
        try:
            rgb = decode_jpeg_rgb(frame[1])
        except CodecError as exc:
            raise ExportError(
                f"{self.layout.path}: camera {cam.name} frame at stamp {frame[0]} ns: {exc}"
            ) from exc
        rgb.flags.writeable = False
        cam.decoded = (frame[0], rgb)
        return rgb
