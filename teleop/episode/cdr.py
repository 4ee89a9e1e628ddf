"""Hand-written CDR encoders for the few message types an episode records.

Why not ``mcap_ros2``'s dynamic serializer: it walks the parsed definition field by field for
every message and costs about 30 µs per 7-joint JointState on a desktop CPU, while the recorder
writes 1600+ JointStates a second from one Python thread on a 2-core machine it shares with the
control loop. These encoders cost a few µs (see ``bench/episode_write.py``).

Encoding: plain (XCDR1) little-endian CDR as ROS 2 middlewares produce it:

* a 4-byte encapsulation header ``00 01 00 00`` (CDR_LE), not counted for alignment;
* every primitive aligned to its own size (float64 to 8) relative to the end of that header;
* strings as uint32 length *including* the NUL terminator, the UTF-8 bytes, then NUL;
* sequences as a uint32 element count, then the elements. Alignment of the first element is
  applied only when the sequence is not empty (Fast-CDR behaves so, and so do the mcap_ros2
  and rosbags decoders); fixed-size arrays have no count;
* nested messages add no alignment of their own.

Every encoder is tested by decoding its output with both mcap_ros2 and rosbags.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = Sequence[float] | npt.NDArray[np.floating]
Buffer: TypeAlias = bytes | bytearray | memoryview | npt.NDArray[np.uint8]

ENCAPSULATION_CDR_LE = b"\x00\x01\x00\x00"
_NS_PER_S = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_ZEROS = bytes(8)
_u32 = struct.Struct("<I").pack
_stamp = struct.Struct("<iI").pack
_two_u32 = struct.Struct("<II").pack
_roi_and_binning = struct.Struct("<IIIIIIB").pack


class CdrEncodeError(ValueError):
    """A value cannot be represented in the message (wrong size, out of range)."""


def split_stamp(stamp_ns: int) -> tuple[int, int]:
    """Split UTC nanoseconds into ROS ``builtin_interfaces/Time`` (sec int32, nanosec uint32)."""
    sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise CdrEncodeError(f"stamp {stamp_ns} ns does not fit builtin_interfaces/Time")
    return sec, nanosec


def _pad(buf: bytearray, size: int) -> None:
    # Offsets count from the end of the 4-byte encapsulation header.
    rem = (len(buf) - 4) % size
    if rem:
        buf += _ZEROS[: size - rem]


def _put_string(buf: bytearray, value: str) -> None:
    try:
        data = value.encode("utf-8")
    except AttributeError:
        raise CdrEncodeError(f"expected a str, got {type(value).__name__}: {value!r}") from None
    _pad(buf, 4)
    buf += _u32(len(data) + 1)
    buf += data
    buf += b"\x00"


def _f64_bytes(values: FloatArray, what: str) -> tuple[int, bytes]:
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise CdrEncodeError(f"{what} must be one-dimensional, got shape {values.shape}")
        return values.shape[0], values.astype("<f8", copy=False).tobytes()
    n = len(values)
    try:
        return n, struct.pack(f"<{n}d", *values)
    except struct.error as exc:
        raise CdrEncodeError(f"{what} must be numbers: {exc}") from None


def _put_f64_sequence(buf: bytearray, values: FloatArray | None, what: str) -> int:
    if values is None:
        values = ()
    n, data = _f64_bytes(values, what)
    _pad(buf, 4)
    buf += _u32(n)
    if n:
        _pad(buf, 8)
        buf += data
    return n


def _put_f64_array(buf: bytearray, values: FloatArray, size: int, what: str) -> None:
    if isinstance(values, np.ndarray) and values.ndim != 1:
        values = values.reshape(-1)
    n, data = _f64_bytes(values, what)
    if n != size:
        raise CdrEncodeError(f"{what} needs exactly {size} values, got {n}")
    _pad(buf, 8)
    buf += data


def _start(stamp_ns: int, frame_id: str) -> bytearray:
    sec, nanosec = split_stamp(stamp_ns)
    buf = bytearray(ENCAPSULATION_CDR_LE)
    buf += _stamp(sec, nanosec)
    _put_string(buf, frame_id)
    return buf


@lru_cache(maxsize=256)
def _joint_state_prefix(frame_id: str, names: tuple[str, ...]) -> bytes:
    # Everything after the stamp up to the end of `name[]` is the same for every message of
    # one topic, so it is built once. Its bytes do not depend on where it lands: it starts
    # right after the 8-byte stamp (4-aligned) and contains only 4-aligned items.
    buf = bytearray(ENCAPSULATION_CDR_LE)
    buf += _ZEROS
    _put_string(buf, frame_id)
    _pad(buf, 4)
    buf += _u32(len(names))
    for name in names:
        _put_string(buf, name)
    return bytes(buf[12:])


def encode_joint_state(
    stamp_ns: int,
    frame_id: str,
    names: Sequence[str],
    position: FloatArray | None,
    velocity: FloatArray | None = None,
    effort: FloatArray | None = None,
) -> bytearray:
    """Encode ``sensor_msgs/msg/JointState``.

    As in ROS, each of ``position``, ``velocity``, ``effort`` is either empty (or None) or as
    long as ``names``.
    """
    sec, nanosec = split_stamp(stamp_ns)
    buf = bytearray(ENCAPSULATION_CDR_LE)
    buf += _stamp(sec, nanosec)
    buf += _joint_state_prefix(frame_id, tuple(names))
    n_names = len(names)
    for values, what in ((position, "position"), (velocity, "velocity"), (effort, "effort")):
        n = _put_f64_sequence(buf, values, what)
        if n and n != n_names:
            raise CdrEncodeError(f"JointState {what} has {n} values for {n_names} names")
    return buf


def encode_compressed_image(stamp_ns: int, frame_id: str, fmt: str, data: Buffer) -> bytes:
    """Encode ``sensor_msgs/msg/CompressedImage``; ``data`` is copied exactly once.

    ``data`` is any contiguous bytes-like object (bytes, or cv2.imencode's uint8 array).
    """
    view = memoryview(data)  # type: ignore[arg-type]  # numpy arrays export the buffer protocol
    buf = _start(stamp_ns, frame_id)
    _put_string(buf, fmt)
    _pad(buf, 4)
    buf += _u32(view.nbytes)
    return b"".join((buf, view))


def encode_camera_info(
    stamp_ns: int,
    frame_id: str,
    width: int,
    height: int,
    k: FloatArray | Sequence[Sequence[float]],
    d: FloatArray,
    distortion_model: str,
    p: FloatArray | Sequence[Sequence[float]],
    r: FloatArray | Sequence[Sequence[float]],
) -> bytearray:
    """Encode ``sensor_msgs/msg/CameraInfo`` (binning 0 and an all-zero ROI: full image).

    ``k`` and ``r`` take 9 values (row-major 3x3, nested or flat), ``p`` 12 (3x4).
    """
    buf = _start(stamp_ns, frame_id)
    _pad(buf, 4)
    buf += _two_u32(height, width)
    _put_string(buf, distortion_model)
    _put_f64_sequence(buf, d, "d")
    _put_f64_array(buf, flatten_matrix(k), 9, "k")
    _put_f64_array(buf, flatten_matrix(r), 9, "r")
    _put_f64_array(buf, flatten_matrix(p), 12, "p")
    _pad(buf, 4)
    # binning_x, binning_y, roi.x_offset, roi.y_offset, roi.height, roi.width, roi.do_rectify
    buf += _roi_and_binning(0, 0, 0, 0, 0, 0, 0)
    return buf


def flatten_matrix(values: FloatArray | Sequence[Sequence[float]]) -> FloatArray:
    """Row-major flat values of a matrix given nested, flat, or as a numpy array."""
    if isinstance(values, np.ndarray):
        return values.reshape(-1)
    if values and isinstance(values[0], Iterable):
        return [float(x) for row in values for x in row]  # type: ignore[union-attr]
    return values  # type: ignore[return-value]


class DiagnosticStatus(NamedTuple):
    """One ``diagnostic_msgs/msg/DiagnosticStatus``: level 0 OK, 1 WARN, 2 ERROR, 3 STALE."""

    level: int
    name: str
    message: str
    hardware_id: str
    values: Mapping[str, str]


def encode_diagnostic_array(
    stamp_ns: int, frame_id: str, statuses: Iterable[DiagnosticStatus]
) -> bytearray:
    """Encode ``diagnostic_msgs/msg/DiagnosticArray``.

    Each status is ``(level, name, message, hardware_id, values)`` with ``level`` one of
    0 OK, 1 WARN, 2 ERROR, 3 STALE and ``values`` a str→str mapping.
    """
    statuses = list(statuses)
    buf = _start(stamp_ns, frame_id)
    _pad(buf, 4)
    buf += _u32(len(statuses))
    for level, name, message, hardware_id, values in statuses:
        if not 0 <= int(level) <= 255:
            raise CdrEncodeError(f"diagnostic level {level} of {name!r} is not a byte")
        buf.append(int(level))
        _put_string(buf, name)
        _put_string(buf, message)
        _put_string(buf, hardware_id)
        _pad(buf, 4)
        buf += _u32(len(values))
        for key, value in values.items():
            _put_string(buf, key)
            _put_string(buf, value)
    return buf


def encode_episode_event(stamp_ns: int, frame_id: str, kind: str, detail: str) -> bytearray:
    """Encode ``teleop_msgs/msg/EpisodeEvent`` (header, kind, detail)."""
    buf = _start(stamp_ns, frame_id)
    _put_string(buf, kind)
    _put_string(buf, detail)
    return buf
