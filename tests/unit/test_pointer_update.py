"""Fast-path pointer updates (MS-RDPBCGR 2.2.9.1.2.1.5 - 2.2.9.1.2.1.11)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.fastpath_output import FastPathUpdateCode, FastPathUpdatePdu
from rdscard.pdu.pointer import (
    PointerAttribute,
    encode_pointer_cached,
    encode_pointer_new,
    encode_pointer_position,
)


def test_position_byte_exact() -> None:
    assert encode_pointer_position(0x10, 0x220) == bytes(
        [
            0x00, 0x09,  # fpOutputHeader, length 9
            0x08,  # updateHeader: FASTPATH_UPDATETYPE_PTR_POSITION
            0x04, 0x00,  # size 4
            0x10, 0x00, 0x20, 0x02,  # xPos 0x10, yPos 0x220
        ]
    )  # fmt: skip


def test_cached_byte_exact() -> None:
    assert encode_pointer_cached(5) == bytes(
        [
            0x00, 0x07,
            0x0A,  # FASTPATH_UPDATETYPE_CACHED
            0x02, 0x00,
            0x05, 0x00,  # cacheIndex
        ]
    )  # fmt: skip


def test_new_pointer_byte_exact() -> None:
    # 2x2: top row opaque red and transparent, bottom row half-transparent white and opaque black
    bgra = np.array(
        [[[0, 0, 255, 255], [9, 9, 9, 0]], [[255, 255, 255, 128], [0, 0, 0, 255]]], dtype=np.uint8
    )
    (update,) = FastPathUpdatePdu.decode(encode_pointer_new(3, 1, 0, bgra)).updates
    assert update.update_code == FastPathUpdateCode.FASTPATH_UPDATETYPE_POINTER
    assert update.data == bytes(
        [
            0x20, 0x00,  # xorBpp 32
            0x03, 0x00,  # cacheIndex 3
            0x01, 0x00, 0x00, 0x00,  # hotSpot (1, 0)
            0x02, 0x00, 0x02, 0x00,  # width 2, height 2
            0x04, 0x00,  # lengthAndMask: 2 rows of 2 bytes (1 bit per pixel, padded)
            0x10, 0x00,  # lengthXorMask: 2 rows of 8 bytes
            # xorMaskData, bottom row first, premultiplied BGRA
            0x80, 0x80, 0x80, 0x80, 0x00, 0x00, 0x00, 0xFF,
            0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00,
            # andMaskData, bottom row first: the transparent pixel is set
            0x00, 0x00,
            0x40, 0x00,
            0x00,  # pad
        ]
    )  # fmt: skip
    decoded = PointerAttribute.decode(update.data)
    assert (decoded.cache_index, decoded.hotspot_x, decoded.hotspot_y) == (3, 1, 0)
    assert decoded.and_mask.tolist() == [[False, True], [False, False]]
    assert decoded.xor_bgra[0, 0].tolist() == [0, 0, 255, 255]


def test_large_cursor_is_cropped_around_its_hotspot() -> None:
    bgra = np.zeros((48, 48, 4), dtype=np.uint8)
    bgra[24, 24] = (1, 2, 3, 255)
    (update,) = FastPathUpdatePdu.decode(encode_pointer_new(0, 24, 24, bgra)).updates
    decoded = PointerAttribute.decode(update.data)
    assert decoded.xor_bgra.shape == (32, 32, 4)
    hot = (decoded.hotspot_y, decoded.hotspot_x)
    assert decoded.xor_bgra[hot].tolist() == [1, 2, 3, 255]
    small = encode_pointer_new(0, 40, 2, np.zeros((48, 48, 4), dtype=np.uint8), max_size=96)
    assert PointerAttribute.decode(
        FastPathUpdatePdu.decode(small).updates[0].data
    ).xor_bgra.shape == (
        48,
        48,
        4,
    )


def test_invalid_pointer_arguments() -> None:
    with pytest.raises(ValueError):
        encode_pointer_new(0, 0, 0, np.zeros((0, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        encode_pointer_new(0, 0, 0, np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        encode_pointer_new(0x10000, 0, 0, np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        encode_pointer_position(-1, 0)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 50),
    st.integers(0, 50),
    st.integers(0, 2**32 - 1),
)
def test_new_pointer_round_trip(width: int, height: int, hot_x: int, hot_y: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bgra = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    bgra[..., 3] = rng.choice(np.array([0, 255], dtype=np.uint8), (height, width))
    (update,) = FastPathUpdatePdu.decode(encode_pointer_new(7, hot_x, hot_y, bgra)).updates
    decoded = PointerAttribute.decode(update.data)
    h, w = decoded.xor_bgra.shape[:2]
    assert h <= 32 and w <= 32
    assert 0 <= decoded.hotspot_x < w and 0 <= decoded.hotspot_y < h
    assert (decoded.and_mask == (decoded.xor_bgra[..., 3] == 0)).all()
    if width <= 32 and height <= 32:
        opaque = bgra[..., 3] == 255
        assert (decoded.xor_bgra[opaque] == bgra[opaque]).all()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_pointer_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        PointerAttribute.decode(data)
