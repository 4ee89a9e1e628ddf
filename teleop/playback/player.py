"""Player: plays an episode on a background thread and hands out ready snapshots.

The caller (a GUI timer, a benchmark) only sets the wanted state — play, pause, speed, seek,
step, which cameras show depth — and picks up :meth:`Player.snapshot`, which never touches the
disk. One worker thread owns the :class:`~teleop.playback.reader.EpisodeReader`: it follows the
playhead, decodes the frame nearest the playhead for every camera whose nearest frame changed,
refreshes the joint window about once a second, and swaps in a new snapshot.

Playing never lags: the playhead runs on the monotonic clock, and the worker always prepares
the frame for *now*; frames it had no time for are skipped and counted, not queued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from teleop.episode.reader import EpisodeReadError
from teleop.playback.marks import EpisodeMarks, episode_marks
from teleop.playback.reader import EpisodeReader, Frame, JointSeries

log = logging.getLogger(__name__)

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
JOINT_WINDOW_NS = 5_000_000_000
"""The joint window spans the playhead ± this."""
_JOINT_REFRESH_NS = 1_000_000_000  # re-read the window when the playhead moved this far
_PLAYING_POLL_S = 0.004  # worker wake-up while playing: well under a 30 fps frame period
_IDLE_POLL_S = 0.25
_PREFETCH_NS = 3_000_000_000  # while playing, the OS reads this far ahead of the playhead
_SEEK_GAP_NS = 2_000_000_000  # a jump this large between shown frames is a seek, not a skip


@dataclass(frozen=True)
class Snapshot:
    """What to show, prepared by the worker. Immutable: the GUI may keep it."""

    seq: int
    """Increases with every new snapshot."""
    position_ns: int
    """Playhead (ns since the episode start) the frames were chosen for."""
    stamp_ns: int
    """The same instant in UTC ns (file time)."""
    frames: dict[str, Frame]
    """Colour frame nearest the playhead, per camera (cameras without frames are absent)."""
    depth: dict[str, Frame]
    """Depth pictures for the cameras whose depth is switched on."""
    joints: dict[str, JointSeries]
    """Joint window per joint topic, around ``joints_position_ns``."""
    joints_position_ns: int | None
    """Where the joint window is centred: after a seek the frames come first, and the
    window follows in a later snapshot."""
    marks: EpisodeMarks | None
    """Timeline marks, once the worker has read them."""
    playing: bool
    lag_ns: int
    """How far the playhead had moved on when these frames were ready."""
    shown: dict[str, int] = field(default_factory=dict)
    """Distinct frames shown per camera while playing."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Frames skipped per camera while playing (no time to decode them)."""
    error: str | None = None
    """The worker's last error (a damaged chunk), one line."""


class Player:
    """Plays one episode at a time. All methods are cheap and never read the disk, except
    :meth:`open` (reads the file's summary) and :meth:`close`.

    Args:
        clock_ns: monotonic clock (tests and benchmarks may pass their own).
        cache_chunks: decompressed chunks the reader keeps.
    """

    def __init__(
        self,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        cache_chunks: int = 6,
    ):
        self._clock = clock_ns
        self._cache_chunks = cache_chunks
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: EpisodeReader | None = None
        self._snapshot: Snapshot | None = None
        self._playing = False
        self._speed = 1.0
        self._anchor_pos_ns = 0
        self._anchor_clock_ns = 0
        self._pending_step = 0
        self._generation = 0  # bumped by seek/step: the next frames are not "skipped" ones
        self._depth_on: frozenset[str] = frozenset()

    # -- episode --------------------------------------------------------------------------

    def open(self, path: Path) -> EpisodeReader:
        """Open ``path`` (closing any open episode) at position 0, paused.

        Returns the reader for its static facts (cameras, depth cameras, duration, metadata);
        do not call its reading methods: the worker thread owns it.

        Raises:
            EpisodeReadError: not a complete, readable episode.
        """
        reader = EpisodeReader(path, cache_chunks=self._cache_chunks)
        self.close()
        with self._lock:
            self._reader = reader
            self._snapshot = None
            self._playing = False
            self._anchor_pos_ns = 0
            self._pending_step = 0
            self._generation += 1
            self._depth_on = frozenset()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(reader,), name="replay-player", daemon=True
        )
        self._thread.start()
        return reader

    def close(self) -> None:
        """Stop the worker and close the file (no-op when nothing is open)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join()
        with self._lock:
            reader, self._reader = self._reader, None
            self._snapshot = None
            self._playing = False
        if reader is not None:
            reader.close()

    @property
    def is_open(self) -> bool:
        return self._reader is not None

    @property
    def duration_ns(self) -> int:
        """Episode length (0 when nothing is open)."""
        reader = self._reader
        return reader.duration_ns if reader is not None else 0

    # -- transport ------------------------------------------------------------------------

    @property
    def position_ns(self) -> int:
        """The playhead now: moves with the clock while playing; stops at the end."""
        with self._lock:
            return self._position_locked()

    @property
    def playing(self) -> bool:
        with self._lock:
            self._position_locked()  # pauses at the end
            return self._playing

    @property
    def speed(self) -> float:
        return self._speed

    def play(self) -> None:
        """Start playing from the playhead (from the start again when at the end)."""
        with self._lock:
            if self._reader is None or self._playing:
                return
            pos = self._position_locked()
            if pos >= self._reader.duration_ns:
                pos = 0
                self._generation += 1
            self._anchor(pos)
            self._playing = True
        self._wake.set()

    def pause(self) -> None:
        with self._lock:
            self._anchor(self._position_locked())
            self._playing = False
        self._wake.set()

    def toggle(self) -> None:
        """Play when paused, pause when playing."""
        if self.playing:
            self.pause()
        else:
            self.play()

    def set_speed(self, factor: float) -> None:
        """Playback speed, 0.25–4× (clamped)."""
        with self._lock:
            self._anchor(self._position_locked())
            self._speed = min(max(float(factor), SPEEDS[0]), SPEEDS[-1])
        self._wake.set()

    def seek(self, t_ns: int) -> None:
        """Move the playhead to ``t_ns`` since the start (clamped); playing goes on from there."""
        with self._lock:
            self._anchor(self._clamp(int(t_ns)))
            self._pending_step = 0
            self._generation += 1
        self._wake.set()

    def step(self, frames: int) -> None:
        """Pause and move ``frames`` frames of the reference camera forward (or back)."""
        with self._lock:
            self._anchor(self._position_locked())
            self._playing = False
            self._pending_step += int(frames)
        self._wake.set()

    def set_depth(self, camera: str, on: bool) -> None:
        """Show ``camera``'s depth stream too (it must have one)."""
        with self._lock:
            self._depth_on = self._depth_on | {camera} if on else self._depth_on - {camera}
        self._wake.set()

    def snapshot(self) -> Snapshot | None:
        """The newest prepared snapshot (None until the first is ready)."""
        return self._snapshot

    # -- internals ------------------------------------------------------------------------

    def _clamp(self, pos: int) -> int:
        duration = self._reader.duration_ns if self._reader is not None else 0
        return min(max(pos, 0), duration)

    def _anchor(self, pos: int) -> None:
        self._anchor_pos_ns = pos
        self._anchor_clock_ns = self._clock()

    def _position_locked(self) -> int:
        if not self._playing:
            return self._anchor_pos_ns
        moved = (self._clock() - self._anchor_clock_ns) * self._speed
        pos = self._anchor_pos_ns + int(moved)
        duration = self._reader.duration_ns if self._reader is not None else 0
        if pos >= duration:
            self._playing = False
            self._anchor(duration)
            return duration
        return pos

    def _run(self, reader: EpisodeReader) -> None:
        worker = _Worker(self, reader)
        while not self._stop.is_set():
            # Cleared before the tick, so a request made during it wakes the next one at once.
            self._wake.clear()
            busy = False
            try:
                busy = worker.tick()
            except Exception as exc:  # shown in the snapshot; the player stays usable
                worker.fail(exc)
                self._stop.wait(_IDLE_POLL_S)
            if not busy:
                self._wake.wait(_PLAYING_POLL_S if self._playing else _IDLE_POLL_S)


class _Worker:
    """The worker thread's state: what is on screen now, and the counters."""

    def __init__(self, player: Player, reader: EpisodeReader):
        self.p = player
        self.reader = reader
        counts = {c: reader.frame_count(c) for c in reader.cameras}
        # The camera with the most frames paces stepping (ties: the first by name).
        self.reference = max(reader.cameras, key=lambda c: counts[c], default=None)
        self.frames: dict[str, Frame] = {}
        self.depth: dict[str, Frame] = {}
        self.joints: dict[str, JointSeries] = {}
        self.joints_at: int | None = None
        self.marks: EpisodeMarks | None = None
        self.shown = dict.fromkeys(reader.cameras, 0)
        self.skipped = dict.fromkeys(reader.cameras, 0)
        self.prepared: tuple[int, frozenset[str], int] | None = None
        self.seq = 0
        self.error: str | None = None

    def tick(self) -> bool:
        """Bring the snapshot up to date; True when work is left for the next tick."""
        p = self.p
        with p._lock:
            steps, p._pending_step = p._pending_step, 0
            generation = p._generation
            depth_on = p._depth_on
        if steps and self.reference is not None:
            self._step(steps, generation)
        with p._lock:
            pos = p._position_locked()
            playing = p._playing
            generation = p._generation
        key = (pos, depth_on, generation)
        if key != self.prepared:
            continuous = playing and self.prepared is not None and self.prepared[2] == generation
            self._frames(pos, depth_on, continuous)
            self.prepared = key
            self._publish(pos, playing)
        t = self.reader.start_ns + pos
        if playing:
            self.reader.prefetch(t, t + int(_PREFETCH_NS * p._speed))
        pending = False
        if self.joints_at is None or abs(pos - self.joints_at) >= _JOINT_REFRESH_NS:
            lo, hi = t - JOINT_WINDOW_NS, t + JOINT_WINDOW_NS
            # A chunk at a time, so a seek's new window (~20 chunks) never holds up frames.
            if self.reader.load_joints(lo, hi, max_chunks=1):
                self.joints = self.reader.joints(lo, hi)
                self.joints_at = pos
                self._publish(pos, playing)
            else:
                pending = True
        if self.marks is None and not pending:
            try:
                self.marks = episode_marks(self.reader)
            except EpisodeReadError as exc:  # a damaged event chunk: replay without marks
                self.marks = EpisodeMarks((), ())
                self.error = str(exc)
            self._publish(pos, playing)
        return pending

    def _step(self, steps: int, generation: int) -> None:
        assert self.reference is not None
        r = self.reader
        with self.p._lock:
            origin = r.start_ns + self.p._anchor_pos_ns
        current = r.frame_stamp_at(self.reference, origin)
        target = None if current is None else r.step_stamp(self.reference, current, steps)
        with self.p._lock:
            # A seek that came in meanwhile wins over this step.
            if target is not None and self.p._generation == generation:
                self.p._anchor(self.p._clamp(target - r.start_ns))
                self.p._generation += 1

    def _frames(self, pos: int, depth_on: frozenset[str], continuous: bool) -> None:
        r = self.reader
        t = r.start_ns + pos
        for camera in r.cameras:
            found = r.frame_payload_at(camera, t)
            if found is None:
                continue
            stamp, payload = found
            old = self.frames.get(camera)
            if old is not None and old.stamp_ns == stamp:
                continue
            if continuous and old is not None and 0 < stamp - old.stamp_ns < _SEEK_GAP_NS:
                self.skipped[camera] += r.count_between(camera, old.stamp_ns, stamp)
            self.frames[camera] = r.decode(camera, stamp, payload)
            if continuous:
                self.shown[camera] += 1
        for camera in list(self.depth):
            if camera not in depth_on:
                del self.depth[camera]
        for camera in depth_on & set(r.depth_cameras):
            found = r.frame_payload_at(camera, t, depth=True)
            if found is None:
                continue
            old = self.depth.get(camera)
            if old is None or old.stamp_ns != found[0]:
                self.depth[camera] = r.decode(camera, found[0], found[1], depth=True)

    def fail(self, exc: Exception) -> None:
        """Show a failed read (a damaged chunk) in the snapshot; log each new error once."""
        message = str(exc)
        if message != self.error:
            log.error("replay: %s", message, exc_info=not isinstance(exc, EpisodeReadError))
            self.error = message
            self._publish(self.prepared[0] if self.prepared else 0, False)

    def _publish(self, pos: int, playing: bool) -> None:
        self.seq += 1
        self.p._snapshot = Snapshot(
            seq=self.seq,
            position_ns=pos,
            stamp_ns=self.reader.start_ns + pos,
            frames=dict(self.frames),
            depth=dict(self.depth),
            joints=self.joints,
            joints_position_ns=self.joints_at,
            marks=self.marks,
            playing=playing,
            lag_ns=max(0, self.p.position_ns - pos) if playing else 0,
            shown=dict(self.shown),
            skipped=dict(self.skipped),
            error=self.error,
        )
