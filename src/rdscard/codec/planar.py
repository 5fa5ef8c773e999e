"""RDP 6.0 planar bitmap codec (MS-RDPEGDI 2.2.2.5.1 and 3.1.9).

A planar bitmap is a FormatHeader byte and then the colour planes (alpha,
red, green, blue; the alpha plane is left out when the NA bit is set). With
the RLE bit each plane is stored bottom-up (the first scanline is the
bitmap's last row): the first scanline as absolute values, every other one
as the difference to the scanline before it, each difference folded into a
byte as ``2|d|`` for ``d >= 0`` and ``2|d| - 1`` for ``d < 0``
(3.1.9.2.3). Each scanline is then cut into RLE segments
(2.2.2.5.1.1-2.2.2.5.1.3): a control byte whose high nibble counts raw
bytes and whose low nibble counts repetitions of the last raw byte (0 at
the start of a scanline); a low nibble of 1 or 2 means a run of
``16 + high`` or ``32 + high`` with no raw bytes.

:func:`encode_planar_tiles` encodes many tiles of a 32 bpp BGRX frame with
numpy: element-wise work is the delta transform and finding runs; all the
segment bookkeeping is done per run, so a flat desktop costs little more
than one pass over its pixels. The X byte is never sent (NA set).
:func:`decode_planar` is the reference decoder used by the tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from rdscard.codec.tiles import TileBlock, U8Array
from rdscard.pdu.buffer import Reader

PDU = "RDP6_BITMAP_STREAM"

FORMAT_HEADER_CLL_MASK: Final = 0x07
FORMAT_HEADER_CS: Final = 0x08
FORMAT_HEADER_RLE: Final = 0x10
FORMAT_HEADER_NA: Final = 0x20
#: What the encoder sends: RLE planes, no alpha plane.
ENCODED_FORMAT_HEADER: Final = FORMAT_HEADER_RLE | FORMAT_HEADER_NA

I64Array = npt.NDArray[np.int64]


def zigzag_delta(planes: U8Array) -> U8Array:
    """Scanline deltas folded into bytes (3.1.9.2.3); axis -2 holds scanlines.

    The first scanline is kept as it is.
    """
    out = np.empty_like(planes)
    out[..., 0, :] = planes[..., 0, :]
    diff = planes[..., 1:, :] - planes[..., :-1, :]
    sign = (diff.view(np.int8) >> 7).view(np.uint8)
    np.bitwise_xor(diff << 1, sign, out=out[..., 1:, :])
    return out


def _control_bytes(raw: I64Array, run: I64Array) -> I64Array:
    """Control bytes of segments; a segment without raw bytes carries a run of 3..47."""
    run_only = np.where(
        run <= 15, run, np.where(run <= 31, 1 | (run - 16) << 4, 2 | (run - 32) << 4)
    )
    return np.where(raw > 0, raw << 4 | run, run_only)


def rle_encode_lines(data: U8Array, line_start: npt.NDArray[np.bool_]) -> tuple[U8Array, I64Array]:
    """RLE segments of every scanline in ``data`` (2.2.2.5.1.1).

    ``line_start`` marks the first byte of each scanline. Returns the
    encoded bytes and, per scanline, the offset where its segments start.

    A maximal run of equal bytes becomes a repetition when it is at least
    4 long (its first byte goes out raw and the run repeats it), or 3 long
    when it opens a scanline with zeros (the implicit starting value);
    everything else is raw bytes, at most 15 to a segment.
    """
    size = data.size
    change = np.empty(size, dtype=np.bool_)
    change[0] = True
    np.not_equal(data[1:], data[:-1], out=change[1:])
    change |= line_start
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=size)
    values = data[starts]
    run_opens_line = line_start[starts]
    closes_line = np.empty(starts.size, dtype=np.bool_)
    closes_line[:-1] = run_opens_line[1:]
    closes_line[-1] = True

    zero_head = run_opens_line & (values == 0)
    repeated = (lengths >= 4) | (zero_head & (lengths >= 3))
    raw_count = np.where(repeated, np.where(zero_head, 0, 1), lengths)
    repeat_count = lengths - raw_count  # 0 when not repeated

    # A "pair" is raw bytes followed by one repetition: it ends at a repeated
    # run or at the end of a scanline.
    ends = np.flatnonzero(repeated | closes_line)
    pair_first_run = np.empty(ends.size, dtype=np.int64)
    pair_first_run[0] = 0
    pair_first_run[1:] = ends[:-1] + 1
    pair_raw = np.add.reduceat(raw_count, pair_first_run)
    pair_run = repeat_count[ends]

    raw_segments = (pair_raw + 14) // 15
    # The last raw segment carries up to 15 repetitions, never leaving 1 or 2
    # over for a run-only segment (whose low nibble 1 and 2 mean long runs).
    first_run = np.where(pair_raw > 0, np.minimum(pair_run, 15), 0)
    first_run = np.where(
        (pair_raw > 0) & ((pair_run == 16) | (pair_run == 17)), pair_run - 3, first_run
    )
    rest = pair_run - first_run
    run_segments = (rest + 46) // 47
    segments = raw_segments + run_segments

    pair_of_segment = np.repeat(np.arange(ends.size), segments)
    first_segment = np.cumsum(segments) - segments
    index = np.arange(pair_of_segment.size) - first_segment[pair_of_segment]
    raw_in_pair = raw_segments[pair_of_segment]
    is_raw = index < raw_in_pair
    last_raw = index == raw_in_pair - 1
    raw_here = np.where(
        is_raw, np.where(last_raw, pair_raw[pair_of_segment] - 15 * (raw_in_pair - 1), 15), 0
    )
    run_count = np.maximum(run_segments[pair_of_segment], 1)
    rest_here = rest[pair_of_segment]
    run_index = index - raw_in_pair
    run_here = np.where(
        is_raw,
        np.where(last_raw, first_run[pair_of_segment], 0),
        rest_here // run_count + (run_index < rest_here % run_count),
    )
    controls = _control_bytes(raw_here, run_here)

    raw_bytes = np.repeat(values, raw_count)
    control_at = np.arange(controls.size) + np.cumsum(raw_here) - raw_here
    out = np.empty(controls.size + raw_bytes.size, dtype=np.uint8)
    is_data = np.ones(out.size, dtype=np.bool_)
    is_data[control_at] = False
    out[control_at] = controls
    out[is_data] = raw_bytes

    line_pairs = np.flatnonzero(run_opens_line[pair_first_run])
    return out, control_at[first_segment[line_pairs]]


def _block_planes(frame: U8Array, block: TileBlock) -> U8Array:
    """Red, green and blue planes of every tile, bottom-up: ``(tiles, 3, rows, width)``."""
    pixels = block.pixels(frame)
    return np.ascontiguousarray(pixels[:, ::-1, :, 2::-1].transpose(0, 3, 1, 2))


def encode_planar_tiles(frame: U8Array, blocks: Sequence[TileBlock]) -> list[bytes]:
    """One RLE planar bitmap (FormatHeader RLE|NA) per tile of ``blocks``, in block order.

    ``frame`` is ``(height, width, 4)`` uint8 BGRX; tiles are encoded at
    their padded width (:attr:`TileBlock.padded_width`).
    """
    streams: list[U8Array] = []
    line_lengths: list[int] = []
    for block in blocks:
        if block.count:
            streams.append(zigzag_delta(_block_planes(frame, block)).reshape(-1))
            line_lengths.append(block.padded_width)
    if not streams:
        return []
    data = np.concatenate(streams) if len(streams) > 1 else streams[0]
    line_start = np.zeros(data.size, dtype=np.bool_)
    offset = 0
    for stream, width in zip(streams, line_lengths, strict=True):
        line_start[offset : offset + stream.size : width] = True
        offset += stream.size
    encoded, line_offsets = rle_encode_lines(data, line_start)

    result: list[bytes] = []
    header = bytes((ENCODED_FORMAT_HEADER,))
    line = 0
    tile_starts: list[int] = []
    for block in blocks:
        for _ in range(block.count):
            tile_starts.append(int(line_offsets[line]))
            line += 3 * block.tile_height
    tile_starts.append(encoded.size)
    raw = encoded.tobytes()
    for start, end in itertools.pairwise(tile_starts):
        result.append(header + raw[start:end])
    return result


# -- decoding (reference, for tests) -------------------------------------------


def _rle_plane(r: Reader, width: int, height: int, field: str) -> U8Array:
    """One RLE plane as stored (first scanline absolute, then folded deltas)."""
    out = bytearray()
    for y in range(height):
        x = 0
        last = 0
        while x < width:
            control = r.u8(f"{field}[{y}].controlByte")
            run, raw = control & 0x0F, control >> 4
            if run == 1:
                run, raw = raw + 16, 0
            elif run == 2:
                run, raw = raw + 32, 0
            if x + raw + run > width:
                raise r.error(
                    f"{field}[{y}].controlByte", f"segment overruns the {width}-pixel scanline"
                )
            if raw:
                values = r.raw(raw, f"{field}[{y}].rawValues")
                out += values
                last = values[-1]
            out += bytes((last,)) * run
            x += raw + run
    return np.frombuffer(bytes(out), dtype=np.uint8).reshape(height, width)


def _undelta(stored: U8Array) -> U8Array:
    """Absolute scanlines from the stored first line and folded deltas."""
    deltas = stored.copy()
    folded = stored[1:]
    deltas[1:] = (folded >> 1) ^ (np.uint8(0) - (folded & 1))
    return np.cumsum(deltas, axis=0, dtype=np.uint8)


def decode_planar(data: bytes, width: int, height: int) -> U8Array:
    """Decode a planar bitmap into ``(height, width, 4)`` BGRA (A 0xFF without an alpha plane).

    Colour loss reduction and chroma subsampling (YCoCg) are refused as
    unsupported. Raises :class:`~rdscard.errors.ProtocolError` on any
    malformed input.
    """
    r = Reader(data, PDU)
    if not (0 < width <= 8192 and 0 < height <= 8192):
        raise r.error("width", f"bitmap size {width}x{height} is out of range")
    header = r.u8("formatHeader")
    if header & 0xC0:
        raise r.error("formatHeader", "reserved bits are set")
    if header & (FORMAT_HEADER_CLL_MASK | FORMAT_HEADER_CS):
        raise r.error(
            "formatHeader", "colour loss reduction and chroma subsampling are not supported"
        )
    names = ["AlphaPlane"] if not header & FORMAT_HEADER_NA else []
    names += ["RedPlane", "GreenPlane", "BluePlane"]
    planes: dict[str, U8Array] = {}
    for name in names:
        if header & FORMAT_HEADER_RLE:
            planes[name] = _undelta(_rle_plane(r, width, height, name))
        else:
            raw = r.raw(width * height, name)
            planes[name] = np.frombuffer(raw, dtype=np.uint8).reshape(height, width)
    if not header & FORMAT_HEADER_RLE and r.remaining:
        r.skip(1, "Pad")
    r.expect_end()
    alpha = planes.get("AlphaPlane", np.full((height, width), 0xFF, dtype=np.uint8))
    bottom_up = np.stack(
        [planes["BluePlane"], planes["GreenPlane"], planes["RedPlane"], alpha], axis=-1
    )
    return np.ascontiguousarray(bottom_up[::-1])
