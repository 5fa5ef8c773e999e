"""Uncompressed bitmap updates and the pixel formats they carry.

MS-RDPBCGR 2.2.9.1.1.3.1.2.1 Bitmap Update Data (TS_UPDATE_BITMAP_DATA) and
2.2.9.1.1.3.1.2.2 Bitmap Data (TS_BITMAP_DATA), sent inside a fast-path
update with updateCode FASTPATH_UPDATETYPE_BITMAP (2.2.9.1.2.1.2).

Raw bitmaps (no BITMAP_COMPRESSION) are stored bottom-up, each row padded
to a multiple of 4 bytes. Pixel formats: 32 bpp BGRX, 24 bpp BGR, 16 bpp
RGB565 and 15 bpp RGB555 (both little-endian). 8 bpp needs a palette and
is refused: negotiate 16 instead.

:func:`encode_bitmap_updates` is the one call a server needs: it cuts
rectangles of a Pillow image into tiles whose width is a multiple of 4
pixels, converts the pixels in C (Pillow raw encoders, no per-pixel Python)
and returns complete fast-path PDUs, none longer than ``max_pdu_size``.
:func:`apply_bitmap` paints a decoded :class:`BitmapData` onto an image.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple, Self

from PIL import Image, ImageChops

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.fastpath_output import (
    FASTPATH_OUTPUT_HEADER_SIZE,
    FASTPATH_UPDATE_HEADER_SIZE,
    FastPathUpdate,
    FastPathUpdateCode,
    encode_fastpath_pdu,
    fragment_update,
    single_update_prefix,
)
from rdscard.pdu.input import FASTPATH_MAX_LENGTH

PDU = "TS_UPDATE_BITMAP_DATA"

SUPPORTED_BPP: Final = (15, 16, 24, 32)
#: destLeft..bitmapLength, nine 16-bit fields.
BITMAP_DATA_HEADER_SIZE: Final = 18
#: updateType + numberRectangles.
UPDATE_BITMAP_HEADER_SIZE: Final = 4
DEFAULT_TILE: Final = 64
_FIXED_FIELDS: Final = struct.Struct("<9H")
_UPDATE_HEADER: Final = struct.Struct("<HH")
#: Largest desktop dimension in MS-RDPBCGR (TS_UD_CS_CORE desktopWidth/Height).
MAX_DIMENSION: Final = 8192


class UpdateType(IntEnum):
    """MS-RDPBCGR 2.2.9.1.1.3.1.2.1 updateType (shared with slow-path updates)."""

    UPDATETYPE_ORDERS = 0x0000
    UPDATETYPE_BITMAP = 0x0001
    UPDATETYPE_PALETTE = 0x0002
    UPDATETYPE_SYNCHRONIZE = 0x0003


class BitmapDataFlags(IntFlag):
    """MS-RDPBCGR 2.2.9.1.1.3.1.2.2 TS_BITMAP_DATA flags."""

    BITMAP_COMPRESSION = 0x0001
    NO_BITMAP_COMPRESSION_HDR = 0x0400


_KNOWN_FLAGS: Final = BitmapDataFlags.BITMAP_COMPRESSION | BitmapDataFlags.NO_BITMAP_COMPRESSION_HDR


class Rect(NamedTuple):
    """A screen rectangle; ``right`` and ``bottom`` are exclusive (Pillow box order)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.bottom - self.top

    def clip(self, width: int, height: int) -> Rect | None:
        """This rectangle inside a ``width`` x ``height`` desktop, or None when empty."""
        left, top = max(self.left, 0), max(self.top, 0)
        right, bottom = min(self.right, width), min(self.bottom, height)
        if right <= left or bottom <= top:
            return None
        return Rect(left, top, right, bottom)


def bytes_per_pixel(bpp: int) -> int:
    """Bytes per pixel of a supported colour depth."""
    if bpp not in SUPPORTED_BPP:
        raise ValueError(f"{bpp} bpp is not supported (choose 15, 16, 24 or 32)")
    return (bpp + 7) // 8


def row_stride(width: int, bpp: int) -> int:
    """Bytes per raw bitmap row, padded to a multiple of 4."""
    return (width * bytes_per_pixel(bpp) + 3) & ~3


@dataclass(frozen=True)
class BitmapData:
    """MS-RDPBCGR 2.2.9.1.1.3.1.2.2 TS_BITMAP_DATA; dest coordinates are inclusive."""

    dest_left: int
    dest_top: int
    dest_right: int
    dest_bottom: int
    width: int
    height: int
    bits_per_pixel: int
    flags: BitmapDataFlags
    bitmap_data_stream: bytes

    def encode(self) -> bytes:
        """Nine 16-bit fields then the bitmap bytes."""
        return self.fixed_fields() + self.bitmap_data_stream

    def fixed_fields(self) -> bytes:
        """destLeft through bitmapLength."""
        return _FIXED_FIELDS.pack(
            self.dest_left,
            self.dest_top,
            self.dest_right,
            self.dest_bottom,
            self.width,
            self.height,
            self.bits_per_pixel,
            self.flags,
            len(self.bitmap_data_stream),
        )

    @property
    def size(self) -> int:
        """Encoded length."""
        return BITMAP_DATA_HEADER_SIZE + len(self.bitmap_data_stream)

    @classmethod
    def decode(cls, r: Reader, index: int = 0) -> Self:
        """Read one rectangle; an uncompressed one must hold exactly width x height pixels."""
        f = f"rectangles[{index}]"
        left, top = r.u16le(f"{f}.destLeft"), r.u16le(f"{f}.destTop")
        right, bottom = r.u16le(f"{f}.destRight"), r.u16le(f"{f}.destBottom")
        width, height = r.u16le(f"{f}.width"), r.u16le(f"{f}.height")
        bpp = r.u16le(f"{f}.bitsPerPixel")
        flags = r.u16le(f"{f}.flags")
        length = r.u16le(f"{f}.bitmapLength")
        if bpp not in (8, *SUPPORTED_BPP):
            raise r.error(f"{f}.bitsPerPixel", f"invalid colour depth {bpp}")
        if flags & ~_KNOWN_FLAGS:
            raise r.error(f"{f}.flags", f"unknown flags 0x{flags:04X}")
        if right < left or bottom < top:
            raise r.error(f"{f}.destRight", "destination rectangle is inverted")
        if right - left + 1 > width or bottom - top + 1 > height:
            raise r.error(f"{f}.width", "destination rectangle is larger than the bitmap")
        if width > MAX_DIMENSION or height > MAX_DIMENSION:
            raise r.error(f"{f}.width", f"bitmap {width}x{height} exceeds {MAX_DIMENSION}")
        data = r.raw(length, f"{f}.bitmapDataStream")
        if not flags & BitmapDataFlags.BITMAP_COMPRESSION:
            expected = ((width * ((bpp + 7) // 8) + 3) & ~3) * height
            if length != expected:
                raise r.error(
                    f"{f}.bitmapLength",
                    f"{length} bytes for an uncompressed {width}x{height}x{bpp} bitmap "
                    f"that needs {expected}",
                )
        return cls(left, top, right, bottom, width, height, bpp, BitmapDataFlags(flags), data)


@dataclass(frozen=True)
class UpdateBitmapData:
    """MS-RDPBCGR 2.2.9.1.1.3.1.2.1 TS_UPDATE_BITMAP_DATA."""

    rectangles: tuple[BitmapData, ...]

    def encode(self) -> bytes:
        """updateType UPDATETYPE_BITMAP, numberRectangles, rectangles."""
        if len(self.rectangles) > 0xFFFF:
            raise ValueError("too many rectangles for one update")
        w = Writer().u16le(UpdateType.UPDATETYPE_BITMAP).u16le(len(self.rectangles))
        for rect in self.rectangles:
            w.raw(rect.encode())
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode the updateData of a FASTPATH_UPDATETYPE_BITMAP update."""
        r = Reader(data, PDU)
        update_type = r.u16le("updateType")
        if update_type != UpdateType.UPDATETYPE_BITMAP:
            raise r.error("updateType", f"0x{update_type:04X} is not UPDATETYPE_BITMAP")
        count = r.u16le("numberRectangles")
        if count * BITMAP_DATA_HEADER_SIZE > r.remaining:
            raise r.error("numberRectangles", f"{count} rectangles cannot fit {r.remaining} bytes")
        rects = tuple(BitmapData.decode(r, i) for i in range(count))
        r.expect_end()
        return cls(rects)


# -- pixel conversion ----------------------------------------------------------

_LUT_HIGH_565 = (
    [v & 0xF8 for v in range(256)],  # red: bits 15-11
    [v >> 5 for v in range(256)],  # green: bits 10-8
)
_LUT_LOW_565 = (
    [(v << 3) & 0xE0 for v in range(256)],  # green: bits 7-5
    [v >> 3 for v in range(256)],  # blue: bits 4-0
)
_LUT_HIGH_555 = (
    [(v & 0xF8) >> 1 for v in range(256)],  # red: bits 14-10
    [v >> 6 for v in range(256)],  # green: bits 9-8
)
_LUT_LOW_555 = (
    [(v << 2) & 0xE0 for v in range(256)],  # green: bits 7-5
    [v >> 3 for v in range(256)],  # blue: bits 4-0
)


def _to_high_colour(image: Image.Image, bpp: int) -> Image.Image:
    """An "LA" image whose two bands are the low and high byte of each RGB565/555 pixel."""
    red, green, blue = image.split()
    if bpp == 16:
        high_lut, low_lut = _LUT_HIGH_565, _LUT_LOW_565
    else:
        high_lut, low_lut = _LUT_HIGH_555, _LUT_LOW_555
    # The two halves of each byte use disjoint bits, so a saturating add is an OR.
    high = ImageChops.add(red.point(high_lut[0]), green.point(high_lut[1]))
    low = ImageChops.add(green.point(low_lut[0]), blue.point(low_lut[1]))
    return Image.merge("LA", (low, high))


def _prepared(image: Image.Image, bpp: int) -> tuple[Image.Image, str]:
    """The image in a form whose raw encoder writes RDP pixels, and that raw mode."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if bpp == 32:
        return image, "BGRX"
    if bpp == 24:
        return image, "BGR"
    if bpp in (15, 16):
        return _to_high_colour(image, bpp), "LA"
    raise ValueError(f"{bpp} bpp is not supported (choose 15, 16, 24 or 32)")


def pack_bitmap(image: Image.Image, bpp: int) -> bytes:
    """Raw RDP bitmap bytes of a whole image: bottom-up rows, 4-byte row padding."""
    prepared, raw_mode = _prepared(image, bpp)
    return _pack_prepared(prepared, raw_mode, bpp)


def _pack_prepared(prepared: Image.Image, raw_mode: str, bpp: int) -> bytes:
    width, height = prepared.size
    padded = (width + 3) & ~3
    if padded != width:
        prepared = prepared.crop((0, 0, padded, height))
    # stride 0 = natural, ystep -1 = bottom-up; width % 4 == 0 makes rows 4-byte aligned
    data = prepared.tobytes("raw", raw_mode, 0, -1)
    assert len(data) == row_stride(padded, bpp) * height
    return data


_UNPACK_MODES: Final = {32: "BGRX", 24: "BGR", 16: "BGR;16", 15: "BGR;15"}


def unpack_bitmap(bitmap: BitmapData) -> Image.Image:
    """The RGB image of an uncompressed bitmap (the whole ``width`` x ``height``)."""
    if bitmap.flags & BitmapDataFlags.BITMAP_COMPRESSION:
        raise ValueError("compressed bitmaps are not supported")
    raw_mode = _UNPACK_MODES.get(bitmap.bits_per_pixel)
    if raw_mode is None:
        raise ValueError(f"{bitmap.bits_per_pixel} bpp is not supported")
    stride = row_stride(bitmap.width, bitmap.bits_per_pixel)
    size = (bitmap.width, bitmap.height)
    return Image.frombytes("RGB", size, bitmap.bitmap_data_stream, "raw", raw_mode, stride, -1)


def apply_bitmap(canvas: Image.Image, bitmap: BitmapData) -> None:
    """Paint the destination rectangle of ``bitmap`` onto ``canvas`` (a client's view)."""
    tile = unpack_bitmap(bitmap)
    visible = tile.crop(
        (0, 0, bitmap.dest_right - bitmap.dest_left + 1, bitmap.dest_bottom - bitmap.dest_top + 1)
    )
    canvas.paste(visible, (bitmap.dest_left, bitmap.dest_top))


# -- tiling and grouping -------------------------------------------------------


def _tiles(rect: Rect, tile_width: int, tile_height: int) -> Iterator[Rect]:
    for top in range(rect.top, rect.bottom, tile_height):
        bottom = min(top + tile_height, rect.bottom)
        for left in range(rect.left, rect.right, tile_width):
            yield Rect(left, top, min(left + tile_width, rect.right), bottom)


def _bitmaps(
    image: Image.Image, rects: Iterable[Rect], bpp: int, tile: int, max_tile_bytes: int
) -> Iterator[BitmapData]:
    """One uncompressed TS_BITMAP_DATA per tile, each at most ``max_tile_bytes`` long."""
    width, height = image.size
    pixel_bytes = bytes_per_pixel(bpp)
    for raw_rect in rects:
        rect = Rect(*raw_rect).clip(width, height)
        if rect is None:
            continue
        padded_right = rect.left + ((rect.width + 3) & ~3)
        # Convert the whole rectangle once; pixels beyond the image edge come out black.
        prepared, raw_mode = _prepared(
            image.crop((rect.left, rect.top, padded_right, rect.bottom)), bpp
        )
        tile_width = min((tile + 3) & ~3, (rect.width + 3) & ~3)
        row_bytes = tile_width * pixel_bytes
        tile_height = min(tile, (max_tile_bytes - BITMAP_DATA_HEADER_SIZE) // row_bytes)
        if tile_height < 1:
            tile_width = 4 * ((max_tile_bytes - BITMAP_DATA_HEADER_SIZE) // (4 * pixel_bytes))
            tile_height = 1
            if tile_width < 4:
                raise ValueError(f"a PDU limit of {max_tile_bytes} bytes cannot hold a bitmap")
        for part in _tiles(rect, tile_width, tile_height):
            padded = (part.width + 3) & ~3
            local = (part.left - rect.left, part.top - rect.top)
            data = _pack_prepared(
                prepared.crop((local[0], local[1], local[0] + padded, local[1] + part.height)),
                raw_mode,
                bpp,
            )
            yield BitmapData(
                dest_left=part.left,
                dest_top=part.top,
                dest_right=part.right - 1,
                dest_bottom=part.bottom - 1,
                width=padded,
                height=part.height,
                bits_per_pixel=bpp,
                flags=BitmapDataFlags(0),
                bitmap_data_stream=data,
            )


def encode_bitmap_updates(
    image: Image.Image,
    rects: Iterable[Rect] | None,
    bpp: int,
    max_pdu_size: int = FASTPATH_MAX_LENGTH,
    max_request_size: int | None = None,
    tile: int = DEFAULT_TILE,
) -> list[bytes]:
    """Complete fast-path Update PDUs painting ``rects`` of ``image`` (all of it when None).

    Rectangles are cut into tiles of at most ``tile`` x ``tile`` pixels
    (widths rounded up to a multiple of 4, the padding drawn black outside
    the destination rectangle) and packed greedily, in order, into
    FASTPATH_UPDATETYPE_BITMAP updates so that no PDU is longer than
    ``max_pdu_size`` (at most 0x7FFF, the 15-bit fast-path length).

    Fragmentation is used only when a single tile cannot fit one PDU and the
    client accepts multi-fragment updates of ``max_request_size`` bytes
    (MS-RDPBCGR 2.2.7.2.6 MultifragmentUpdate); otherwise tiles are made
    small enough to fit. ``bpp`` is 15, 16, 24 or 32.
    """
    bytes_per_pixel(bpp)
    if tile < 4:
        raise ValueError("tile must be at least 4 pixels")
    _single_pdu, tile_limit = bitmap_pdu_limits(max_pdu_size, max_request_size)
    if rects is None:
        rects = [Rect(0, 0, *image.size)]
    return pack_bitmap_updates(_bitmaps(image, rects, bpp, tile, tile_limit), max_pdu_size)


def bitmap_pdu_limits(max_pdu_size: int, max_request_size: int | None) -> tuple[int, int]:
    """The room for rectangles in one PDU, and the largest one TS_BITMAP_DATA may be.

    A rectangle larger than one PDU's room is sent fragmented, which the
    client allows up to its MultifragmentUpdate ``max_request_size``.
    """
    if not 64 <= max_pdu_size <= FASTPATH_MAX_LENGTH:
        raise ValueError(f"max_pdu_size {max_pdu_size} outside 64..{FASTPATH_MAX_LENGTH}")
    overhead = FASTPATH_OUTPUT_HEADER_SIZE + FASTPATH_UPDATE_HEADER_SIZE
    single_pdu = max_pdu_size - overhead - UPDATE_BITMAP_HEADER_SIZE
    tile_limit = single_pdu
    if max_request_size is not None:
        tile_limit = max(single_pdu, min(max_request_size, 0xFFFF) - UPDATE_BITMAP_HEADER_SIZE)
    return single_pdu, tile_limit


def pack_bitmap_updates(bitmaps: Iterable[BitmapData], max_pdu_size: int) -> list[bytes]:
    """Pack rectangles greedily, in order, into fast-path bitmap update PDUs.

    No PDU is longer than ``max_pdu_size``; a group too large for one PDU
    (a single rectangle above the limit) is fragmented (MS-RDPBCGR 2.2.9.1.2.1).
    """
    single_pdu, _tile_limit = bitmap_pdu_limits(max_pdu_size, None)
    overhead = FASTPATH_OUTPUT_HEADER_SIZE + FASTPATH_UPDATE_HEADER_SIZE
    pdus: list[bytes] = []
    group: list[BitmapData] = []
    group_size = 0

    def flush() -> None:
        nonlocal group, group_size
        if not group:
            return
        update_length = UPDATE_BITMAP_HEADER_SIZE + group_size
        if update_length <= max_pdu_size - overhead:
            # The common case, joined once: a 32 bpp screen is about 3 MB.
            pieces = [
                single_update_prefix(FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP, update_length),
                _UPDATE_HEADER.pack(UpdateType.UPDATETYPE_BITMAP, len(group)),
            ]
            for bitmap in group:
                pieces += (bitmap.fixed_fields(), bitmap.bitmap_data_stream)
            pdus.append(b"".join(pieces))
        else:
            data = UpdateBitmapData(tuple(group)).encode()
            pdus.extend(_bitmap_pdus(data, max_pdu_size - overhead))
        group, group_size = [], 0

    for bitmap in bitmaps:
        if group_size + bitmap.size > single_pdu:
            flush()
        group.append(bitmap)
        group_size += bitmap.size
    flush()
    return pdus


def _bitmap_pdus(update_data: bytes, max_fragment: int) -> list[bytes]:
    code = FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP
    return [encode_fastpath_pdu(u) for u in fragment_update(code, update_data, max_fragment)]


def decode_bitmap_update(update: FastPathUpdate) -> UpdateBitmapData:
    """The bitmap rectangles of a whole (reassembled) FASTPATH_UPDATETYPE_BITMAP update."""
    if update.update_code != FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP:
        raise Reader(b"", PDU).error("updateCode", f"{update.update_code!r} is not a bitmap")
    return UpdateBitmapData.decode(update.data)
