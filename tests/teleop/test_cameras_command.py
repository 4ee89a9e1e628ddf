"""`teleop cameras`: lists what is connected and saves a snapshot of each camera."""

from __future__ import annotations

import json

import numpy as np

from rigs.cameras.codec import decode_jpeg
from teleop.cli import main


def test_lists_the_rigs_cameras_and_saves_snapshots(tmp_path, capsys):
    assert main(["cameras", "--rig", "sim-bimanual", "--snapshot", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rig = {r["camera"]: r for r in report["rig"]}
    assert set(rig) == {"overhead", "low", "left_wrist", "right_wrist"}
    assert rig["overhead"]["serial"] == "SIM00000101" and rig["overhead"]["driver"] == "realsense"
    virtual = {d["serial"]: d for d in report["realsense"]}
    assert "640x480@30 z16" in virtual["SIM00000102"]["depth_modes"]
    assert report["uvc"] == []  # no webcams on this machine, and no crash about it
    for name in ("overhead_color.png", "overhead_depth.png", "left_wrist_color.png"):
        image = decode_jpeg((tmp_path / name).read_bytes())  # imdecode reads PNG too
        assert image.shape == (480, 640, 3) and np.ptp(image) > 50  # a real picture, not blank
