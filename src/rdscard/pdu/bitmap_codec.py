"""Compressed bitmap updates of a numpy BGRX frame.

MS-RDPBCGR 2.2.9.1.1.3.1.2.2 TS_BITMAP_DATA with BITMAP_COMPRESSION: a
32 bpp bitmap is RDP 6.0 planar (MS-RDPEGDI 2.2.2.5.1; stock clients such
as FreeRDP's gdi decode every compressed 32 bpp bitmap as planar), a 15,
16 or 24 bpp one interleaved RLE (2.2.9.1.1.3.1.2.4). The 8-byte
TS_CD_HEADER (2.2.9.1.1.3.1.2.3) precedes the data unless the client's
General Capability Set has NO_BITMAP_COMPRESSION_HDR (0x0400) in
extraFlags (2.2.7.1.1); then the flag of the same name is set in each
rectangle and the header left out.

:func:`encode_compressed_updates` is the one call a server needs. Tiles of
at most 64 x 64 are compressed (widths padded to a multiple of 4, see
:mod:`rdscard.codec.tiles`); a tile whose compressed form is not smaller
than its raw form goes uncompressed. The encoders: planar is FreeRDP's
through :mod:`rdscard.codec.freerdp` when libfreerdp2 loads (about twice
as fast as numpy on a desktop frame, same bytes), numpy's otherwise;
interleaved is always numpy's, because FreeRDP 2.11's interleaved encoder
writes streams that its own decoder restores wrongly (a shifted scanline
at 15/16 bpp, wrong colours at 24 bpp).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Final, Literal

import numpy as np

from rdscard.codec import freerdp, interleaved, planar
from rdscard.codec.tiles import MAX_TILE, TileBlock, U8Array, padded_width, tile_blocks
from rdscard.pdu.bitmap import (
    BITMAP_DATA_HEADER_SIZE,
    BitmapData,
    BitmapDataFlags,
    Rect,
    _tiles,
    bitmap_pdu_limits,
    bytes_per_pixel,
    pack_bitmap_updates,
    row_stride,
)
from rdscard.pdu.buffer import Reader
from rdscard.pdu.input import FASTPATH_MAX_LENGTH

PDU = "TS_BITMAP_DATA"

#: TS_CD_HEADER: cbCompFirstRowSize, cbCompMainBodySize, cbScanWidth, cbUncompressedSize.
COMPRESSION_HEADER_SIZE: Final = 8
_CD_HEADER: Final = struct.Struct("<4H")

Encoder = Literal["auto", "freerdp", "numpy"]


def _check_frame(frame: U8Array) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError("frame must be a numpy uint8 array")
    if frame.ndim != 3 or frame.shape[2] != 4:
        raise ValueError(f"frame must have shape (height, width, 4), not {frame.shape}")
    if not frame.flags.c_contiguous:
        raise ValueError("frame must be C-contiguous")


def raw_bitmap_bytes(tile: U8Array, bpp: int) -> bytes:
    """Uncompressed RDP bitmap bytes of ``(height, width, 4)`` BGRX pixels: bottom-up rows.

    The width must already be a multiple of 4 pixels, so rows need no padding.
    """
    if tile.shape[1] % 4:
        raise ValueError("raw bitmap width must be a multiple of 4")
    bytes_per_pixel(bpp)
    pixels = tile[::-1] if bpp == 32 else interleaved.pixel_bytes(tile[::-1], bpp)
    return np.ascontiguousarray(pixels).tobytes()


def _padded_tile(frame: U8Array, rect: Rect) -> U8Array:
    """The tile's pixels at a width padded to a multiple of 4 (last column repeated)."""
    pixels = frame[rect.top : rect.bottom, rect.left : rect.right]
    pad = padded_width(rect.width) - rect.width
    if pad:
        return np.pad(pixels, ((0, 0), (0, pad), (0, 0)), mode="edge")
    return pixels


def _freerdp_planar_tiles(
    codecs: freerdp.FreeRdpCodecs, frame: U8Array, blocks: list[TileBlock]
) -> list[bytes | None]:
    out: list[bytes | None] = []
    frame_width = frame.shape[1]
    for block in blocks:
        width = block.padded_width
        for rect in block.rects():
            source, left, top = frame, rect.left, rect.top
            if rect.left + width > frame_width:
                source, left, top = np.ascontiguousarray(_padded_tile(frame, rect)), 0, 0
            out.append(codecs.planar_compress(source, left, top, width, rect.height))
    return out


def compress_tiles(
    frame: U8Array, blocks: list[TileBlock], bpp: int, encoder: Encoder = "auto"
) -> list[bytes | None]:
    """The compressed bitmap of every tile of ``blocks`` (None: the encoder declined)."""
    codecs = freerdp.load() if encoder != "numpy" and bpp == 32 else None
    if encoder == "freerdp" and codecs is None:
        raise RuntimeError(f"FreeRDP's codec library is unavailable (or unused at {bpp} bpp)")
    if codecs is not None:
        return _freerdp_planar_tiles(codecs, frame, blocks)
    if bpp == 32:
        return list(planar.encode_planar_tiles(frame, blocks))
    return list(interleaved.encode_interleaved_tiles(frame, blocks, bpp))


def _raw_bitmaps(frame: U8Array, rect: Rect, bpp: int, limit: int) -> Iterator[BitmapData]:
    """Uncompressed rectangles covering ``rect``, each at most ``limit`` bytes long."""
    pixel = bytes_per_pixel(bpp)
    width = min(padded_width(rect.width), 4 * ((limit - BITMAP_DATA_HEADER_SIZE) // (4 * pixel)))
    if width < 4:
        raise ValueError(f"a PDU limit of {limit} bytes cannot hold a bitmap")
    rows = max(1, (limit - BITMAP_DATA_HEADER_SIZE) // row_stride(width, bpp))
    for part in _tiles(rect, width, rows):
        tile = _padded_tile(frame, part)
        yield BitmapData(
            part.left,
            part.top,
            part.right - 1,
            part.bottom - 1,
            tile.shape[1],
            part.height,
            bpp,
            BitmapDataFlags(0),
            raw_bitmap_bytes(tile, bpp),
        )


def _tile_bitmaps(
    frame: U8Array,
    rect: Rect,
    payload: bytes | None,
    bpp: int,
    compression_header: bool,
    limit: int,
) -> Iterator[BitmapData]:
    width = padded_width(rect.width)
    raw_size = row_stride(width, bpp) * rect.height
    if payload is not None:
        flags = BitmapDataFlags.BITMAP_COMPRESSION
        if compression_header:
            scan = width * bytes_per_pixel(bpp)
            data = _CD_HEADER.pack(0, len(payload), scan, scan * rect.height) + payload
        else:
            flags |= BitmapDataFlags.NO_BITMAP_COMPRESSION_HDR
            data = payload
        if len(data) < raw_size and BITMAP_DATA_HEADER_SIZE + len(data) <= limit:
            yield BitmapData(
                rect.left,
                rect.top,
                rect.right - 1,
                rect.bottom - 1,
                width,
                rect.height,
                bpp,
                flags,
                data,
            )
            return
    yield from _raw_bitmaps(frame, rect, bpp, limit)


def encode_compressed_updates(
    frame: U8Array,
    rects: Iterable[Rect] | None,
    bpp: int,
    *,
    compression_header: bool = True,
    max_pdu_size: int = FASTPATH_MAX_LENGTH,
    max_request_size: int | None = None,
    tile: int = MAX_TILE,
    encoder: Encoder = "auto",
    origin: tuple[int, int] = (0, 0),
) -> list[bytes]:
    """Complete fast-path Update PDUs painting ``rects`` of ``frame`` (all of it when None).

    ``frame`` is a C-contiguous ``(height, width, 4)`` uint8 array of BGRX
    pixels; ``bpp`` is 15, 16, 24 or 32 (the session's colour depth).
    ``compression_header`` is False when the client's General Capability
    Set has NO_BITMAP_COMPRESSION_HDR. PDU size and fragmentation follow
    :func:`rdscard.pdu.bitmap.encode_bitmap_updates`; a tile too large for
    them goes uncompressed in smaller pieces. ``encoder`` forces one
    implementation (benchmarks, tests). ``origin`` is where the frame's
    top-left pixel lies on the desktop (a captured rectangle's corner).
    """
    bitmaps = compressed_bitmaps(
        frame, rects, bpp, compression_header=compression_header, max_pdu_size=max_pdu_size,
        max_request_size=max_request_size, tile=tile, encoder=encoder, origin=origin)
    return pack_bitmap_updates(bitmaps, max_pdu_size)


def compressed_bitmaps(
    frame: U8Array,
    rects: Iterable[Rect] | None,
    bpp: int,
    *,
    compression_header: bool = True,
    max_pdu_size: int = FASTPATH_MAX_LENGTH,
    max_request_size: int | None = None,
    tile: int = MAX_TILE,
    encoder: Encoder = "auto",
    origin: tuple[int, int] = (0, 0),
) -> list[BitmapData]:
    """The TS_BITMAP_DATA rectangles of :func:`encode_compressed_updates`, not yet packed.

    Rectangles of several captures can then share PDUs
    (:func:`rdscard.pdu.bitmap.pack_bitmap_updates`).
    """
    _check_frame(frame)
    bytes_per_pixel(bpp)
    if not 4 <= tile <= MAX_TILE:
        raise ValueError(f"tile must be 4..{MAX_TILE} pixels")
    _single_pdu, limit = bitmap_pdu_limits(max_pdu_size, max_request_size)
    height, width = frame.shape[:2]
    if rects is None:
        rects = [Rect(0, 0, width, height)]
    blocks: list[TileBlock] = []
    for raw_rect in rects:
        rect = Rect(*raw_rect).clip(width, height)
        if rect is not None:
            blocks += tile_blocks(rect, tile)
    payloads = compress_tiles(frame, blocks, bpp, encoder)
    tiles = sorted(
        zip((r for block in blocks for r in block.rects()), payloads, strict=True),
        key=lambda item: (item[0].top, item[0].left),
    )
    bitmaps = (
        bitmap
        for rect, payload in tiles
        for bitmap in _tile_bitmaps(frame, rect, payload, bpp, compression_header, limit)
    )
    if origin == (0, 0):
        return list(bitmaps)
    left, top = origin
    return [
        replace(b, dest_left=b.dest_left + left, dest_top=b.dest_top + top,
                dest_right=b.dest_right + left, dest_bottom=b.dest_bottom + top)
        for b in bitmaps
    ]


def bitmap_pixels(bitmap: BitmapData) -> U8Array:
    """The ``(height, width, 4)`` BGRX pixels of a compressed or raw bitmap, top row first.

    15/16 bpp values are widened to 8 bits per channel by bit replication
    of the top bits, the way clients show them. Raises
    :class:`~rdscard.errors.ProtocolError` on malformed data.
    """
    r = Reader(bitmap.bitmap_data_stream, PDU)
    width, height, bpp = bitmap.width, bitmap.height, bitmap.bits_per_pixel
    if bpp not in (15, 16, 24, 32):
        raise r.error("bitsPerPixel", f"{bpp} bpp is not supported")
    if not bitmap.flags & BitmapDataFlags.BITMAP_COMPRESSION:
        data = r.raw(row_stride(width, bpp) * height, "bitmapDataStream")
        r.expect_end()
        stride = row_stride(width, bpp)
        rows = np.frombuffer(data, dtype=np.uint8).reshape(height, stride)[::-1]
        if bpp == 32:
            return np.ascontiguousarray(rows[:, : width * 4].reshape(height, width, 4))
        if bpp == 24:
            return _widen(rows[:, : width * 3].reshape(height, width, 3), 24)
        values = rows[:, : width * 2].reshape(height, width, 2)
        return _widen(values, bpp)
    if not bitmap.flags & BitmapDataFlags.NO_BITMAP_COMPRESSION_HDR:
        _first, body, _scan, _size = (
            r.u16le(f)
            for f in (
                "cbCompFirstRowSize",
                "cbCompMainBodySize",
                "cbScanWidth",
                "cbUncompressedSize",
            )
        )
        data = r.raw(body, "bitmapDataStream")
        r.expect_end()
    else:
        data = r.rest()
    if bpp == 32:
        decoded = planar.decode_planar(data, width, height)
        decoded[..., 3] = 0
        return decoded
    values32 = interleaved.decode_interleaved(data, width, height, bpp)
    raw = values32.astype("<u4").view(np.uint8).reshape(height, width, 4)
    return _widen(raw[..., : 3 if bpp == 24 else 2], bpp)


def _widen(raw: U8Array, bpp: int) -> U8Array:
    """BGRX pixels from RDP pixel bytes ``(..., 2 or 3)``."""
    out = np.zeros((*raw.shape[:-1], 4), dtype=np.uint8)
    if bpp == 24:
        out[..., :3] = raw
        return out
    value = raw[..., 0].astype(np.uint16) | raw[..., 1].astype(np.uint16) << 8
    if bpp == 16:
        red, green, blue = value >> 11 & 0x1F, value >> 5 & 0x3F, value & 0x1F
        out[..., 1] = (green << 2 | green >> 4).astype(np.uint8)
    else:
        red, green, blue = value >> 10 & 0x1F, value >> 5 & 0x1F, value & 0x1F
        out[..., 1] = (green << 3 | green >> 2).astype(np.uint8)
    out[..., 2] = (red << 3 | red >> 2).astype(np.uint8)
    out[..., 0] = (blue << 3 | blue >> 2).astype(np.uint8)
    return out
