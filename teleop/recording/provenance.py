"""Provenance: who, what, where and with which software and hardware an episode was recorded."""

from __future__ import annotations

import platform
import socket
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

from teleop import __version__

_PACKAGES = (
    "dynamixel-sdk",
    "pyrealsense2",
    "mcap",
    "mcap-ros2-support",
    "numpy",
    "opencv-python-headless",
    "pydantic",
)


@cache
def git_revision() -> str:
    """The checkout's commit (with '+dirty' when modified), or 'unknown' outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@cache
def software() -> dict[str, str]:
    info = {
        "software_version": __version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in _PACKAGES:
        try:
            info[f"pkg_{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[f"pkg_{name}"] = "not installed"
    return info


def host() -> str:
    return socket.gethostname()
