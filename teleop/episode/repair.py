"""``teleop repair``: a copy of an episode whose message definitions every ROS tool parses.

Episodes written by teleop 0.1 name the dependency blocks of their ``ros2msg`` schemas
``MSG: std_msgs/msg/Header`` while the field lines say ``std_msgs/Header``. ``mcap_ros2`` and
``rosbags`` accept that; Foxglove does not, and decodes nothing. A repair writes a copy next
to the file (``episode_0001.repaired.mcap``) with the blocks renamed to match the field lines
and everything else the same: every message with its bytes, log and publish times and
sequence numbers, every metadata record and attachment, plus a ``repair`` metadata record.
The original is never modified; the session manifest then lists the copy in its place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mcap.stream_reader import StreamReader

from teleop import __version__
from teleop.episode.reader import _DAMAGE, EpisodeReadError, summarize
from teleop.episode.rewrite import EpisodeCopier, new_episode_file
from teleop.episode.schemas import SCHEMA_ENCODING, legacy_definition, repaired_definition
from teleop.errors import TeleopError

REPAIRED_SUFFIX = ".repaired.mcap"


class RepairError(TeleopError):
    """The file cannot be repaired (damaged, truncated, or the output already exists)."""


@dataclass(frozen=True)
class RepairReport:
    source: Path
    output: Path | None
    """The corrected copy; None when the file needed no repair."""
    messages: int
    schemas_changed: int


def needs_repair(path: Path) -> bool:
    """Whether an episode's definitions are in the old form (from its summary; no chunk read).

    Raises:
        EpisodeReadError: the file is not a complete, readable episode.
    """
    return bool(summarize(path).legacy_schemas)


def default_output(source: Path) -> Path:
    """``episode_0001.mcap`` → ``episode_0001.repaired.mcap``."""
    return source.with_name(source.name.removesuffix(".mcap") + REPAIRED_SUFFIX)


def _fixed(_name: str, encoding: str, data: bytes) -> bytes:
    if encoding != SCHEMA_ENCODING:
        return data
    text = data.decode("utf-8")
    return repaired_definition(text).encode("utf-8") if legacy_definition(text) else data


def repair(source: Path, output: Path | None = None) -> RepairReport:
    """Write a corrected copy of ``source`` (default name: :func:`default_output`).

    A file already in the current form is left alone and nothing is written.

    Raises:
        RepairError: ``source`` is damaged or truncated (recover it first), or ``output``
            exists.
    """
    source = Path(source)
    try:
        if not needs_repair(source):
            return RepairReport(source, None, 0, 0)
    except EpisodeReadError as exc:
        raise RepairError(
            f"{exc}; a damaged or unfinished file needs `teleop recover` first"
        ) from exc
    output = Path(output) if output is not None else default_output(source)
    if output.exists():
        raise RepairError(f"{output} already exists; pass another output path or move it aside")
    with open(source, "rb") as f, new_episode_file(output) as out:
        copy = EpisodeCopier(out, f"repaired by teleop {__version__}", _fixed)
        try:
            for rec in StreamReader(f, record_size_limit=1 << 30, validate_crcs=True).records:
                copy.add(rec)
        except _DAMAGE as exc:  # a flipped bit fails the CRC or the zstd decompression
            raise RepairError(
                f"{source}: damaged ({type(exc).__name__}: {exc}); nothing written. "
                f"Run `teleop recover {source}` to keep what is readable"
            ) from exc
        copy.finish(
            "repair",
            {
                "repaired_from": source.name,
                "repaired_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "software_version": __version__,
                "what": "ros2msg dependency blocks renamed to match their field types",
                "schemas_changed": str(copy.schemas_changed),
                "messages": str(copy.messages),
            },
        )
    return RepairReport(source, output, copy.messages, copy.schemas_changed)
