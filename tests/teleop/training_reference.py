"""What a training export should contain, read straight from an episode's MCAP topics.

Kept independent of ``teleop.export.aligned`` on purpose: the export tests compare the
exporters' output with these plain readings, not with the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigs.cameras.codec import decode_jpeg_rgb
from teleop.episode.reader import iter_messages, summarize

ARMS = ("left_follower", "right_follower")


def _stamp(msg: object) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec  # type: ignore[attr-defined]


@dataclass
class Cycles:
    """Follower values per control cycle (k-th message of each topic), arms left then right."""

    stamp_ns: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    command: np.ndarray

    def nearest(self, t_ns: int) -> int:
        return int(np.argmin(np.abs(self.stamp_ns - t_ns)))


def read_cycles(path: Path) -> Cycles:
    per_topic: dict[str, list[object]] = {}
    topics = [f"/{a}/{k}" for a in ARMS for k in ("joint_states", "joint_commands")]
    for m in iter_messages(path, topics):
        per_topic.setdefault(m.topic, []).append(m.message)
    n = min(len(v) for v in per_topic.values())

    def stack(kind: str, field: str) -> np.ndarray:
        return np.array(
            [
                np.concatenate([getattr(per_topic[f"/{a}/{kind}"][i], field) for a in ARMS])
                for i in range(n)
            ]
        )

    return Cycles(
        stamp_ns=np.array([_stamp(m) for m in per_topic[f"/{ARMS[0]}/joint_states"][:n]]),
        position=stack("joint_states", "position"),
        velocity=stack("joint_states", "velocity"),
        effort=stack("joint_states", "effort"),
        command=stack("joint_commands", "position"),
    )


@dataclass
class Frames:
    """One camera's colour frames: capture stamps and JPEG bytes."""

    stamp_ns: np.ndarray
    jpeg: list[bytes]
    half_period_ns: int

    def nearest_rgb(self, t_ns: int) -> np.ndarray:
        return decode_jpeg_rgb(self.jpeg[int(np.argmin(np.abs(self.stamp_ns - t_ns)))])

    def expected_rgb(self, t_ns: int) -> np.ndarray:
        """The frame an export row at ``t_ns`` should show: the nearest if within half a
        frame period, else the newest one captured before ``t_ns`` (else the first)."""
        j = int(np.argmin(np.abs(self.stamp_ns - t_ns)))
        if abs(int(self.stamp_ns[j]) - t_ns) > self.half_period_ns:
            j = max(int(np.searchsorted(self.stamp_ns, t_ns, "left")) - 1, 0)
        return decode_jpeg_rgb(self.jpeg[j])


def read_frames(path: Path, camera: str) -> Frames:
    topic = f"/cameras/{camera}/color/compressed"
    rate_hz = summarize(path).topics[topic].rate_hz
    stamps, data = [], []
    for m in iter_messages(path, [topic]):
        stamps.append(_stamp(m.message))
        data.append(bytes(m.message.data))
    return Frames(np.array(stamps), data, int(0.5e9 / rate_hz))


def changed_fraction(a: np.ndarray, b: np.ndarray, level: int = 40) -> float:
    """Fraction of pixels where some channel differs by more than ``level``: near 0 between
    a frame and its lossy re-encoding, clearly above 0 where the arms moved in between (a
    mean difference hides a moving arm in the encoder's noise over the whole image)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return float(np.mean(diff > level))
