"""The episode file format: one self-contained, indexed ``ros2``-profile MCAP per episode.

Standalone layer: it depends on ``mcap``, ``mcap-ros2-support`` and numpy only (no Qt, no
OpenCV, no device SDKs, nothing from ``rigs``), so any tool can read and write episodes.

* :class:`EpisodeWriter` writes ``<name>.mcap.partial`` and renames it to ``<name>.mcap`` only
  when complete.
* :func:`summarize` describes a finished file from its indexes; :func:`iter_messages` decodes it.
* :mod:`teleop.episode.schemas` holds the embedded ROS 2 message definitions and names.
"""

from teleop.episode.cdr import CdrEncodeError
from teleop.episode.reader import (
    AttachmentInfo,
    EpisodeMessage,
    EpisodeReadError,
    EpisodeSummary,
    TopicSummary,
    iter_messages,
    read_attachment,
    summarize,
)
from teleop.episode.schemas import (
    DEPTH_PNG_FORMAT,
    DIAGNOSTICS_TOPIC,
    EVENTS_TOPIC,
    JPEG_FORMAT,
    DiagnosticLevel,
)
from teleop.episode.writer import (
    EpisodeWriteError,
    EpisodeWriter,
    WriterState,
    WriterStats,
    partial_path_for,
)

__all__ = [
    "DEPTH_PNG_FORMAT",
    "DIAGNOSTICS_TOPIC",
    "EVENTS_TOPIC",
    "JPEG_FORMAT",
    "AttachmentInfo",
    "CdrEncodeError",
    "DiagnosticLevel",
    "EpisodeMessage",
    "EpisodeReadError",
    "EpisodeSummary",
    "EpisodeWriteError",
    "EpisodeWriter",
    "TopicSummary",
    "WriterState",
    "WriterStats",
    "iter_messages",
    "partial_path_for",
    "read_attachment",
    "summarize",
]
