"""NDR type serialization version 1 (MS-RPCE 2.2.6): headers, pointers, arrays, strings."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.ndr import (
    COMMON_TYPE_HEADER,
    NdrReader,
    NdrWriter,
    RedirScardContext,
    RedirScardHandle,
    decode_multistring,
    decode_top,
    encode_multistring,
    encode_top,
    open_body,
    serialize,
)

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=40,
)


def test_headers_are_exact_and_pad_to_eight() -> None:
    data = serialize(b"\x01\x02\x03")
    assert data == bytes.fromhex(
        "01100800cccccccc"  # common type header: version 1, little-endian, length 8, filler
        "0800000000000000"  # private header: ObjectBufferLength 8, filler 0
        "0102030000000000"  # the body padded to 8
    )
    assert len(data) == 24
    assert open_body(data, "T") == bytes.fromhex("0102030000000000")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (bytes.fromhex("01100800cccccccd") + bytes(8), "CommonTypeHeader"),
        (bytes.fromhex("01000800cccccccc") + bytes(8), "CommonTypeHeader"),
        (COMMON_TYPE_HEADER + bytes.fromhex("0000000001000000"), "Filler"),
        (COMMON_TYPE_HEADER + bytes.fromhex("0800000000000000") + bytes(16), "ObjectBufferLength"),
        (COMMON_TYPE_HEADER + bytes.fromhex("1000000000000000") + bytes(8), "ObjectBufferLength"),
        (COMMON_TYPE_HEADER + bytes.fromhex("0400000000000000") + bytes(4), "ObjectBufferLength"),
        (COMMON_TYPE_HEADER + bytes.fromhex("0000000100000000"), "ObjectBufferLength"),
        (COMMON_TYPE_HEADER[:5], "CommonTypeHeader"),
    ],
)
def test_bad_headers_are_rejected(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        open_body(data, "Test_Call")
    assert info.value.pdu == "Test_Call"
    assert info.value.field == field


def test_alignment_is_relative_to_the_body() -> None:
    w = NdrWriter()
    w.u8(1)
    w.u16(0x0203)
    w.u8(4)
    w.u32(0x05060708)
    w.align(8)
    assert w.getvalue() == bytes.fromhex("01000302" "04000000" "08070605" "00000000")


def _two_pointers(w: NdrWriter) -> None:
    w.u32(7)
    w.pointer(lambda ww: ww.conformant_bytes(b"abc"))
    w.pointer(None)
    w.pointer(lambda ww: ww.varying_string("Hi", wide=True))


def test_pointers_get_referent_ids_in_order_and_referents_follow_the_structure() -> None:
    data = encode_top(_two_pointers)
    assert data[16:] == bytes.fromhex(
        "07000000"  # a long
        "00000200"  # first pointer: referent id 0x00020000
        "00000000"  # a null pointer takes no id
        "04000200"  # second non-null pointer: 0x00020004
        "03000000" "61626300"  # deferred: conformant array max count 3, "abc", pad
        "03000000" "00000000" "03000000"  # string: max 3, offset 0, actual 3
        "480069000000"  # "Hi" and NUL in UTF-16
        "000000000000"  # pad to 8
    )


def test_nested_referents_are_written_depth_first() -> None:
    def inner(w: NdrWriter) -> None:
        w.u32(0xAA)
        w.pointer(lambda ww: ww.u32(0xCC))

    def outer(w: NdrWriter) -> None:
        w.pointer(inner)
        w.pointer(lambda ww: ww.u32(0xBB))

    body = encode_top(outer)[16:]
    assert body == bytes.fromhex(
        "00000200" "04000200"  # two pointers in the top-level structure
        "aa000000" "08000200"  # first referent, with its own pointer (third id)
        "cc000000"  # ...whose referent comes before the top level's second referent
        "bb000000"
    )

    def read(r: NdrReader):  # type: ignore[no-untyped-def]
        def read_inner(rr: NdrReader):  # type: ignore[no-untyped-def]
            value = rr.u32("a")
            ref = rr.pointer("c", lambda r3: r3.u32("c"))
            return value, ref

        first = r.pointer("first", read_inner)
        second = r.pointer("second", lambda rr: rr.u32("b"))
        return lambda: (first.get()[0], first.get()[1].get(), second.get())  # type: ignore[index]

    assert decode_top(encode_top(outer), "Nested", read) == (0xAA, 0xCC, 0xBB)


def _read_two_pointers(r: NdrReader):  # type: ignore[no-untyped-def]
    value = r.u32("value")
    first = r.pointer("first", lambda rr: rr.conformant_bytes("first", 16))
    null = r.pointer("null", lambda rr: rr.u32("null"))
    text = r.pointer("text", lambda rr: rr.varying_string("text", wide=True))
    return lambda: (value, first.get(), null.get(), text.get())


def test_pointer_round_trip() -> None:
    assert decode_top(encode_top(_two_pointers), "T", _read_two_pointers) == (7, b"abc", None, "Hi")


@pytest.mark.parametrize("referent", ["08000200", "01000000", "d84d0800", "ffffffff"])
def test_any_nonzero_referent_id_is_a_present_pointer(referent: str) -> None:
    # MS-RPCE 2.2.5.3.4.3: a unique pointer's referent id is any non-zero value
    # (rdesktop 1.9 writes 1, 0x00084DD8, the context handle itself...).
    body = bytearray(encode_top(_two_pointers))
    body[16 + 12 : 16 + 16] = bytes.fromhex(referent)  # the second non-null pointer
    assert decode_top(bytes(body), "T", _read_two_pointers) == (7, b"abc", None, "Hi")


def test_required_pointer_rejects_null() -> None:
    def read(r: NdrReader):  # type: ignore[no-untyped-def]
        ref = r.pointer("p", lambda rr: rr.u32("p"), required=True)
        return ref.get

    with pytest.raises(ProtocolError, match="null pointer"):
        decode_top(serialize(bytes(4)), "T", read)


def test_trailing_bytes_beyond_padding_are_rejected() -> None:
    def read(r: NdrReader):  # type: ignore[no-untyped-def]
        value = r.u32("v")
        return lambda: value

    assert decode_top(serialize(b"\x05\0\0\0"), "T", read) == 5
    # FreeRDP 2.x adds one more 8-byte block of padding to an aligned body
    assert decode_top(serialize(b"\x06\0\0\0" + bytes(8)), "T", read) == 6
    with pytest.raises(ProtocolError) as info:
        decode_top(serialize(bytes(20)), "T", read)
    assert info.value.field == "(end)"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("03000000" "01000000" "02000000" "41420000", "offset"),  # offset 1
        ("03000000" "00000000" "02000000" "41420000", "actual count"),  # actual != max
        ("02000000" "00000000" "02000000" "41420000", "NUL"),  # no terminating NUL
        ("00000000" "00000000" "00000000", "NUL"),  # empty, no NUL
        ("03000000" "00000000" "03000000" "41004200", "NUL inside"),  # embedded NUL
        ("00100000" "00000000" "00100000", "limit"),  # 4096 chars, over the 4095 limit
        ("ffffffff" "00000000" "ffffffff", "limit"),
    ],
)
def test_malformed_strings_are_rejected(body: str, reason: str) -> None:
    raw = bytes.fromhex(body)
    r = NdrReader(raw, "S")
    with pytest.raises(ProtocolError) as info:
        r.varying_string("sz", wide=False, limit=0xFFF)
    assert info.value.field == "sz"
    assert reason.split()[0].lower() in info.value.reason.lower()


def test_conformant_count_must_match_and_stay_in_limit() -> None:
    with pytest.raises(ProtocolError, match="does not match"):
        NdrReader(bytes.fromhex("0200000061620000"), "A").conformant_bytes("a", 16, 3)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        NdrReader(bytes.fromhex("1100000000"), "A").conformant_bytes("a", 16)
    with pytest.raises(ProtocolError, match="truncated"):
        NdrReader(bytes.fromhex("0400000061"), "A").conformant_bytes("a", 16)


def test_multistring_ascii_and_wide() -> None:
    # Two reader names, each NUL-terminated, and the final NUL.
    a = encode_multistring(("Virtual PCD 00 00", "Virtual PCD 00 01"), wide=False)
    assert a == b"Virtual PCD 00 00\0Virtual PCD 00 01\0\0"
    w = encode_multistring(["R1"], wide=True)
    assert w == bytes.fromhex("5200 3100 0000 0000".replace(" ", ""))
    assert decode_multistring(a, False, "L", "msz") == ("Virtual PCD 00 00", "Virtual PCD 00 01")
    assert decode_multistring(w, True, "L", "msz") == ("R1",)
    assert encode_multistring((), wide=False) == b"\0\0"
    assert decode_multistring(b"\0\0", False, "L", "msz") == ()
    assert decode_multistring(b"\0", False, "L", "msz") == ()
    assert decode_multistring(b"", True, "L", "msz") == ()


@pytest.mark.parametrize(
    ("data", "wide"),
    [
        (b"abc", False),  # no NUL at all
        (b"abc\0", False),  # a name but no terminator
        (b"a\0\0b\0\0", False),  # data after the terminator
        (b"a\0\0\0", True),  # one name, no final NUL
        (b"a\0\0", True),  # odd length
        (b"\xff\xfe\0\0", False),  # invalid UTF-8
        (bytes.fromhex("00d800000000"), True),  # lone surrogate
    ],
)
def test_malformed_multistrings_are_rejected(data: bytes, wide: bool) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_multistring(data, wide, "ListReaders_Return", "msz")
    assert info.value.pdu == "ListReaders_Return"


@given(st.lists(names, max_size=5), st.booleans())
def test_multistring_round_trip(entries: list[str], wide: bool) -> None:
    assert decode_multistring(encode_multistring(entries, wide), wide, "L", "m") == tuple(entries)


@given(st.binary(max_size=64), st.booleans())
def test_multistring_decoder_raises_only_protocol_errors(data: bytes, wide: bool) -> None:
    with contextlib.suppress(ProtocolError):
        decode_multistring(data, wide, "L", "m")


@given(st.binary(max_size=16), st.binary(max_size=16))
def test_redir_handle_round_trip(context: bytes, handle: bytes) -> None:
    value = RedirScardHandle(RedirScardContext(context), handle)
    data = encode_top(value.write)
    assert decode_top(data, "H", RedirScardHandle.read) == value
    # cbContext, pointer, cbHandle, pointer; then each non-empty array: count and bytes.
    def padded(n: int) -> int:
        return 4 + n + (-n % 4) if n else 0

    body = 16 + padded(len(context)) + padded(len(handle))
    assert len(data) == 16 + body + (-body % 8)


def test_redir_context_bytes_follow_the_structure() -> None:
    handle = RedirScardHandle(RedirScardContext(bytes.fromhex("0102030405060708")), b"\xaa" * 4)
    assert encode_top(handle.write)[16:] == bytes.fromhex(
        "08000000" "00000200"  # cbContext 8, pbContext referent
        "04000000" "04000200"  # cbHandle 4, pbHandle referent
        "08000000" "0102030405060708"  # the context bytes
        "04000000" "aaaaaaaa"  # the handle bytes
        "00000000"  # pad to 8
    )


@pytest.mark.parametrize(
    "body",
    [
        "08000000" "00000000",  # length 8 but a null pointer
        "00000000" "00000200" "00000000",  # length 0 but a pointer
        "11000000" "00000200",  # 17 bytes: over the 16-byte limit
        "04000000" "00000200" "08000000" "0000000000000000",  # array count 8 != 4
    ],
)
def test_inconsistent_contexts_are_rejected(body: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_top(serialize(bytes.fromhex(body)), "Context_Call", RedirScardContext.read)
    assert info.value.field.startswith("Context.")


def test_oversized_context_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        RedirScardContext(bytes(17))
    with pytest.raises(ValueError):
        RedirScardHandle(RedirScardContext(), bytes(17))
