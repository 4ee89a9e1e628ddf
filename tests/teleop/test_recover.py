"""`teleop recover`: a truncated episode becomes a complete, indexed file again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from teleop.cli import main
from teleop.episode.reader import EpisodeReadError, iter_messages, summarize
from teleop.episode.recover import RecoveryError, default_output, recover
from teleop.episode.writer import EpisodeWriter

NAMES = ["a", "b"]
T0 = 1_790_000_000_000_000_000


def _crashed_episode(tmp_path: Path) -> tuple[Path, int]:
    """An episode written for a while, flushed, then abandoned as a crash would leave it."""
    path = tmp_path / "episode_0001.mcap"
    w = EpisodeWriter(path)
    w.add_metadata("provenance", {"operator": "op7"})
    w.add_attachment("rig.toml", "application/toml", b"id = 'x'\n", T0)
    durable = 0
    for i in range(3000):
        t = T0 + i * 10_000_000
        w.write_joint_state("/left_follower/joint_states", t, t, NAMES, np.array([i, -i], float))
        if i % 100 == 99:
            w.flush_to_disk()
            durable = i + 1
    # No finish(): the process died here. Copy what is on disk now, then cut into the tail.
    crashed = tmp_path / "crash" / "episode_0001.mcap.partial"
    crashed.parent.mkdir()
    shutil.copy(w.partial_path, crashed)
    w.abort()
    return crashed, durable


def test_recovered_file_is_complete_and_keeps_provenance(tmp_path: Path):
    crashed, durable = _crashed_episode(tmp_path)
    with open(crashed, "r+b") as f:  # tear the last record, as a power cut would
        f.truncate(crashed.stat().st_size - 7)
    with pytest.raises(EpisodeReadError):
        summarize(crashed)
    report = recover(crashed)
    assert report.output == crashed.with_name("episode_0001.mcap")
    assert report.messages >= durable - 100 and report.messages <= 3000
    s = summarize(report.output)
    assert s.metadata["provenance"] == {"operator": "op7"}
    assert s.metadata["recovery"]["recovered_from"] == crashed.name
    assert s.attachment_names == ["rig.toml"]
    values = [m.message.position[0] for m in iter_messages(report.output)]
    assert values == list(range(len(values)))  # in order, nothing invented
    assert crashed.exists()  # the input is kept as it was


def test_recover_via_cli_and_refuses_to_overwrite(tmp_path: Path, capsys):
    crashed, _ = _crashed_episode(tmp_path)
    assert main(["recover", str(crashed)]) == 0
    assert "recovered" in capsys.readouterr().out
    assert main(["recover", str(crashed)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_not_mcap_is_refused(tmp_path: Path):
    junk = tmp_path / "x.mcap.partial"
    junk.write_bytes(b"hello world, not mcap")
    with pytest.raises(RecoveryError, match="not an MCAP file"):
        recover(junk)


def test_default_output_names():
    assert default_output(Path("/d/episode_0003.mcap.partial")) == Path("/d/episode_0003.mcap")
    assert default_output(Path("/d/episode_0003.mcap")) == Path("/d/episode_0003.recovered.mcap")
