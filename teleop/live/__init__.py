"""A live Foxglove view of the episode recording now (``teleop record --live``).

The episode writer's tap hands every message it wrote (topic, type, log time, CDR bytes) to
:class:`LivePublisher`, which serves them on a Foxglove WebSocket server with the same topics
and schemas as the file; cameras are throttled to the rig's ``[live] camera_fps``.
"""

from __future__ import annotations

from teleop.live.address import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    LiveAddress,
    LiveViewError,
    parse_live_address,
)
from teleop.live.publisher import LivePublisher, LiveStats
from teleop.live.throttle import CameraThrottle, camera_of

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "CameraThrottle",
    "LiveAddress",
    "LivePublisher",
    "LiveStats",
    "LiveViewError",
    "camera_of",
    "parse_live_address",
]
