"""Compressed bitmap updates: RDP 6.0 planar (MS-RDPEGDI 2.2.2.5.1, 3.1.9) and
interleaved RLE (MS-RDPBCGR 2.2.9.1.1.3.1.2.4), their decoders and the PDUs."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.codec import freerdp, interleaved, planar
from rdscard.codec.tiles import tile_blocks
from rdscard.errors import ProtocolError
from rdscard.pdu.bitmap import BitmapDataFlags, Rect, decode_bitmap_update
from rdscard.pdu.bitmap_codec import bitmap_pixels, encode_compressed_updates
from rdscard.pdu.fastpath_output import FastPathReassembler, FastPathUpdatePdu

U8 = np.uint8


def bgrx(rows: list[list[tuple[int, int, int]]]) -> np.ndarray:
    """A frame from rows of (R, G, B)."""
    frame = np.zeros((len(rows), len(rows[0]), 4), dtype=U8)
    for y, row in enumerate(rows):
        for x, (red, green, blue) in enumerate(row):
            frame[y, x] = (blue, green, red, 0)
    return frame


RED, BLUE = (255, 0, 0), (0, 0, 255)
#: A 4x2 frame: the top row red, the bottom row blue.
TWO_ROWS = bgrx([[RED] * 4, [BLUE] * 4])

# The planar form of TWO_ROWS, scanlines bottom-up (3.1.9.2):
PLANAR_TWO_ROWS = bytes(
    [
        0x30,  # FormatHeader: RLE | NA (no alpha plane)
        # red plane: the blue row is 00 00 00 00, a run of 4 zeros from the
        # implicit start value; the red row's delta +255 wraps to -1, folded 01
        0x04,  # cRawBytes 0, nRunLength 4
        0x13, 0x01,  # cRawBytes 1 (01), nRunLength 3
        # green plane: zeros, then zero deltas
        0x04,
        0x04,
        # blue plane: FF FF FF FF, then deltas -255 = +1 (wrapped), folded 02
        0x13, 0xFF,
        0x13, 0x02,
    ]
)  # fmt: skip

# The interleaved 16 bpp form of TWO_ROWS (RGB565: blue 0x001F, red 0xF800):
INTERLEAVED_TWO_ROWS = bytes(
    [
        0x64, 0x1F, 0x00,  # REGULAR_COLOR_RUN of 4, pixel 0x001F (bottom row first)
        0x64, 0x00, 0xF8,  # REGULAR_COLOR_RUN of 4, pixel 0xF800
    ]
)  # fmt: skip


def blocks_of(frame: np.ndarray) -> list:  # type: ignore[type-arg]
    return tile_blocks(Rect(0, 0, frame.shape[1], frame.shape[0]), 64)


def test_planar_example_byte_exact() -> None:
    assert planar.encode_planar_tiles(TWO_ROWS, blocks_of(TWO_ROWS)) == [PLANAR_TWO_ROWS]
    decoded = planar.decode_planar(PLANAR_TWO_ROWS, 4, 2)
    assert (decoded[..., :3] == TWO_ROWS[..., :3]).all()
    assert (decoded[..., 3] == 0xFF).all()


def test_planar_long_runs_use_the_extended_control_bytes() -> None:
    frame = np.zeros((1, 64, 4), dtype=U8)
    frame[0, 0, 2] = 7  # red: 07 then 63 zeros; green and blue: 64 zeros
    frame[0, 45:, 1] = 5  # green: 45 zeros then 19 fives
    (tile,) = planar.encode_planar_tiles(frame, blocks_of(frame))
    assert tile == bytes(
        [
            0x30,
            # red: raw 07 00 with 15 repeats of 00, then a run-only segment
            # of 47 (nRunLength 2: 32 + cRawBytes 15)
            0x2F, 0x07, 0x00,
            0xF2,
            # green: 45 zeros from the start value (32 + 13), then raw 05 with
            # 15 repeats, then 3 more
            0xD2,
            0x1F, 0x05,
            0x03,
            # blue: 64 zeros as 32 + 32
            0x02, 0x02,
        ]
    )  # fmt: skip
    assert (planar.decode_planar(tile, 64, 1)[..., :3] == frame[..., :3]).all()


def test_interleaved_example_byte_exact() -> None:
    tiles = interleaved.encode_interleaved_tiles(TWO_ROWS, blocks_of(TWO_ROWS), 16)
    assert tiles == [INTERLEAVED_TWO_ROWS]
    values = interleaved.decode_interleaved(INTERLEAVED_TWO_ROWS, 4, 2, 16)
    assert values.tolist() == [[0xF800] * 4, [0x001F] * 4]


def test_interleaved_background_run_copies_the_scanline_above() -> None:
    frame = bgrx([[BLUE] * 4, [BLUE] * 4])
    tiles = interleaved.encode_interleaved_tiles(frame, blocks_of(frame), 16)
    assert tiles == [bytes([0x64, 0x1F, 0x00, 0x04])]  # colour run, then REGULAR_BG_RUN of 4


def test_interleaved_decoder_inserts_a_foreground_pixel_between_background_runs() -> None:
    # Second scanline: BG run 2, BG run 2 -> the second starts with above ^ white.
    data = bytes([0x64, 0x1F, 0x00, 0x02, 0x02])
    values = interleaved.decode_interleaved(data, 4, 2, 16)
    assert values[0].tolist() == [0x001F, 0x001F, 0x001F ^ 0xFFFF, 0x001F]


def test_interleaved_decoder_special_orders() -> None:
    # White, black, then SPECIAL_FGBG_1 on the next scanline (mask 0x03: two fg pixels).
    data = bytes([0xFD, 0xFE, 0x62, 0x00, 0x00, 0xF9])
    values = interleaved.decode_interleaved(data, 4, 3, 16)
    assert values[-1].tolist() == [0xFFFF, 0x0000, 0, 0]
    assert values[-2].tolist() == [0xFFFF ^ 0xFFFF, 0x0000 ^ 0xFFFF, 0, 0]


# -- the PDUs ------------------------------------------------------------------


def paint(pdus: list[bytes], height: int, width: int) -> tuple[np.ndarray, list]:  # type: ignore[type-arg]
    """What a client shows after ``pdus``, and the rectangles received."""
    canvas = np.zeros((height, width, 4), dtype=U8)
    reassembler = FastPathReassembler()
    received = []
    for pdu in pdus:
        for update in FastPathUpdatePdu.decode(pdu).updates:
            whole = reassembler.add(update)
            if whole is None:
                continue
            for bitmap in decode_bitmap_update(whole).rectangles:
                received.append(bitmap)
                pixels = bitmap_pixels(bitmap)
                h = bitmap.dest_bottom - bitmap.dest_top + 1
                w = bitmap.dest_right - bitmap.dest_left + 1
                canvas[
                    bitmap.dest_top : bitmap.dest_top + h, bitmap.dest_left : bitmap.dest_left + w
                ] = pixels[:h, :w]
    return canvas, received


def expected(frame: np.ndarray, bpp: int) -> np.ndarray:  # type: ignore[type-arg]
    """The frame as a client shows it at ``bpp``."""
    if bpp == 32:
        return frame[..., :3]
    from rdscard.pdu.bitmap_codec import _widen

    raw = interleaved.pixel_bytes(frame, bpp)
    return _widen(raw, bpp)[..., :3]


ENCODERS = ["numpy", "auto"]


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("bpp", [15, 16, 24, 32])
@pytest.mark.parametrize("header", [True, False])
def test_desktop_like_frame_round_trips(encoder: str, bpp: int, header: bool) -> None:
    rng = np.random.default_rng(bpp)
    frame = np.full((150, 201, 4), 200, dtype=U8)
    frame[20:90, 30:170] = 255
    frame[40:45, 40:150, :3] = rng.integers(0, 256, (5, 110, 3), dtype=U8)
    frame[100:, :, 0] = np.arange(201, dtype=U8)[None, :]
    pdus = encode_compressed_updates(
        frame,
        None,
        bpp,
        compression_header=header,
        encoder=encoder,  # type: ignore[arg-type]
    )
    canvas, received = paint(pdus, 150, 201)
    assert (canvas[..., :3] == expected(frame, bpp)).all()
    compressed = [b for b in received if b.flags & BitmapDataFlags.BITMAP_COMPRESSION]
    assert compressed, "a flat frame compresses"
    for bitmap in compressed:
        assert bitmap.width % 4 == 0 and bitmap.width <= 64 and bitmap.height <= 64
        has_no_header = bool(bitmap.flags & BitmapDataFlags.NO_BITMAP_COMPRESSION_HDR)
        assert has_no_header is not header
    assert sum(map(len, pdus)) < 150 * 204 * ((bpp + 7) // 8) // 2


@pytest.mark.parametrize("bpp", [16, 24])
def test_noise_goes_uncompressed(bpp: int) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=U8)
    canvas, received = paint(encode_compressed_updates(frame, None, bpp), 64, 64)
    assert [b.flags for b in received] == [BitmapDataFlags(0)]
    assert (canvas[..., :3] == expected(frame, bpp)).all()


def test_planar_noise_still_saves_the_unused_byte() -> None:
    # Planar leaves out the X byte, so even noise beats 32 bpp raw.
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=U8)
    _canvas, received = paint(encode_compressed_updates(frame, None, 32), 64, 64)
    assert [b.flags for b in received] == [BitmapDataFlags.BITMAP_COMPRESSION]


def test_rects_are_clipped_and_tiled() -> None:
    frame = np.zeros((100, 130, 4), dtype=U8)
    pdus = encode_compressed_updates(frame, [Rect(-5, 90, 70, 120), Rect(200, 0, 300, 5)], 32)
    _canvas, received = paint(pdus, 100, 130)
    boxes = [(b.dest_left, b.dest_top, b.dest_right, b.dest_bottom) for b in received]
    assert boxes == [(0, 90, 63, 99), (64, 90, 69, 99)]


def test_a_captured_rectangle_lands_at_its_origin() -> None:
    rng = np.random.default_rng(7)
    part = np.zeros((20, 30, 4), dtype=U8)
    part[5:9, 3:25, :3] = rng.integers(0, 256, (4, 22, 3), dtype=U8)
    pdus = encode_compressed_updates(part, None, 32, origin=(100, 50))
    canvas, received = paint(pdus, 120, 200)
    assert min(b.dest_left for b in received) == 100 and min(b.dest_top for b in received) == 50
    assert (canvas[50:70, 100:130, :3] == part[..., :3]).all()
    assert not canvas[:50].any() and not canvas[:, :100].any()


@pytest.mark.parametrize("bpp", [16, 32])
def test_pdu_size_limit_and_fragmentation(bpp: int) -> None:
    frame = np.random.default_rng(1).integers(0, 256, (70, 90, 4), dtype=U8)
    frame[:30] = 9
    pdus = encode_compressed_updates(frame, None, bpp, max_pdu_size=300)
    assert all(len(pdu) <= 300 for pdu in pdus)
    assert (paint(pdus, 70, 90)[0][..., :3] == expected(frame, bpp)).all()
    fragmented = encode_compressed_updates(
        frame, None, bpp, max_pdu_size=300, max_request_size=0x10000
    )
    assert all(len(pdu) <= 300 for pdu in fragmented)
    assert (paint(fragmented, 70, 90)[0][..., :3] == expected(frame, bpp)).all()


def test_invalid_arguments() -> None:
    frame = np.zeros((4, 4, 4), dtype=U8)
    with pytest.raises(ValueError):
        encode_compressed_updates(frame, None, 8)
    with pytest.raises(ValueError):
        encode_compressed_updates(frame[:, :, :3].copy(), None, 32)
    with pytest.raises(ValueError):
        encode_compressed_updates(frame[:, ::2], None, 32)
    with pytest.raises(ValueError):
        encode_compressed_updates(frame, None, 32, tile=128)


# -- properties ----------------------------------------------------------------

palette_frames = st.builds(
    lambda h, w, colours, seed: (
        np.random.default_rng(seed).choice(np.array(colours, dtype=U8), size=(h, w)).astype(U8)
    ),
    st.integers(1, 40),
    st.integers(1, 70),
    st.lists(st.tuples(*[st.integers(0, 255)] * 3, st.just(0)), min_size=1, max_size=4),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=60, deadline=None)
@given(palette_frames, st.sampled_from([15, 16, 24, 32]), st.sampled_from(ENCODERS))
def test_round_trip_property(frame: np.ndarray, bpp: int, encoder: str) -> None:  # type: ignore[type-arg]
    frame = np.ascontiguousarray(frame)
    height, width = frame.shape[:2]
    pdus = encode_compressed_updates(frame, None, bpp, encoder=encoder)  # type: ignore[arg-type]
    assert (paint(pdus, height, width)[0][..., :3] == expected(frame, bpp)).all()


@settings(max_examples=40, deadline=None)
@given(palette_frames)
def test_numpy_planar_matches_freerdp_decoder(frame: np.ndarray) -> None:  # type: ignore[type-arg]
    codecs = freerdp.load()
    if codecs is None:
        pytest.skip("libfreerdp2 is not installed")
    frame = np.ascontiguousarray(frame)
    blocks = blocks_of(frame)
    rects = [(rect, block.padded_width) for block in blocks for rect in block.rects()]
    tiles = planar.encode_planar_tiles(frame, blocks)
    for (rect, width), tile in zip(rects, tiles, strict=True):
        decoded = codecs.planar_decompress(tile, width, rect.height)
        assert decoded is not None
        shown = frame[rect.top : rect.bottom, rect.left : rect.right, :3]
        assert (decoded[:, : rect.width, :3] == shown).all()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(1, 9), st.integers(1, 9))
def test_planar_decoder_raises_only_protocol_error(data: bytes, width: int, height: int) -> None:
    with contextlib.suppress(ProtocolError):
        planar.decode_planar(data, width, height)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(1, 9), st.integers(1, 9), st.sampled_from([15, 16, 24]))
def test_interleaved_decoder_raises_only_protocol_error(
    data: bytes, width: int, height: int, bpp: int
) -> None:
    with contextlib.suppress(ProtocolError):
        interleaved.decode_interleaved(data, width, height, bpp)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 255), st.booleans())
def test_corrupted_planar_bitmaps_raise_protocol_error(
    cut: int, value: int, truncate: bool
) -> None:
    frame = np.zeros((20, 20, 4), dtype=U8)
    frame[5:9, 3:17] = 180
    (tile,) = planar.encode_planar_tiles(frame, blocks_of(frame))
    if truncate:
        data = tile[: cut % len(tile)]
    else:
        position = cut % len(tile)
        data = tile[:position] + bytes([value]) + tile[position + 1 :]
    with contextlib.suppress(ProtocolError):
        planar.decode_planar(data, 20, 20)
