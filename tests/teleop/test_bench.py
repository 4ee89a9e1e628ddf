"""The benchmarks run end to end (their figures are printed, never asserted)."""

from __future__ import annotations

from teleop.cli import main


def test_bench_record_runs_with_uvc_files_and_reports_every_camera(capsys):
    assert main(["bench", "record", "--seconds", "1", "--rates", "50", "--uvc-files"]) == 0
    out = capsys.readouterr().out
    for name, driver in (("overhead", "realsense"), ("low", "realsense"), ("left_wrist", "opencv")):
        assert f"camera {name} ({driver})" in out
    assert "capture stamp vs true exposure" in out and "period error ms" in out
