"""Image codecs: JPEG close enough to look at, depth PNG bit-exact."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rigs.cameras.codec import (
    CodecError,
    decode_depth_png,
    decode_jpeg,
    encode_depth_png,
    encode_jpeg,
)
from rigs.spec import load_rig
from rigs.virtual.renderer import Renderer

RIG = load_rig("sim-bimanual").spec
ANGLES = {
    "left_follower": np.array([0.2, 0.35, 0.25, 0.0, 0.8, 0.0, 1.0]),
    "right_follower": np.array([-0.25, 0.4, 0.2, 0.0, 0.7, 0.0, 0.4]),
}


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, np.ndarray]:
    return Renderer(RIG, "low", 640, 480).render(ANGLES, 12, 3_000_000_000)


def test_jpeg_round_trip_is_close(rendered):
    color, _ = rendered
    data = encode_jpeg(color, 85)
    assert data[:2] == b"\xff\xd8"  # JPEG SOI marker
    assert len(data) < color.nbytes / 10
    back = decode_jpeg(data)
    assert back.shape == color.shape and back.dtype == np.uint8
    err = np.abs(back.astype(int) - color.astype(int))
    assert err.mean() < 3.0
    assert np.percentile(err, 99) < 40  # only at hard edges and in the text


def test_jpeg_quality_trades_size(rendered):
    color, _ = rendered
    assert len(encode_jpeg(color, 30)) < len(encode_jpeg(color, 95))


def test_depth_png_round_trip_is_bit_exact(rendered):
    _, depth = rendered
    data = encode_depth_png(depth)
    assert np.array_equal(decode_depth_png(data), depth)


def test_depth_png_keeps_the_full_uint16_range():
    rng = np.random.default_rng(7)
    depth = rng.integers(0, 65536, size=(37, 53), dtype=np.uint16)
    depth[0, 0], depth[0, 1] = 0, 65535
    back = decode_depth_png(encode_depth_png(depth))
    assert back.dtype == np.uint16 and np.array_equal(back, depth)


def test_depth_png_is_a_plain_16_bit_grey_png(rendered):
    _, depth = rendered
    data = encode_depth_png(depth)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR: width, height, bit depth 16, colour type 0 (greyscale).
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    assert (width, height, bit_depth, colour_type) == (640, 480, 16, 0)


def test_non_contiguous_input_is_encoded_as_seen(rendered):
    color, depth = rendered
    crop_c, crop_d = color[10:110, 20:220], depth[::2, ::2]
    assert np.array_equal(decode_depth_png(encode_depth_png(crop_d)), crop_d)
    assert decode_jpeg(encode_jpeg(crop_c, 90)).shape == crop_c.shape


def test_bad_inputs_raise_codec_error(rendered):
    color, depth = rendered
    with pytest.raises(CodecError, match="uint16"):
        encode_depth_png(depth.astype(np.float32))
    with pytest.raises(CodecError, match="uint8"):
        encode_jpeg(depth, 85)
    with pytest.raises(CodecError, match="quality"):
        encode_jpeg(color, 0)
    with pytest.raises(CodecError, match="JPEG"):
        decode_jpeg(b"not an image")
    with pytest.raises(CodecError, match="PNG"):
        decode_depth_png(b"\x89PNG but truncated")
    with pytest.raises(CodecError, match="16-bit"):
        decode_depth_png(encode_jpeg(color, 85))
