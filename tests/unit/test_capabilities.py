"""Capability sets (MS-RDPBCGR 2.2.7)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader
from rdscard.pdu.capabilities import (
    KNOWN_SETS,
    BitmapCacheCapabilitySet,
    BitmapCacheHostSupportCapabilitySet,
    BitmapCacheRev2CapabilitySet,
    BitmapCapabilitySet,
    BitmapCodec,
    BitmapCodecsCapabilitySet,
    BrushCapabilitySet,
    CapabilitySet,
    CapabilitySetType,
    ColorCacheCapabilitySet,
    ControlCapabilitySet,
    FontCapabilitySet,
    FrameAcknowledgeCapabilitySet,
    GeneralCapabilitySet,
    GeneralExtraFlag,
    GlyphCacheCapabilitySet,
    InputCapabilitySet,
    InputFlag,
    LargePointerCapabilitySet,
    MultifragmentUpdateCapabilitySet,
    OffscreenBitmapCacheCapabilitySet,
    OrderCapabilitySet,
    PointerCapabilitySet,
    RawCapabilitySet,
    ShareCapabilitySet,
    SoundCapabilitySet,
    SurfaceCommandsCapabilitySet,
    VirtualChannelCapabilitySet,
    WindowActivationCapabilitySet,
    decode_capability_set,
    decode_capability_sets,
    encode_capability_sets,
    find_capability,
)


def decode_one(data: bytes) -> CapabilitySet:
    reader = Reader(data, "test")
    capability = decode_capability_set(reader)
    reader.expect_end()
    return capability


# Sets from the Demand Active / Confirm Active exchange of MS-RDPBCGR 4.1.12 / 4.1.13,
# each with the values it must decode to.
EXAMPLES: list[tuple[str, CapabilitySet]] = [
    (
        # General: OSMAJORTYPE_WINDOWS, OSMINORTYPE_WINDOWS_NT, protocolVersion 0x0200,
        # extraFlags 0x041d, refreshRectSupport 1, suppressOutputSupport 1
        "01001800" "0100" "0300" "0002" "0000" "0000" "1d04" "0000" "0000" "0000" "01" "01",
        GeneralCapabilitySet(1, 3, 0x200, 0, 0, 0x041D, 0, 0, 0, 1, 1),
    ),
    (
        # Bitmap: 24 bpp, 1/4/8 bpp receive, 1280x1024, resize, compression, multirect
        "02001c00" "1800" "0100" "0100" "0100" "0005" "0004" "0000" "0100" "0100" "00" "00"
        "0100" "0000",
        BitmapCapabilitySet(24, 1, 1, 1, 1280, 1024, 0, 1, 1, 0, 0, 1, 0),
    ),
    (
        # Bitmap Cache Rev2: PERSISTENT_KEYS_EXPECTED | ALLOW_CACHE_WAITING_LIST, 3 caches
        "13002800" "0300" "00" "03" "78000000" "78000000" "fb090080" "00000000" "00000000"
        "000000000000000000000000",
        BitmapCacheRev2CapabilitySet(3, 0, 3, 120, 120, 0x800009FB, 0, 0, bytes(12)),
    ),
    ("0a000800" "0600" "0000", ColorCacheCapabilitySet(6, 0)),
    ("07000c00" "0000" "0000" "0000" "0000", WindowActivationCapabilitySet()),
    ("05000c00" "0000" "0000" "0200" "0200", ControlCapabilitySet()),
    ("08000a00" "0100" "1400" "1500", PointerCapabilitySet(1, 20, 21)),
    ("09000800" "ea03" "dce2", ShareCapabilitySet(0x03EA, 0xE2DC)),
    ("0c000800" "0100" "0000", SoundCapabilitySet(1, 0)),
    ("0e000800" "0100" "0000", FontCapabilitySet(1, 0)),
    ("0f000800" "01000000", BrushCapabilitySet(1)),
    ("11000c00" "01000000" "001e" "6400", OffscreenBitmapCacheCapabilitySet(1, 7680, 100)),
    ("14000c00" "01000000" "40060000", VirtualChannelCapabilitySet(1, 1600)),
    ("1200" "0800" "01" "00" "0000", BitmapCacheHostSupportCapabilitySet(1, 0, 0)),
]


@pytest.mark.parametrize(("hex_data", "expected"), EXAMPLES, ids=lambda v: type(v).__name__)
def test_examples(hex_data: str, expected: CapabilitySet) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_one(data) == expected
    assert expected.encode() == data
    assert len(expected) == len(data) == int.from_bytes(data[2:4], "little")


def test_order_set() -> None:
    data = bytes.fromhex(
        "03005800"
        "00000000000000000000000000000000"  # terminalDescriptor
        "00000000"  # pad4octetsA
        "0100" "1400"  # desktopSaveX/YGranularity
        "0000" "0100" "0000" "2200"  # pad2octetsA, maximumOrderLevel, numberFonts, orderFlags
        "0101010101000001010101010000000101010101010101000101010100000000"  # orderSupport
        "0000" "0000" "00000000"  # textFlags, orderSupportExFlags, pad4octetsB
        "40420f00"  # desktopSaveSize = 1000000
        "0000" "0000" "0000" "0000"  # pads, textANSICodePage
    )
    order = decode_one(data)
    assert isinstance(order, OrderCapabilitySet)
    assert order.order_flags == 0x22
    assert order.desktop_save_size == 1_000_000
    assert order.order_support[0] == 1 and order.order_support[5] == 0
    assert order.encode() == data
    assert len(OrderCapabilitySet().encode()) == 88


def test_input_set() -> None:
    data = bytes.fromhex(
        "0d005800" "1500" "0000" "09040000" "04000000" "00000000" "0c000000"
    ) + "ime".encode("utf-16-le") + bytes(58)
    keyboard = decode_one(data)
    assert isinstance(keyboard, InputCapabilitySet)
    assert keyboard.input_flags == (
        InputFlag.INPUT_FLAG_SCANCODES | InputFlag.INPUT_FLAG_MOUSEX | InputFlag.INPUT_FLAG_UNICODE
    )
    assert keyboard.ime_file_name_text == "ime"
    assert keyboard.encode() == data


def test_glyph_cache_set() -> None:
    data = bytes.fromhex(
        "10003400"
        "fe000400fe000400fe000800fe000800fe001000fe002000fe004000fe008000fe000001"
        "40000008"  # ten TS_CACHE_DEFINITION
        "00010001"  # FragCache
        "0300" "0000"  # GLYPH_SUPPORT_ENCODE, pad
    )
    glyphs = decode_one(data)
    assert isinstance(glyphs, GlyphCacheCapabilitySet)
    assert glyphs.cache_definitions[0] == (254, 4)
    assert glyphs.cache_definitions[9] == (64, 2048)
    assert glyphs.frag_cache == 0x01000100
    assert glyphs.encode() == data


def test_bitmap_cache_rev1() -> None:
    data = bytes.fromhex("04002800") + bytes(24) + bytes.fromhex("78000004" "78000010" "51010040")
    cache = decode_one(data)
    assert cache == BitmapCacheCapabilitySet(bytes(24), 120, 1024, 120, 4096, 337, 16384)
    assert cache.encode() == data


def test_optional_tails() -> None:
    short_channel = bytes.fromhex("14000800" "00000000")
    channel = decode_one(short_channel)
    assert channel == VirtualChannelCapabilitySet(0, None)
    assert isinstance(channel, VirtualChannelCapabilitySet) and channel.chunk_size == 1600
    assert channel.encode() == short_channel
    short_pointer = bytes.fromhex("08000800" "0100" "1400")
    assert decode_one(short_pointer) == PointerCapabilitySet(1, 20, None)
    empty_font = bytes.fromhex("0e000400")
    assert decode_one(empty_font) == FontCapabilitySet(None, None)
    old_general = bytes.fromhex("01001600" + "0000" * 9)
    general = decode_one(old_general)
    assert isinstance(general, GeneralCapabilitySet)
    assert general.refresh_rect_support is None
    assert general.encode() == old_general


def test_extra_bytes_in_a_known_set_are_ignored() -> None:
    data = bytes.fromhex("1a000c00" "00002000" "deadbeef")
    assert decode_one(data) == MultifragmentUpdateCapabilitySet(0x200000)


def test_extension_sets() -> None:
    sets: list[CapabilitySet] = [
        MultifragmentUpdateCapabilitySet(0x3F0000),
        LargePointerCapabilitySet(1),
        SurfaceCommandsCapabilitySet(0x52, 0),
        FrameAcknowledgeCapabilitySet(2),
        BitmapCodecsCapabilitySet(
            (
                BitmapCodec(bytes(range(16)), 1, b"\x01\x02\x03"),
                BitmapCodec(bytes(16), 3, b""),
            )
        ),
    ]
    data = encode_capability_sets(sets)
    assert len(data) == 8 + 6 + 12 + 8 + (4 + 1 + 19 + 3 + 19)
    assert decode_capability_sets(Reader(data, "test"), len(sets)) == tuple(sets)


def test_unknown_set_kept_raw() -> None:
    data = bytes.fromhex("99000700" "abcdef")
    raw = decode_one(data)
    assert raw == RawCapabilitySet(0x99, b"\xab\xcd\xef")
    assert raw.encode() == data
    assert repr(raw) == "RawCapabilitySet(type_code=153)"


def test_rail_set_kept_raw() -> None:
    raw = decode_one(bytes.fromhex("17000800" "00000000"))
    assert isinstance(raw, RawCapabilitySet)
    assert raw.capability_set_type == CapabilitySetType.CAPSTYPE_RAIL


def test_server_defaults() -> None:
    general = GeneralCapabilitySet()
    assert general.extra_flags & GeneralExtraFlag.FASTPATH_OUTPUT_SUPPORTED
    assert general.extra_flags & GeneralExtraFlag.NO_BITMAP_COMPRESSION_HDR
    assert len(general.encode()) == 24
    assert len(BitmapCapabilitySet().encode()) == 28
    assert len(VirtualChannelCapabilitySet().encode()) == 12
    assert len(InputCapabilitySet().encode()) == 88
    assert len(PointerCapabilitySet().encode()) == 10


def test_find_capability() -> None:
    sets = (GeneralCapabilitySet(), VirtualChannelCapabilitySet(0, 8000))
    found = find_capability(sets, VirtualChannelCapabilitySet)
    assert found is not None and found.chunk_size == 8000
    assert find_capability(sets, BitmapCapabilitySet) is None


def test_registry_maps_type_codes_to_classes() -> None:
    assert len(KNOWN_SETS) == 23
    for type_code, cls in KNOWN_SETS.items():
        assert type_code == cls.CAPABILITY_SET_TYPE
        assert cls.NAME.startswith("TS_")


@pytest.mark.parametrize(
    ("hex_data", "field"),
    [
        ("0100", "lengthCapability"),
        ("01000300", "lengthCapability"),
        ("01001800" + "00" * 10, "capabilityData"),
        ("01000800" "0000" "0000", "protocolVersion"),
        ("1d000600" "01" "00", "codecGUID"),
        ("1d001800" "01" + "00" * 16 + "01" "0500" "00", "codecProperties"),
        ("14000600" "0000", "flags"),
    ],
)
def test_malformed(hex_data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_one(bytes.fromhex(hex_data))
    assert info.value.field == field


def test_too_many_sets() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_capability_sets(Reader(b"", "test"), 65)
    assert info.value.field == "numberCapabilities"


def test_encoders_check_fixed_sizes() -> None:
    with pytest.raises(ValueError):
        OrderCapabilitySet(terminal_descriptor=b"short").encode()
    with pytest.raises(ValueError):
        BitmapCodecsCapabilitySet((BitmapCodec(b"1", 1),)).encode()


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_capability_sets(Reader(data, "test"), 8)


@given(st.sampled_from(sorted(KNOWN_SETS)), st.binary(max_size=120))
def test_known_types_with_noise(type_code: int, body: bytes) -> None:
    data = type_code.to_bytes(2, "little") + (4 + len(body)).to_bytes(2, "little") + body
    try:
        capability = decode_one(data)
    except ProtocolError:
        return
    assert capability.capability_set_type == type_code
    again = decode_one(capability.encode())
    assert again == capability


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFFFFFF),
)
def test_round_trip_properties(a: int, b: int, c: int, d: int) -> None:
    sets: tuple[CapabilitySet, ...] = (
        GeneralCapabilitySet(extra_flags=a, refresh_rect_support=c, suppress_output_support=c),
        BitmapCapabilitySet(desktop_width=a, desktop_height=b, drawing_flags=c),
        VirtualChannelCapabilitySet(d, d),
        ShareCapabilitySet(a, b),
        SurfaceCommandsCapabilitySet(d, 0),
    )
    data = encode_capability_sets(sets)
    assert decode_capability_sets(Reader(data, "test"), len(sets)) == sets
