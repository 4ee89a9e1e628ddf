"""Quality gates: each gate of the rig's [quality] table flags an episode that fails it."""

from __future__ import annotations

import numpy as np

from rigs.spec import QualityGates
from teleop.recording.quality import EpisodeStats, quality_record

COUNTERS = {"overruns": 0, "bus_retries": 0, "bus_failed_reads": 0, "clamp_hits": 0}


def _stats(
    rate_hz: float, actual_period_ms: float, n: int = 500, moving: bool = True
) -> EpisodeStats:
    st = EpisodeStats(rate_hz)
    t = 1_000_000_000
    for i in range(n):
        leaders = np.full(14, 0.01 * i if moving else 0.3)
        st.add_sample(i, t, int(actual_period_ms * 1e6) if i else 0, leaders)
        if i % 3 == 0:
            st.add_frame("cam", i // 3, t + 1_000_000)
        t += int(actual_period_ms * 1e6)
    return st


def test_clean_episode_has_no_flags():
    q = quality_record(_stats(50, 20.0), camera_fps={"cam": 16.0}, **COUNTERS)
    assert q.flags == []
    assert q.achieved_rate_hz == 50.0 and q.joint_samples_lost == 0
    assert q.cameras is not None and q.cameras["cam"].skew_ms["max"] == 1.0


def test_each_gate_flags_with_its_numbers():
    st = _stats(50, 23.0, moving=False)  # 43.5 Hz, 3 ms period error, leaders still
    st.add_sample(
        600, st.last_start_ns + 200_000_000, 200_000_000
    )  # 100 cycles missing, 200 ms hole
    st.add_frame("cam", 500, st.last_start_ns - 100_000_000, gap_before=5, duplicate=True)
    st.camera("cam").dropped = 2
    q = quality_record(
        st,
        camera_fps={"cam": 16.0},
        overruns=3,
        bus_retries=50,
        bus_failed_reads=1,
        clamp_hits=5000,
    )
    text = "\n".join(q.flags)
    for expected in (
        "rate_low: 4", "jitter_high", "samples_lost: 100", "bus_errors: 1 failed reads", "bus_retries: 50 > 10",
        "idle: leaders still", "clamp_hits: 5000 > 1000", "frames_dropped: cam x2", "frames_missing: cam x5",
        "skew_high: cam",
    ):  # fmt: skip
        assert expected in text, (expected, text)


def test_thresholds_come_from_the_rig():
    st = _stats(50, 20.0)
    st.camera("cam").dropped = 2
    lenient = QualityGates(max_frames_dropped=5)
    assert quality_record(st, gates=lenient, **COUNTERS).flags == []
    assert quality_record(st, **COUNTERS).flags == ["frames_dropped: cam x2"]
