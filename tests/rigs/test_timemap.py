"""Device-clock mapping: the capture estimate lands near the true capture time."""

from __future__ import annotations

import numpy as np

from rigs.cameras.timemap import DeviceClockMapper


def _simulate(drift_ppm: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    capture = 5_000_000_000 + np.arange(900) * 33_333_333  # 30 s at 30 fps, host clock
    device = ((capture - capture[0]) * (1 + drift_ppm * 1e-6)).astype(np.int64) + 123_456_789_000
    delay = (2_000_000 + rng.exponential(1_500_000, capture.size)).astype(np.int64)  # >= 2 ms
    mapper = DeviceClockMapper()
    est = np.array(
        [mapper.observe(int(d), int(c + x)) for d, c, x in zip(device, capture, delay, strict=True)]
    )
    return est - capture, delay


def test_estimate_is_close_to_capture_and_never_after_receipt():
    err, delay = _simulate(0.0)
    settled = err[60:]
    # Off by roughly the smallest transport delay (2 ms), not by the jittery average (3.5 ms).
    assert np.all(np.abs(settled - 2_000_000) < 600_000)
    assert np.all(err <= delay)


def test_follows_a_device_clock_that_runs_fast_or_slow():
    for ppm in (-100.0, 100.0):
        err, _ = _simulate(ppm, seed=1)
        assert np.abs(err[300:] - 2_000_000).max() < 1_500_000, ppm
