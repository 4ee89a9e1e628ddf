"""Video files of the virtual rig's views, for exercising the UVC/OpenCV driver on files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rigs.spec import RigSpec
from rigs.virtual.renderer import Renderer


def write_view_video(rig: RigSpec, view: str, path: Path, *, width: int = 640, height: int = 480,
                     fps: int = 30, seconds: float = 4.0) -> Path:  # fmt: skip
    """An MJPG .avi of ``view`` while the followers sweep slowly (a stand-in webcam stream)."""
    renderer = Renderer(rig, view, width, height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    try:
        n = int(seconds * fps)
        for i in range(n):
            phase = 2 * np.pi * i / n
            angles = {
                f.name: np.array(
                    [
                        0.3 * np.sin(phase),
                        0.2,
                        0.3,
                        0.0,
                        0.6 + 0.2 * np.cos(phase),
                        0.0,
                        0.4 + 0.4 * np.sin(2 * phase),
                    ]
                )  # fmt: skip
                for f in rig.followers
            }
            color, _ = renderer.render(angles, i, int(i * 1e9 / fps))
            writer.write(color)
    finally:
        writer.release()
    return path
