"""Episode replay without Qt: lazy indexed reading (reader), timeline marks, and the Player."""

from teleop.playback.marks import EpisodeMarks, Mark, episode_marks
from teleop.playback.player import SPEEDS, Player, Snapshot
from teleop.playback.reader import EpisodeEvent, EpisodeReader, Frame, JointSeries

__all__ = [
    "SPEEDS",
    "EpisodeEvent",
    "EpisodeMarks",
    "EpisodeReader",
    "Frame",
    "JointSeries",
    "Mark",
    "Player",
    "Snapshot",
    "episode_marks",
]
