"""Fast-path pointer updates (MS-RDPBCGR 2.2.9.1.2.1.5 - 2.2.9.1.2.1.11).

Position (FASTPATH_UPDATETYPE_PTR_POSITION, TS_POINTERPOSATTRIBUTE), cached
(FASTPATH_UPDATETYPE_CACHED, TS_CACHEDPOINTERATTRIBUTE) and new pointer
(FASTPATH_UPDATETYPE_POINTER, TS_FP_POINTERATTRIBUTE: xorBpp then a
TS_COLORPOINTERATTRIBUTE, 2.2.9.1.1.4.4). The hidden and default pointers
are :func:`rdscard.pdu.fastpath_output.pointer_null_update` and
``pointer_default_update``.

A new pointer is sent at 32 bpp: the XOR mask holds BGRA pixels, the AND
mask one bit per pixel (set where the pointer is transparent); both are
stored bottom-up with rows padded to 2 bytes. Without the Large Pointer
capability a pointer is at most 32 x 32 (clients drop larger ones), so a
larger X cursor is cropped around its hotspot. The alpha channel goes out
premultiplied: FreeRDP hands the pixels to Xcursor, which expects that,
and for other clients premultiplied pixels are at worst a touch darker at
soft edges.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Self

import numpy as np
import numpy.typing as npt

from rdscard.pdu.buffer import Reader
from rdscard.pdu.fastpath_output import FastPathUpdate, FastPathUpdateCode, encode_fastpath_pdu

PDU = "TS_FP_POINTERATTRIBUTE"

#: Largest pointer side without the Large Pointer capability (2.2.9.1.1.4.4).
MAX_POINTER_SIZE: Final = 32
#: With LARGE_POINTER_FLAG_96x96 (2.2.7.2.7).
MAX_LARGE_POINTER_SIZE: Final = 96
_COLOR_POINTER: Final = struct.Struct("<8H")

U8Array = npt.NDArray[np.uint8]


def _u16(value: int, name: str) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} {value} is not a 16-bit value")
    return value


def encode_pointer_position(x: int, y: int) -> bytes:
    """Move the pointer to desktop (x, y): a complete PDU (2.2.9.1.2.1.6)."""
    data = struct.pack("<HH", _u16(x, "x"), _u16(y, "y"))
    return encode_fastpath_pdu(
        FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_PTR_POSITION, data)
    )


def encode_pointer_cached(cache_index: int) -> bytes:
    """Show the pointer in cache slot ``cache_index``: a complete PDU (2.2.9.1.2.1.11)."""
    data = struct.pack("<H", _u16(cache_index, "cache_index"))
    return encode_fastpath_pdu(FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_CACHED, data))


def _crop(pixels: U8Array, hot_x: int, hot_y: int, limit: int) -> tuple[U8Array, int, int]:
    """At most ``limit`` x ``limit`` pixels, keeping the hotspot inside."""
    height, width = pixels.shape[:2]
    left = 0 if hot_x < limit else min(hot_x - limit // 2, width - limit)
    top = 0 if hot_y < limit else min(hot_y - limit // 2, height - limit)
    left, top = max(left, 0), max(top, 0)
    cropped = pixels[top : top + limit, left : left + limit]
    return cropped, hot_x - left, hot_y - top


def encode_pointer_new(
    cache_index: int,
    hotspot_x: int,
    hotspot_y: int,
    bgra: U8Array,
    *,
    max_size: int = MAX_POINTER_SIZE,
) -> bytes:
    """A 32 bpp New Pointer Update that also fills cache slot ``cache_index`` (2.2.9.1.2.1.10).

    ``bgra`` is ``(height, width, 4)`` uint8, straight (not premultiplied)
    alpha, as XFIXES GetCursorImage's ARGB words are in memory on a
    little-endian host. ``max_size`` is 96 only when the client announced
    LARGE_POINTER_FLAG_96x96 and the server echoed the Large Pointer
    capability set. The hotspot is clamped into the (cropped) image.
    """
    if bgra.dtype != np.uint8 or bgra.ndim != 3 or bgra.shape[2] != 4:
        raise ValueError("pointer pixels must be a (height, width, 4) uint8 BGRA array")
    if bgra.shape[0] == 0 or bgra.shape[1] == 0:
        raise ValueError("an empty pointer: send pointer_null_update() instead")
    if not 1 <= max_size <= MAX_LARGE_POINTER_SIZE:
        raise ValueError(f"max_size must be 1..{MAX_LARGE_POINTER_SIZE}")
    pixels, hot_x, hot_y = _crop(bgra, max(hotspot_x, 0), max(hotspot_y, 0), max_size)
    height, width = pixels.shape[:2]
    hot_x, hot_y = min(hot_x, width - 1), min(hot_y, height - 1)

    alpha = pixels[..., 3:4].astype(np.uint16)
    xor = pixels.copy()
    xor[..., :3] = (pixels[..., :3].astype(np.uint16) * alpha + 127) // 255
    xor_mask = np.ascontiguousarray(xor[::-1]).tobytes()  # rows of 4*width bytes: even

    transparent = pixels[::-1, :, 3] == 0
    and_stride = ((width + 7) // 8 + 1) & ~1
    and_rows = np.packbits(transparent, axis=1)
    and_mask = np.zeros((height, and_stride), dtype=np.uint8)
    and_mask[:, : and_rows.shape[1]] = and_rows
    fields = _COLOR_POINTER.pack(
        32,
        _u16(cache_index, "cache_index"),
        hot_x,
        hot_y,
        width,
        height,
        and_mask.size,
        len(xor_mask),
    )
    data = fields + xor_mask + and_mask.tobytes() + b"\x00"
    return encode_fastpath_pdu(FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_POINTER, data))


@dataclass(frozen=True)
class PointerAttribute:
    """A decoded TS_FP_POINTERATTRIBUTE at 32 bpp: pixels top row first, BGRA."""

    cache_index: int
    hotspot_x: int
    hotspot_y: int
    xor_bgra: U8Array
    and_mask: npt.NDArray[np.bool_]

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Read the updateData of a FASTPATH_UPDATETYPE_POINTER update (32 bpp only)."""
        r = Reader(data, PDU)
        bpp = r.u16le("xorBpp")
        if bpp != 32:
            raise r.error("xorBpp", f"{bpp} bpp pointers are not supported")
        index, hot_x, hot_y = (
            r.u16le("cacheIndex"),
            r.u16le("hotSpot.xPos"),
            r.u16le("hotSpot.yPos"),
        )
        width, height = r.u16le("width"), r.u16le("height")
        and_length, xor_length = r.u16le("lengthAndMask"), r.u16le("lengthXorMask")
        if not (0 < width <= MAX_LARGE_POINTER_SIZE and 0 < height <= MAX_LARGE_POINTER_SIZE):
            raise r.error("width", f"pointer size {width}x{height} is out of range")
        if xor_length != width * 4 * height:
            raise r.error("lengthXorMask", f"{xor_length} bytes for {width}x{height} at 32 bpp")
        and_stride = ((width + 7) // 8 + 1) & ~1
        if and_length != and_stride * height:
            raise r.error("lengthAndMask", f"{and_length} bytes for a {width}x{height} mask")
        xor = np.frombuffer(r.raw(xor_length, "xorMaskData"), dtype=np.uint8)
        masks = np.frombuffer(r.raw(and_length, "andMaskData"), dtype=np.uint8)
        if r.remaining:
            r.skip(1, "pad")
        r.expect_end()
        bits = np.unpackbits(masks.reshape(height, and_stride), axis=1)[:, :width].astype(np.bool_)
        return cls(
            index, hot_x, hot_y, xor.reshape(height, width, 4)[::-1].copy(), bits[::-1].copy()
        )
