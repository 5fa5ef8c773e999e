"""BER-TLV codec (ISO/IEC 7816-4 5.2) with the SP 800-73-4 examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.tlv import (
    Tlv,
    decode_all,
    encode_all,
    encode_length,
    encode_tag,
    find,
    is_constructed,
    require,
    tlv,
)

# SP 800-73-4 Part 1 3.3.2 Discovery Object, PIV PIN only (PIN usage policy 40 00).
DISCOVERY = bytes.fromhex(
    "7E 12"  # Discovery Object template, 18 bytes
    " 4F 0B A0 00 00 03 08 00 00 10 00 01 00"  # PIV Card Application AID
    " 5F 2F 02 40 00"  # PIN usage policy: PIV PIN only
)

# SP 800-73-4 Part 2 3.1.2: GET DATA tag list naming the CHUID.
TAG_LIST_CHUID = bytes.fromhex("5C 03 5F C1 02")


def test_discovery_object_decode() -> None:
    item = Tlv.decode(DISCOVERY)
    assert item.tag == 0x7E and item.constructed
    children = item.children()
    assert [c.tag for c in children] == [0x4F, 0x5F2F]
    assert children[0].value == bytes.fromhex("A0000003080000100001 00".replace(" ", ""))
    assert require(children, 0x5F2F).value == b"\x40\x00"


def test_discovery_object_encode_and_size() -> None:
    inner = [Tlv(0x4F, bytes.fromhex("A00000030800001000 0100".replace(" ", ""))),
             Tlv(0x5F2F, b"\x40\x00")]
    encoded = Tlv(0x7E, encode_all(inner)).encode()
    assert encoded == DISCOVERY
    assert len(encoded) == 20


def test_tag_list_round_trip() -> None:
    item = Tlv.decode(TAG_LIST_CHUID)
    assert item == Tlv(0x5C, bytes.fromhex("5FC102"))
    assert item.encode() == TAG_LIST_CHUID
    assert not item.constructed


@pytest.mark.parametrize(("length", "encoded"), [
    (0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"),
    (0xFFFF, "82FFFF"), (0x10000, "83010000"),
])
def test_length_forms(length: int, encoded: str) -> None:
    assert encode_length(length) == bytes.fromhex(encoded)


def test_long_value_round_trip() -> None:
    value = bytes(range(256)) * 6  # a 1536-byte certificate-sized value
    encoded = tlv(0x53, value)
    assert encoded[:4] == bytes.fromhex("53820600")
    assert Tlv.decode(encoded).value == value


@pytest.mark.parametrize(("tag", "encoded"), [
    (0x53, "53"), (0x7F49, "7F49"), (0x5FC102, "5FC102"), (0x5F2F, "5F2F"), (0, "00"),
])
def test_tag_encoding(tag: int, encoded: str) -> None:
    assert encode_tag(tag) == bytes.fromhex(encoded)


@pytest.mark.parametrize("tag", [0x1F, 0x5380, 0x5FC1, 0x5F8080, 0x5F80808001, -1])
def test_malformed_tags_refused_on_encode(tag: int) -> None:
    with pytest.raises(ValueError):
        encode_tag(tag)


def test_constructed_bit() -> None:
    assert is_constructed(0x7C) and is_constructed(0x61) and not is_constructed(0x53)


@pytest.mark.parametrize(("data", "field"), [
    ("53", "length"),  # no length
    ("53 05 01 02", "length"),  # value shorter than its length
    ("53 80", "length"),  # indefinite form
    ("53 85 00 00 00 00 01", "length"),  # five length bytes
    ("53 82 01", "length"),  # truncated length field
    ("5F", "tag"),  # truncated tag
    ("5F 81 81 81 01 00", "tag"),  # tag longer than four bytes
])
def test_malformed_input(data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_all(bytes.fromhex(data), "Test PDU")
    assert info.value.pdu == "Test PDU"
    assert info.value.field == field


def test_length_limit() -> None:
    data = tlv(0x53, bytes(300))
    with pytest.raises(ProtocolError, match="over the limit"):
        Tlv.decode(data, max_length=256)


def test_item_limit() -> None:
    with pytest.raises(ProtocolError, match="more than 2"):
        decode_all(tlv(0x80) * 3, max_items=2)


def test_single_object_rejects_trailing_bytes() -> None:
    with pytest.raises(ProtocolError, match="trailing"):
        Tlv.decode(tlv(0x80, b"\x01") + b"\x00")


def test_find_and_require() -> None:
    items = decode_all(tlv(0x80, b"a") + tlv(0x81, b"b") + tlv(0x80, b"c"))
    assert find(items, 0x80) == Tlv(0x80, b"a")
    assert find(items, 0x82) is None
    with pytest.raises(ProtocolError):
        require(items, 0x82)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    try:
        items = decode_all(data)
    except ProtocolError:
        return
    assert sum(len(i.encode()) for i in items) <= len(data)


_tags = st.sampled_from([0x4F, 0x53, 0x5C, 0x7C, 0x80, 0x5F2F, 0x7F49, 0x5FC102, 0x5FFF01])


@given(st.lists(st.tuples(_tags, st.binary(max_size=400)), max_size=5))
def test_round_trip(pairs: list[tuple[int, bytes]]) -> None:
    items = [Tlv(t, v) for t, v in pairs]
    assert decode_all(encode_all(items)) == items
