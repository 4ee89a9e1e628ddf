"""ROS 2 message definitions embedded in every episode file, and the file's naming constants.

Each MCAP Schema record carries a *complete* message definition in ``ros2msg`` form, as
rosbag2 writes it: the type's own ``.msg`` text first, then every type it depends on
(recursively), each introduced by a line of 80 ``=`` and a ``MSG: pkg/Name`` line. The name
after ``MSG:`` is spelled exactly as the field lines spell the type (``std_msgs/Header``, not
``std_msgs/msg/Header``): Foxglove's parser looks dependency blocks up by that spelling and
rejects a file whose blocks are named otherwise, while ``mcap_ros2`` and ``rosbags`` accept
both. With that text embedded, Foxglove, ``mcap_ros2`` and ``rosbags`` decode the file without
any ROS installation or extra package. Files written before this rule (``MSG: pkg/msg/Name``
blocks) are found by :func:`legacy_definition` and rewritten by ``teleop repair``.

The field lists below follow ROS 2's ``common_interfaces`` (Humble and later) field for field;
names, types and order must not change, or standard readers decode garbage.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Final

PROFILE: Final = "ros2"
SCHEMA_ENCODING: Final = "ros2msg"
MESSAGE_ENCODING: Final = "cdr"

# Message type names (the MCAP Schema name and what rosbags calls the msgtype).
TIME: Final = "builtin_interfaces/msg/Time"
HEADER: Final = "std_msgs/msg/Header"
JOINT_STATE: Final = "sensor_msgs/msg/JointState"
COMPRESSED_IMAGE: Final = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO: Final = "sensor_msgs/msg/CameraInfo"
REGION_OF_INTEREST: Final = "sensor_msgs/msg/RegionOfInterest"
DIAGNOSTIC_ARRAY: Final = "diagnostic_msgs/msg/DiagnosticArray"
DIAGNOSTIC_STATUS: Final = "diagnostic_msgs/msg/DiagnosticStatus"
KEY_VALUE: Final = "diagnostic_msgs/msg/KeyValue"
# Our own type for /episode/events. Both mcap_ros2's decoder and rosbags' AnyReader build
# their decoders from the schema text embedded in the file, so a custom type needs no
# package on the reading side (tests/teleop/test_episode_writer.py checks both).
EPISODE_EVENT: Final = "teleop_msgs/msg/EpisodeEvent"

# Well-known topics owned by this layer.
EVENTS_TOPIC: Final = "/episode/events"
DIAGNOSTICS_TOPIC: Final = "/diagnostics"

# CompressedImage.format values.
# Colour: plain "jpeg" is what Foxglove documents and what compressed_image_transport's
# subscriber falls back to (bgr8 / mono8 jpeg) when the field has no "; " part.
JPEG_FORMAT: Final = "jpeg"
# Depth: lossless 16-bit single-channel PNG, named the way compressed_image_transport names
# it ("<ORIG_PIXFMT>; <codec> compressed", no trailing pixel format for mono images), so ROS
# tools know the decoded image is 16UC1. It is *not* "compressedDepth": that transport puts a
# 12-byte header before the PNG, which generic decoders (Foxglove, cv2.imdecode) cannot read.
# Readers must decode with cv2.IMREAD_UNCHANGED to keep 16 bits.
DEPTH_PNG_FORMAT: Final = "16UC1; png compressed"


# header.frame_id, following REP 103/105 naming as ROS drivers do, so Foxglove's panels (and
# a TF tree added later) place each stream: a camera's images in its optical frame, an arm's
# joint states in its base frame. Diagnostics and events are not spatial; they carry the rig id.
def color_frame(camera: str) -> str:
    """Frame of a camera's colour image and camera_info: ``<camera>_color_optical_frame``."""
    return f"{camera}_color_optical_frame"


def depth_frame(camera: str) -> str:
    """Frame of a camera's depth image: ``<camera>_depth_optical_frame``."""
    return f"{camera}_depth_optical_frame"


def arm_frame(arm: str) -> str:
    """Frame of an arm's joint states, targets and commands: ``<arm>_base_link``."""
    return f"{arm}_base_link"


class DiagnosticLevel(IntEnum):
    """``diagnostic_msgs/msg/DiagnosticStatus`` level byte."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


_SEPARATOR: Final = "=" * 80

# Each type's own definition and the types it references directly. Dependencies are listed
# here rather than parsed out of the text so the dependency order is deterministic.
_OWN: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    TIME: ("int32 sec\nuint32 nanosec\n", ()),
    HEADER: ("builtin_interfaces/Time stamp\nstring frame_id\n", (TIME,)),
    JOINT_STATE: (
        "std_msgs/Header header\n"
        "string[] name\n"
        "float64[] position\n"
        "float64[] velocity\n"
        "float64[] effort\n",
        (HEADER,),
    ),
    COMPRESSED_IMAGE: (
        "std_msgs/Header header\nstring format\nuint8[] data\n",
        (HEADER,),
    ),
    REGION_OF_INTEREST: (
        "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n",
        (),
    ),
    CAMERA_INFO: (
        "std_msgs/Header header\n"
        "uint32 height\n"
        "uint32 width\n"
        "string distortion_model\n"
        "float64[] d\n"
        "float64[9] k\n"
        "float64[9] r\n"
        "float64[12] p\n"
        "uint32 binning_x\n"
        "uint32 binning_y\n"
        "sensor_msgs/RegionOfInterest roi\n",
        (HEADER, REGION_OF_INTEREST),
    ),
    KEY_VALUE: ("string key\nstring value\n", ()),
    DIAGNOSTIC_STATUS: (
        "byte OK=0\n"
        "byte WARN=1\n"
        "byte ERROR=2\n"
        "byte STALE=3\n"
        "byte level\n"
        "string name\n"
        "string message\n"
        "string hardware_id\n"
        "diagnostic_msgs/KeyValue[] values\n",
        (KEY_VALUE,),
    ),
    DIAGNOSTIC_ARRAY: (
        "std_msgs/Header header\ndiagnostic_msgs/DiagnosticStatus[] status\n",
        (HEADER, DIAGNOSTIC_STATUS),
    ),
    EPISODE_EVENT: (
        "# An episode lifecycle event: start, stop, keep, discard, mark, fault, ...\n"
        "std_msgs/Header header\n"
        "# What happened (a short lowercase word).\n"
        "string kind\n"
        "# Free text or JSON with details; may be empty.\n"
        "string detail\n",
        (HEADER,),
    ),
}


def _dependencies(type_name: str) -> list[str]:
    """All types ``type_name`` needs, depth first, each once, excluding itself."""
    seen: list[str] = []

    def visit(name: str) -> None:
        for dep in _OWN[name][1]:
            if dep not in seen:
                seen.append(dep)
                visit(dep)

    visit(type_name)
    return seen


def field_type_name(type_name: str) -> str:
    """How a field line spells a type: ``std_msgs/msg/Header`` -> ``std_msgs/Header``."""
    return type_name.replace("/msg/", "/", 1)


def _complete_definition(type_name: str) -> str:
    parts = [_OWN[type_name][0]]
    for dep in _dependencies(type_name):
        parts.append(f"{_SEPARATOR}\nMSG: {field_type_name(dep)}\n{_OWN[dep][0]}")
    return "".join(parts)


_LEGACY_BLOCK = re.compile(r"^MSG: ([A-Za-z0-9_]+)/msg/([A-Za-z0-9_]+)\s*$", re.MULTILINE)


def legacy_definition(text: str) -> bool:
    """Whether a ``ros2msg`` definition names its dependency blocks ``MSG: pkg/msg/Name``
    (what teleop 0.1 wrote), a form Foxglove cannot parse."""
    return _LEGACY_BLOCK.search(text) is not None


def repaired_definition(text: str) -> str:
    """``text`` with each ``MSG: pkg/msg/Name`` block renamed ``MSG: pkg/Name``, to match the
    field lines. Nothing else changes, so the messages' CDR bytes decode the same."""
    return _LEGACY_BLOCK.sub(r"MSG: \1/\2", text)


#: Complete ``ros2msg`` definitions of the message types the writer can record.
MESSAGE_DEFINITIONS: Final[dict[str, str]] = {
    name: _complete_definition(name)
    for name in (JOINT_STATE, COMPRESSED_IMAGE, CAMERA_INFO, DIAGNOSTIC_ARRAY, EPISODE_EVENT)
}


def message_definition(type_name: str) -> str:
    """Return the complete ``ros2msg`` definition of ``type_name`` (e.g. ``JOINT_STATE``).

    Raises:
        KeyError: ``type_name`` is not one of the recorded types.
    """
    try:
        return MESSAGE_DEFINITIONS[type_name]
    except KeyError:
        known = ", ".join(sorted(MESSAGE_DEFINITIONS))
        raise KeyError(f"no message definition for {type_name!r}; known: {known}") from None
