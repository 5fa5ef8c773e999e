"""Interleaved RLE bitmap codec for 15, 16 and 24 bpp (MS-RDPBCGR 2.2.9.1.1.3.1.2.4).

The bitmap is a stream of compression orders over its pixels taken
bottom-up (the first scanline is the last row), orders crossing scanline
ends freely. Each order header is one byte: a REGULAR order has a 3-bit
code and a 5-bit length (0: the next byte plus 32), a LITE order a 4-bit
code and a 4-bit length (0: the next byte plus 16), a MEGA_MEGA order the
whole byte as code and a 16-bit length after it.

:func:`encode_interleaved_tiles` uses three orders, chosen with numpy over
many tiles at once: background runs (pixels equal to the pixel one
scanline up, never on the first scanline and never two in a row, so the
decoder never inserts a foreground pixel), colour runs (3 or more equal
pixels) and colour images (the pixels as they are). :func:`decode_interleaved`
is the reference decoder for the tests and understands every order of
2.2.9.1.1.3.1.2.4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from rdscard.codec.tiles import TileBlock, U8Array
from rdscard.pdu.buffer import Reader

PDU = "RLE_BITMAP_STREAM"

I64Array = npt.NDArray[np.int64]
U32Array = npt.NDArray[np.uint32]

_BG, _RUN, _IMAGE = 0, 1, 2
#: REGULAR code (top 3 bits) and MEGA_MEGA code of each order the encoder uses.
_REGULAR: Final = np.array([0x00, 0x60, 0x80], dtype=np.int64)
_MEGA: Final = np.array([0xF0, 0xF3, 0xF4], dtype=np.int64)


def bytes_per_pixel(bpp: int) -> int:
    """2 for 15 and 16 bpp, 3 for 24 bpp."""
    if bpp not in (15, 16, 24):
        raise ValueError("interleaved RLE is for 15, 16 and 24 bpp")
    return 3 if bpp == 24 else 2


def pixel_bytes(bgrx: U8Array, bpp: int) -> U8Array:
    """Pixels ``(..., 4)`` BGRX as RDP pixel bytes ``(..., 2 or 3)`` (RGB565/RGB555 LE, BGR)."""
    if bpp == 24:
        return np.ascontiguousarray(bgrx[..., :3])
    blue = bgrx[..., 0].astype(np.uint16) >> 3
    if bpp == 16:
        green = bgrx[..., 1].astype(np.uint16) >> 2 << 5
        red = bgrx[..., 2].astype(np.uint16) >> 3 << 11
    elif bpp == 15:
        green = bgrx[..., 1].astype(np.uint16) >> 3 << 5
        red = bgrx[..., 2].astype(np.uint16) >> 3 << 10
    else:
        raise ValueError("interleaved RLE is for 15, 16 and 24 bpp")
    value = (red | green | blue).astype("<u2")
    return value.view(np.uint8).reshape(*bgrx.shape[:-1], 2)


def _values(raw: U8Array) -> U32Array:
    """One comparable integer per pixel of ``(..., 2 or 3)`` pixel bytes."""
    value: U32Array = raw[..., 0].astype(np.uint32)
    value |= raw[..., 1].astype(np.uint32) << np.uint32(8)
    if raw.shape[-1] == 3:
        value |= raw[..., 2].astype(np.uint32) << np.uint32(16)
    return value


def _orders(
    values: U32Array, tile_start: npt.NDArray[np.bool_], above: npt.NDArray[np.bool_]
) -> tuple[I64Array, I64Array, I64Array]:
    """Kind, start and length of every order covering the pixel stream.

    ``above`` says a pixel equals the one a scanline up (always False on a
    tile's first scanline). Background runs are its runs of 2 or more;
    between them, runs of 3 or more equal pixels are colour runs and the
    rest colour images. Background runs are never adjacent, so the decoder
    never inserts a foreground pixel (its fInsertFgPel rule).
    """
    size = values.size
    edges = np.diff(above.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    bg_starts = np.flatnonzero(edges == 1)
    bg_ends = np.flatnonzero(edges == -1)
    keep = bg_ends - bg_starts >= 2
    marks = np.zeros(size + 1, dtype=np.int8)
    marks[bg_starts[keep]] = 1
    marks[bg_ends[keep]] = -1
    bg = np.cumsum(marks[:-1], dtype=np.int8) > 0

    brk = np.empty(size, dtype=np.bool_)
    brk[0] = True
    np.not_equal(values[1:], values[:-1], out=brk[1:])
    brk[1:] |= bg[1:] != bg[:-1]
    brk |= tile_start
    run_starts = np.flatnonzero(brk)
    run_lengths = np.diff(run_starts, append=size)
    run_kind = np.where(bg[run_starts], _BG, np.where(run_lengths >= 3, _RUN, _IMAGE))
    new_order = np.empty(run_starts.size, dtype=np.bool_)
    new_order[0] = True
    new_order[1:] = (run_kind[1:] != run_kind[:-1]) | (run_kind[1:] == _RUN)
    new_order |= tile_start[run_starts]
    first_runs = np.flatnonzero(new_order)
    starts = run_starts[first_runs]
    return run_kind[first_runs].astype(np.int64), starts, np.diff(starts, append=size)


def _headers(kind: I64Array, length: I64Array) -> tuple[I64Array, I64Array, I64Array, I64Array]:
    """Header length (1-3) and its three possible bytes for every order."""
    regular = _REGULAR[kind]
    short = length <= 31
    medium = ~short & (length <= 287)
    size = np.where(short, 1, np.where(medium, 2, 3))
    first = np.where(short, regular | length, np.where(medium, regular, _MEGA[kind]))
    second = np.where(medium, length - 32, length & 0xFF)
    third = length >> 8
    return size, first, second, third


def encode_interleaved_tiles(frame: U8Array, blocks: Sequence[TileBlock], bpp: int) -> list[bytes]:
    """One interleaved RLE bitmap per tile of ``blocks``, in block order.

    ``frame`` is ``(height, width, 4)`` uint8 BGRX; tiles are encoded at
    their padded width.
    """
    width_bytes = bytes_per_pixel(bpp)
    raws: list[U8Array] = []
    aboves: list[npt.NDArray[np.bool_]] = []
    tile_sizes: list[int] = []
    for block in blocks:
        if not block.count:
            continue
        raw = pixel_bytes(block.pixels(frame), bpp)[:, ::-1]  # bottom-up scanlines
        raw = np.ascontiguousarray(raw)
        values = _values(raw)
        above = np.zeros(values.shape, dtype=np.bool_)
        np.equal(values[:, 1:], values[:, :-1], out=above[:, 1:])
        raws.append(raw.reshape(-1, width_bytes))
        aboves.append(above.reshape(-1))
        tile_sizes += [block.tile_height * block.padded_width] * block.count
    if not raws:
        return []
    raw_all = np.concatenate(raws)
    above_all = np.concatenate(aboves)
    values_all = _values(raw_all)
    tile_offsets = np.cumsum([0, *tile_sizes])
    tile_start = np.zeros(values_all.size, dtype=np.bool_)
    tile_start[tile_offsets[:-1]] = True

    kind, starts, lengths = _orders(values_all, tile_start, above_all)
    header_size, first, second, third = _headers(kind, lengths)
    pixels = np.where(kind == _IMAGE, lengths, np.where(kind == _RUN, 1, 0))
    order_bytes = header_size + pixels * width_bytes
    order_at = np.cumsum(order_bytes) - order_bytes
    out = np.empty(int(order_bytes.sum()), dtype=np.uint8)
    out[order_at] = first
    two = header_size >= 2
    out[order_at[two] + 1] = second[two]
    three = header_size == 3
    out[order_at[three] + 2] = third[three]
    # Pixel bytes: the source index of every pixel written and where it goes.
    pixel_first = np.cumsum(pixels) - pixels
    order_of_pixel = np.repeat(np.arange(kind.size), pixels)
    within = np.arange(order_of_pixel.size) - pixel_first[order_of_pixel]
    source = starts[order_of_pixel] + within
    target = (order_at + header_size)[order_of_pixel] + within * width_bytes
    out[target[:, None] + np.arange(width_bytes)] = raw_all[source]

    order_tile = np.searchsorted(tile_offsets, starts, side="right") - 1
    tile_bytes = np.bincount(order_tile, weights=order_bytes, minlength=len(tile_sizes))
    ends = np.cumsum(tile_bytes.astype(np.int64))
    encoded = out.tobytes()
    return [
        encoded[end - size : end]
        for end, size in zip(ends.tolist(), tile_bytes.astype(np.int64).tolist(), strict=True)
    ]


# -- decoding (reference, for tests) -------------------------------------------

_MEGA_LENGTH: Final = frozenset({0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF6, 0xF7, 0xF8})
_SPECIAL: Final = frozenset({0xF9, 0xFA, 0xFD, 0xFE})
_SPECIAL_MASKS: Final = {0xF9: 0x03, 0xFA: 0x05}


def _order_header(r: Reader) -> tuple[int, int]:
    """The order code (REGULAR/LITE codes as their short form) and its pixel count."""
    header = r.u8("orderHeader")
    if header & 0xC0 != 0xC0:
        code = header >> 5
        if code > 4:
            raise r.error("orderHeader", f"unknown order 0x{header:02X}")
        length = header & 0x1F
        if code == 2:  # REGULAR_FGBG_IMAGE counts in 8s; 0 means the next byte + 1
            return code, r.u8("orderHeader.length") + 1 if length == 0 else length * 8
        return code, r.u8("orderHeader.length") + 32 if length == 0 else length
    if header & 0xF0 == 0xF0:
        if header in _MEGA_LENGTH:
            return header, r.u16le("orderHeader.length")
        if header in _SPECIAL:
            return header, 8 if header in _SPECIAL_MASKS else 1
        raise r.error("orderHeader", f"unknown order 0x{header:02X}")
    code = header >> 4
    length = header & 0x0F
    if code == 0xD:  # LITE_SET_FG_FGBG_IMAGE
        return code, r.u8("orderHeader.length") + 1 if length == 0 else length * 8
    return code, r.u8("orderHeader.length") + 16 if length == 0 else length


def decode_interleaved(data: bytes, width: int, height: int, bpp: int) -> npt.NDArray[np.uint32]:
    """Pixel values ``(height, width)`` (RGB565/RGB555 or 0xRRGGBB), top row first.

    Follows 2.2.9.1.1.3.1.2.4 and its pseudo-code, including the rule that a
    background run straight after another starts with a foreground pixel.
    Pixels no order reaches stay 0, as in the stock decoders. Raises
    :class:`~rdscard.errors.ProtocolError` on malformed input.
    """
    r = Reader(data, PDU)
    size = bytes_per_pixel(bpp)
    if not (0 < width <= 8192 and 0 < height <= 8192):
        raise r.error("width", f"bitmap size {width}x{height} is out of range")
    white = {24: 0xFFFFFF, 16: 0xFFFF, 15: 0x7FFF}[bpp]
    total = width * height
    out = [0] * total
    pos = 0
    foreground = white
    insert_foreground = False
    first_line = True

    def pixel(field: str) -> int:
        return int.from_bytes(r.raw(size, field), "little")

    def room(count: int) -> None:
        if pos + count > total:
            raise r.error("orderHeader", f"order writes past the {width}x{height} bitmap")

    while r.remaining:
        if first_line and pos >= width:
            first_line = False
            insert_foreground = False
        code, length = _order_header(r)
        if code in (0x0, 0xF0):  # background run
            room(length)
            if insert_foreground:
                if length == 0:
                    raise r.error("orderHeader.length", "empty run after a background run")
                out[pos] = foreground if first_line else out[pos - width] ^ foreground
                pos += 1
                length -= 1
            for _ in range(length):
                out[pos] = 0 if first_line else out[pos - width]
                pos += 1
            insert_foreground = True
            continue
        insert_foreground = False
        if code in (0x1, 0xF1, 0xC, 0xF6):  # foreground runs
            if code in (0xC, 0xF6):
                foreground = pixel("foregroundPixel")
            room(length)
            for _ in range(length):
                out[pos] = foreground if first_line else out[pos - width] ^ foreground
                pos += 1
        elif code in (0xE, 0xF8):  # dithered run
            pixel_a, pixel_b = pixel("pixelA"), pixel("pixelB")
            room(2 * length)
            for _ in range(length):
                out[pos], out[pos + 1] = pixel_a, pixel_b
                pos += 2
        elif code in (0x3, 0xF3):  # colour run
            value = pixel("runPixel")
            room(length)
            out[pos : pos + length] = [value] * length
            pos += length
        elif code in (0x4, 0xF4):  # colour image
            room(length)
            raw = r.raw(length * size, "colorImage")
            for i in range(length):
                out[pos] = int.from_bytes(raw[i * size : (i + 1) * size], "little")
                pos += 1
        elif code in (0xFD, 0xFE):  # white, black
            room(1)
            out[pos] = white if code == 0xFD else 0
            pos += 1
        else:  # foreground/background images
            if code in (0xD, 0xF7):
                foreground = pixel("foregroundPixel")
            masks = (
                [_SPECIAL_MASKS[code]]
                if code in _SPECIAL_MASKS
                else list(r.raw((length + 7) // 8, "bitmask"))
            )
            for index, mask in enumerate(masks):
                count = min(8, length - 8 * index)
                room(count)
                for bit in range(count):
                    below = 0 if first_line else out[pos - width]
                    out[pos] = below ^ foreground if mask >> bit & 1 else below
                    if first_line and mask >> bit & 1:
                        out[pos] = foreground
                    pos += 1
    values = np.array(out, dtype=np.uint32).reshape(height, width)
    return np.ascontiguousarray(values[::-1])


def pixel_values(frame: U8Array, bpp: int) -> npt.NDArray[np.uint32]:
    """What :func:`decode_interleaved` returns for the pixels of ``frame`` (BGRX)."""
    return _values(pixel_bytes(frame, bpp))
