"""Camera health as a pure state machine: frame sequences in, verdicts and events out."""

from __future__ import annotations

import numpy as np

from teleop.recording.camera_health import CameraHealth, content_signature

MS = 1_000_000


def feed(health: CameraHealth, frames: list[tuple[int, int]], t0_ms: int = 0, step_ms: int = 33):
    """Feed (frame number, signature) pairs 33 ms apart; return every event."""
    events = []
    for i, (number, signature) in enumerate(frames):
        events += health.frame(number, signature, (t0_ms + i * step_ms) * MS).events
    return events


def test_consecutive_distinct_frames_are_healthy():
    h = CameraHealth(freeze_frames=15)
    assert feed(h, [(n, n) for n in range(100)]) == []
    assert (h.stats.captured, h.stats.frame_gaps, h.stats.duplicates) == (100, 0, 0)
    assert not h.frozen and not h.stopped


def test_a_gap_in_device_numbers_is_counted_and_reported_once_with_its_size():
    h = CameraHealth(freeze_frames=15)
    feed(h, [(0, 0), (1, 1)])
    verdict = h.frame(5, 5, 100 * MS)
    assert verdict.gap_before == 3 and not verdict.duplicate
    (event,) = verdict.events
    assert (event.kind, event.detail, event.at_ns) == (
        "frames_missing", "3 frames missing before #5", 100 * MS,
    )  # fmt: skip
    assert h.frame(6, 6, 133 * MS).events == ()
    assert h.stats.frame_gaps == 3


def test_a_run_of_identical_frames_is_a_freeze_reported_at_its_start_and_end():
    h = CameraHealth(freeze_frames=15)
    frames = [(0, 10)] + [(n, 99) for n in range(1, 22)] + [(22, 11), (23, 12)]
    events = feed(h, frames)
    assert [e.kind for e in events] == ["camera_frozen", "camera_unfrozen"]
    frozen, unfrozen = events
    # frame 1 starts the run; the 15th duplicate after it (frame 16) makes it a freeze
    assert frozen.at_ns == 16 * 33 * MS and frozen.detail == "16 identical frames"
    assert unfrozen.at_ns == 22 * 33 * MS and unfrozen.detail == "after 21 identical frames"
    assert h.stats.duplicates == 20 and h.stats.freezes == 1 and not h.frozen


def test_a_short_run_of_duplicates_is_not_a_freeze():
    h = CameraHealth(freeze_frames=15)
    events = feed(h, [(0, 1), (1, 2), (2, 2), (3, 2), (4, 3)])
    assert events == [] and h.stats.duplicates == 2 and h.stats.freezes == 0


def test_failed_reads_are_one_stop_and_the_next_frame_resumes_it():
    h = CameraHealth(freeze_frames=15)
    feed(h, [(0, 0)])
    (stopped,) = h.read_failed("no frame for 0.5 s", 600 * MS)
    assert (stopped.kind, stopped.detail) == ("camera_stopped", "no frame for 0.5 s")
    assert h.read_failed("no frame for 0.5 s", 1100 * MS) == ()  # still the same stop
    assert h.stopped and h.stats.stalls == 1
    verdict = h.frame(40, 40, 1850 * MS)
    assert [(e.kind, e.detail) for e in verdict.events] == [
        ("camera_resumed", "after 1.25 s"),
        ("frames_missing", "39 frames missing before #40"),
    ]
    assert not h.stopped


def test_the_signature_sees_a_changed_sampled_pixel():
    a = np.zeros((48, 64, 3), np.uint8)
    b = a.copy()
    b[8, 8, 0] = 1  # a sampled pixel
    assert content_signature(a) == content_signature(a.copy())
    assert content_signature(a) != content_signature(b)
