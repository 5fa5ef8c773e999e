"""Fast-path Update PDU and uncompressed bitmap updates (MS-RDPBCGR 2.2.9.1.2, 2.2.9.1.1.3.1.2)."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rdscard.errors import ProtocolError
from rdscard.pdu.bitmap import (
    BitmapData,
    BitmapDataFlags,
    Rect,
    UpdateBitmapData,
    apply_bitmap,
    decode_bitmap_update,
    encode_bitmap_updates,
    pack_bitmap,
    row_stride,
)
from rdscard.pdu.fastpath_output import (
    FastPathFragmentation,
    FastPathReassembler,
    FastPathUpdate,
    FastPathUpdateCode,
    FastPathUpdatePdu,
    encode_fastpath_pdu,
    fragment_update,
    pointer_default_update,
    pointer_null_update,
    single_update_prefix,
    split_fastpath_frames,
    synchronize_update,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def noise(width: int, height: int, seed: int = 1) -> Image.Image:
    data = random.Random(seed).randbytes(width * height * 3)
    return Image.frombytes("RGB", (width, height), data)


def client_view(pdus: list[bytes], size: tuple[int, int], max_size: int = 1 << 20) -> Image.Image:
    """What a client would show after receiving ``pdus`` on a black screen."""
    canvas = Image.new("RGB", size)
    reassembler = FastPathReassembler(max_size)
    for frame in pdus:
        for update in FastPathUpdatePdu.decode(frame).updates:
            whole = reassembler.add(update)
            if whole is not None:
                for bitmap in decode_bitmap_update(whole).rectangles:
                    apply_bitmap(canvas, bitmap)
    return canvas


# -- simple updates ----------------------------------------------------------------


def test_synchronize_update_bytes() -> None:
    assert synchronize_update() == bytes(
        [
            0x00,  # fpOutputHeader: action FASTPATH_OUTPUT_ACTION_FASTPATH, no flags
            0x05,  # length1: 5 bytes
            0x03,  # updateHeader: FASTPATH_UPDATETYPE_SYNCHRONIZE, SINGLE, no compression
            0x00, 0x00,  # size 0
        ]
    )


def test_pointer_updates_bytes() -> None:
    assert pointer_default_update() == bytes([0x00, 0x05, 0x06, 0x00, 0x00])  # PTR_DEFAULT
    assert pointer_null_update() == bytes([0x00, 0x05, 0x05, 0x00, 0x00])  # PTR_NULL


def test_several_updates_in_one_pdu_round_trip() -> None:
    updates = (
        FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_PTR_DEFAULT),
        FastPathUpdate(FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP, b"\x01" * 200),
    )
    frame = encode_fastpath_pdu(*updates)
    assert frame[1:3] == bytes([0x80, len(frame)])  # two-byte length: 1 + 2 + 3 + 3 + 200
    assert len(frame) == 209
    assert FastPathUpdatePdu.decode(frame).updates == updates


@pytest.mark.parametrize("length", [0, 1, 0x7B, 0x7C, 0x7D, 0x7F, 0x80, 0x1000, 0x7FF6])
def test_single_update_prefix_matches_the_layered_encoder(length: int) -> None:
    code = FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP
    data = bytes(range(256)) * (length // 256) + bytes(length % 256)
    expected = encode_fastpath_pdu(FastPathUpdate(code, data))
    assert single_update_prefix(code, length) + data == expected
    assert FastPathUpdatePdu.decode(expected).updates[0].data == data


# -- bitmaps: byte-exact -----------------------------------------------------------

# A 4x2 image, top row red, bottom row blue, as one 32 bpp bitmap update.
BITMAP_4X2_32BPP = bytes(
    [
        0x00,  # fpOutputHeader
        0x3B,  # length1: 59
        0x01,  # updateHeader: FASTPATH_UPDATETYPE_BITMAP, FASTPATH_FRAGMENT_SINGLE
        0x36, 0x00,  # size: 54
        0x01, 0x00,  # updateType: UPDATETYPE_BITMAP
        0x01, 0x00,  # numberRectangles: 1
        0x00, 0x00,  # destLeft 0
        0x00, 0x00,  # destTop 0
        0x03, 0x00,  # destRight 3 (inclusive)
        0x01, 0x00,  # destBottom 1 (inclusive)
        0x04, 0x00,  # width 4
        0x02, 0x00,  # height 2
        0x20, 0x00,  # bitsPerPixel 32
        0x00, 0x00,  # flags: no BITMAP_COMPRESSION
        0x20, 0x00,  # bitmapLength 32
    ]
    + [0xFF, 0x00, 0x00, 0x00] * 4  # bottom row first: blue as B, G, R, X
    + [0x00, 0x00, 0xFF, 0x00] * 4  # then the top row: red
)


def two_rows() -> Image.Image:
    image = Image.new("RGB", (4, 2), BLUE)
    image.paste(RED, (0, 0, 4, 1))
    return image


def test_bitmap_update_encodes_byte_exact() -> None:
    pdus = encode_bitmap_updates(two_rows(), None, 32)
    assert pdus == [BITMAP_4X2_32BPP]
    assert len(pdus[0]) == 59


def test_bitmap_update_decodes_fields() -> None:
    (update,) = FastPathUpdatePdu.decode(BITMAP_4X2_32BPP).updates
    assert update.update_code is FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP
    assert update.fragmentation is FastPathFragmentation.FASTPATH_FRAGMENT_SINGLE
    (bitmap,) = decode_bitmap_update(update).rectangles
    assert (bitmap.dest_left, bitmap.dest_top, bitmap.dest_right, bitmap.dest_bottom) == (
        0, 0, 3, 1,
    )
    assert (bitmap.width, bitmap.height, bitmap.bits_per_pixel) == (4, 2, 32)
    assert bitmap.flags == BitmapDataFlags(0)
    assert len(bitmap.encode()) == bitmap.size == 18 + 32
    assert UpdateBitmapData((bitmap,)).encode() == update.data


@pytest.mark.parametrize(
    ("bpp", "red", "green", "blue"),
    [
        (32, b"\x00\x00\xff\x00", b"\x00\xff\x00\x00", b"\xff\x00\x00\x00"),  # BGRX
        (24, b"\x00\x00\xff", b"\x00\xff\x00", b"\xff\x00\x00"),  # BGR
        (16, b"\x00\xf8", b"\xe0\x07", b"\x1f\x00"),  # RGB565 little-endian
        (15, b"\x00\x7c", b"\xe0\x03", b"\x1f\x00"),  # RGB555 little-endian
    ],
)
def test_pixel_formats(bpp: int, red: bytes, green: bytes, blue: bytes) -> None:
    image = Image.new("RGB", (4, 1))
    for x, colour in enumerate((RED, GREEN, BLUE, (0, 0, 0))):
        image.putpixel((x, 0), colour)
    data = pack_bitmap(image, bpp)
    pixel = len(red)
    assert data[:pixel] == red
    assert data[pixel : 2 * pixel] == green
    assert data[2 * pixel : 3 * pixel] == blue
    assert len(data) == row_stride(4, bpp)


def test_rows_are_bottom_up() -> None:
    data = pack_bitmap(two_rows(), 16)
    assert data[:8] == b"\x1f\x00" * 4  # the bottom (blue) row comes first
    assert data[8:] == b"\x00\xf8" * 4


def test_width_is_padded_to_four_pixels() -> None:
    image = Image.new("RGB", (3, 2), RED)
    (frame,) = encode_bitmap_updates(image, None, 24)
    (bitmap,) = decode_bitmap_update(FastPathUpdatePdu.decode(frame).updates[0]).rectangles
    assert bitmap.width == 4  # padded
    assert bitmap.dest_right == 2  # but only three columns are drawn
    assert len(bitmap.bitmap_data_stream) == 2 * 12
    assert bitmap.bitmap_data_stream[9:12] == b"\x00\x00\x00"  # the padding pixel is black


def test_eight_bpp_is_refused() -> None:
    with pytest.raises(ValueError, match="8 bpp"):
        encode_bitmap_updates(two_rows(), None, 8)


# -- bitmaps: whole screens ----------------------------------------------------------


@pytest.mark.parametrize("bpp", [32, 24])
def test_full_screen_reconstructs_exactly(bpp: int) -> None:
    image = noise(1024, 768)
    pdus = encode_bitmap_updates(image, None, bpp)
    assert all(len(frame) <= 0x7FFF for frame in pdus)
    assert client_view(pdus, image.size) == image


def test_full_screen_32bpp_uses_one_64x64_tile_per_pdu() -> None:
    pdus = encode_bitmap_updates(noise(1024, 768), None, 32)
    assert len(pdus) == (1024 // 64) * (768 // 64)
    for frame in pdus:
        (update,) = FastPathUpdatePdu.decode(frame).updates
        assert update.fragmentation is FastPathFragmentation.FASTPATH_FRAGMENT_SINGLE


def test_sixteen_bpp_packs_several_tiles_per_pdu() -> None:
    pdus = encode_bitmap_updates(noise(1024, 768), None, 16)
    assert len(pdus) < (1024 // 64) * (768 // 64)
    assert all(len(frame) <= 0x7FFF for frame in pdus)


@pytest.mark.parametrize(("bpp", "tolerance"), [(16, (8, 4, 8)), (15, (8, 8, 8))])
def test_high_colour_reconstructs_within_quantisation(
    bpp: int, tolerance: tuple[int, int, int]
) -> None:
    image = noise(256, 128, seed=7)
    view = client_view(encode_bitmap_updates(image, None, bpp), image.size)
    rng = random.Random(3)
    for _ in range(500):
        point = (rng.randrange(256), rng.randrange(128))
        original, shown = image.getpixel(point), view.getpixel(point)
        assert isinstance(original, tuple) and isinstance(shown, tuple)
        for a, b, limit in zip(original, shown, tolerance, strict=True):
            assert abs(a - b) < limit


def test_odd_desktop_size_reconstructs() -> None:
    image = noise(1366, 767, seed=2)
    assert client_view(encode_bitmap_updates(image, None, 32), image.size) == image


def test_only_the_given_rectangles_are_sent() -> None:
    image = noise(300, 200)
    rects = [Rect(10, 20, 75, 90), Rect(250, 150, 400, 400)]  # the second is clipped
    view = client_view(encode_bitmap_updates(image, rects, 32), image.size)
    expected = Image.new("RGB", image.size)
    expected.paste(image.crop((10, 20, 75, 90)), (10, 20))
    expected.paste(image.crop((250, 150, 300, 200)), (250, 150))
    assert view == expected


def test_small_pdu_limit_shrinks_tiles_without_fragmenting() -> None:
    image = noise(200, 100)
    pdus = encode_bitmap_updates(image, None, 32, max_pdu_size=2000)
    assert all(len(frame) <= 2000 for frame in pdus)
    for frame in pdus:
        for update in FastPathUpdatePdu.decode(frame).updates:
            assert update.fragmentation is FastPathFragmentation.FASTPATH_FRAGMENT_SINGLE
    assert client_view(pdus, image.size) == image


def test_fragmentation_only_when_the_client_allows_it() -> None:
    image = noise(128, 128)
    pdus = encode_bitmap_updates(image, None, 32, max_pdu_size=2000, max_request_size=0x10000)
    assert all(len(frame) <= 2000 for frame in pdus)
    kinds = {FastPathUpdatePdu.decode(f).updates[0].fragmentation for f in pdus}
    assert FastPathFragmentation.FASTPATH_FRAGMENT_FIRST in kinds
    assert FastPathFragmentation.FASTPATH_FRAGMENT_NEXT in kinds
    assert FastPathFragmentation.FASTPATH_FRAGMENT_LAST in kinds
    assert client_view(pdus, image.size, max_size=0x10000) == image


def test_fragmented_update_respects_max_request_size() -> None:
    image = noise(128, 128)
    pdus = encode_bitmap_updates(image, None, 32, max_pdu_size=2000, max_request_size=6000)
    reassembler = FastPathReassembler(6000)
    for frame in pdus:
        for update in FastPathUpdatePdu.decode(frame).updates:
            whole = reassembler.add(update)
            assert whole is None or len(whole.data) <= 6000
    assert client_view(pdus, image.size, max_size=6000) == image


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        encode_bitmap_updates(two_rows(), None, 32, max_pdu_size=0x8000)
    with pytest.raises(ValueError):
        encode_bitmap_updates(two_rows(), None, 32, tile=2)


# -- framing and reassembly -----------------------------------------------------------


def test_split_frames_keeps_the_unfinished_rest() -> None:
    frames = [synchronize_update(), BITMAP_4X2_32BPP, pointer_default_update()]
    stream = b"".join(frames)
    assert split_fastpath_frames(stream) == (frames, b"")
    assert split_fastpath_frames(stream[:-2]) == (frames[:2], frames[2][:-2])
    assert split_fastpath_frames(stream[:6]) == (frames[:1], BITMAP_4X2_32BPP[:1])


def test_fragment_update_sequence() -> None:
    code = FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP
    parts = fragment_update(code, bytes(range(10)), 4)
    frag = FastPathFragmentation
    assert [p.fragmentation for p in parts] == [
        frag.FASTPATH_FRAGMENT_FIRST, frag.FASTPATH_FRAGMENT_NEXT, frag.FASTPATH_FRAGMENT_LAST,
    ]
    assert b"".join(p.data for p in parts) == bytes(range(10))
    assert fragment_update(code, b"abc", 4) == [FastPathUpdate(code, b"abc")]


def test_reassembler_rejects_bad_sequences() -> None:
    code = FastPathUpdateCode.FASTPATH_UPDATETYPE_BITMAP
    frag = FastPathFragmentation
    with pytest.raises(ProtocolError):
        FastPathReassembler().add(FastPathUpdate(code, b"x", frag.FASTPATH_FRAGMENT_NEXT))
    reassembler = FastPathReassembler(max_size=5)
    assert reassembler.add(FastPathUpdate(code, b"abc", frag.FASTPATH_FRAGMENT_FIRST)) is None
    with pytest.raises(ProtocolError, match="exceeds"):
        reassembler.add(FastPathUpdate(code, b"def", frag.FASTPATH_FRAGMENT_NEXT))
    other = FastPathReassembler()
    other.add(FastPathUpdate(code, b"abc", frag.FASTPATH_FRAGMENT_FIRST))
    with pytest.raises(ProtocolError):
        other.add(FastPathUpdate(code, b"abc"))


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (bytes([0x80, 0x05, 0x03, 0x00, 0x00]), "fpOutputHeader.flags"),  # encrypted
        (bytes([0x01, 0x05, 0x03, 0x00, 0x00]), "fpOutputHeader.action"),
        (bytes([0x00, 0x06, 0x03, 0x00, 0x00]), "length1"),
        (bytes([0x00, 0x05, 0x07, 0x00, 0x00]), "updateHeader.updateCode"),  # 7 is unused
        (bytes([0x00, 0x06, 0x81, 0x00, 0x00, 0x00]), "updateHeader.compression"),
        (bytes([0x00, 0x05, 0x01, 0x05, 0x00]), "updateData"),  # size 5, nothing follows
        (bytes([0x00, 0x02]), "fpOutputUpdates"),
    ],
)
def test_update_pdu_rejects_malformed(frame: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        FastPathUpdatePdu.decode(frame)
    assert info.value.field == field


def bitmap_fields(**changes: int) -> bytes:
    fields = dict(left=0, top=0, right=3, bottom=1, width=4, height=2, bpp=32, flags=0, length=32)
    fields.update(changes)
    head = b"".join(v.to_bytes(2, "little") for v in fields.values())
    return b"\x01\x00\x01\x00" + head + bytes(fields["length"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bpp": 12}, "rectangles[0].bitsPerPixel"),
        ({"flags": 0x0002}, "rectangles[0].flags"),
        ({"right": 0, "left": 2}, "rectangles[0].destRight"),
        ({"right": 4}, "rectangles[0].width"),  # five columns drawn from a 4-wide bitmap
        ({"length": 31}, "rectangles[0].bitmapLength"),
    ],
)
def test_bitmap_data_rejects_inconsistent(changes: dict[str, int], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        UpdateBitmapData.decode(bitmap_fields(**changes))
    assert info.value.field == field
    assert info.value.pdu == "TS_UPDATE_BITMAP_DATA"


def test_bitmap_data_consistent_fields_decode() -> None:
    (bitmap,) = UpdateBitmapData.decode(bitmap_fields()).rectangles
    assert isinstance(bitmap, BitmapData)
    assert UpdateBitmapData((bitmap,)).encode() == bitmap_fields()


# -- properties ------------------------------------------------------------------------


@given(st.binary(max_size=400))
def test_update_pdu_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        FastPathUpdatePdu.decode(data)


@given(st.binary(max_size=400))
def test_bitmap_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        UpdateBitmapData.decode(b"\x01\x00" + data)


@given(st.binary(max_size=400))
def test_frame_splitter_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        frames, rest = split_fastpath_frames(data)
        assert b"".join(frames) + rest == data


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 99), st.integers(0, 79), st.integers(1, 120), st.integers(1, 90)),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([32, 24]),
    st.integers(4, 80),
)
def test_random_rectangles_round_trip(
    boxes: list[tuple[int, int, int, int]], bpp: int, tile: int
) -> None:
    image = noise(100, 80, seed=5)
    rects = [Rect(x, y, x + w, y + h) for x, y, w, h in boxes]
    view = client_view(encode_bitmap_updates(image, rects, bpp, tile=tile), image.size)
    expected = Image.new("RGB", image.size)
    for rect in rects:
        clipped = rect.clip(*image.size)
        if clipped is not None:
            expected.paste(image.crop(clipped), (clipped.left, clipped.top))
    assert view == expected
