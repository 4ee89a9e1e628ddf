"""Image encoding for recording and replay: JPEG for colour, lossless 16-bit PNG for depth.

Lives in ``rigs`` because only this layer may import cv2. cv2.imencode/imdecode release the
GIL, so capture threads can encode while the control loop runs.

Depth is a single-channel 16-bit PNG holding millimetres (0 = no return): the PNG payload
that ROS ``compressedDepth`` consumers decode for 16UC1 images, and that Foxglove and any
PNG reader open directly.
"""

from __future__ import annotations

import cv2
import numpy as np

from rigs.errors import UserError

# zlib level 1 with the SUB row filter: depth is smooth along rows, so SUB makes it mostly
# small repeated differences. Measured on rendered 640x480 depth: 1.2-1.9 ms and 5-15 kB;
# leaving the filter to zlib's default choice (or no filter) was 2-3x slower.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


class CodecError(UserError, ValueError):
    """Bytes that are not a decodable image, or an array that cannot be encoded."""


def encode_jpeg(bgr: np.ndarray, quality: int = 85) -> bytes:
    """Encode an H×W×3 uint8 BGR image as JPEG at ``quality`` (1–100)."""
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise CodecError(f"encode_jpeg needs an H×W×3 uint8 BGR image, got {bgr.dtype} {bgr.shape}")
    if not 1 <= quality <= 100:
        raise CodecError(f"JPEG quality must be 1..100, got {quality}")
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CodecError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes | memoryview) -> np.ndarray:
    """Decode JPEG bytes to an H×W×3 uint8 BGR image."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise CodecError(f"not a decodable JPEG image ({len(data)} bytes)")
    return img


def decode_jpeg_rgb(data: bytes | memoryview) -> np.ndarray:
    """Decode JPEG bytes to an H×W×3 uint8 RGB image (for exports: video and HDF5 are RGB).

    The decoder writes RGB directly; reversing channels afterwards costs more than decoding.
    """
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if img is None:
        raise CodecError(f"not a decodable JPEG image ({len(data)} bytes)")
    return img


def encode_depth_png(depth_u16: np.ndarray) -> bytes:
    """Encode an H×W uint16 depth image (mm) as a lossless 16-bit grey PNG."""
    if depth_u16.dtype != np.uint16 or depth_u16.ndim != 2:
        raise CodecError(
            f"encode_depth_png needs an H×W uint16 image, got {depth_u16.dtype} {depth_u16.shape}"
        )
    ok, buf = cv2.imencode(".png", depth_u16, _PNG_PARAMS)
    if not ok:
        raise CodecError("PNG encoding failed")
    return buf.tobytes()


def decode_depth_png(data: bytes | memoryview) -> np.ndarray:
    """Decode a 16-bit grey PNG to an H×W uint16 array, bit-exact."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CodecError(f"not a decodable PNG image ({len(data)} bytes)")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise CodecError(f"PNG is not 16-bit single-channel depth (got {img.dtype} {img.shape})")
    return img


def encode_png(bgr: np.ndarray) -> bytes:
    """Lossless PNG of a colour image (snapshots for people to look at)."""
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise CodecError("PNG encoding failed")
    return buf.tobytes()


def depth_preview(depth_u16: np.ndarray, max_mm: int = 2000) -> np.ndarray:
    """A false-colour BGR picture of a depth image (near = warm), for snapshots and previews."""
    scaled = np.clip(depth_u16.astype(np.float32) * (255.0 / max_mm), 0, 255).astype(np.uint8)
    out = cv2.applyColorMap(255 - scaled, cv2.COLORMAP_JET)
    out[depth_u16 == 0] = 0
    return out
