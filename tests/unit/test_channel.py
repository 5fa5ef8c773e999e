"""Static virtual channel chunking and reassembly (MS-RDPBCGR 2.2.6.1, 3.1.5.2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.channel import (
    CHANNEL_CHUNK_LENGTH,
    ChannelFlag,
    ChannelPduHeader,
    ChannelReassembler,
    chunk_channel_data,
)

FIRST = ChannelFlag.CHANNEL_FLAG_FIRST
LAST = ChannelFlag.CHANNEL_FLAG_LAST
SHOW = ChannelFlag.CHANNEL_FLAG_SHOW_PROTOCOL

# An rdpdr Server Announce Request (MS-RDPEFS 4.1) in one chunk:
SINGLE_CHUNK = bytes.fromhex(
    "0c000000"  # CHANNEL_PDU_HEADER.length = 12
    "13000000"  # flags = FIRST | LAST | SHOW_PROTOCOL
    "7244"  # RDPDR_CTYP_CORE
    "6e49"  # PAKID_CORE_SERVER_ANNOUNCE
    "0100"  # VersionMajor = 1
    "0c00"  # VersionMinor = 12
    "02000000"  # ClientId = 2
)


def test_single_chunk_byte_exact() -> None:
    payload = SINGLE_CHUNK[8:]
    chunks = chunk_channel_data(payload, CHANNEL_CHUNK_LENGTH, SHOW)
    assert chunks == [SINGLE_CHUNK]
    assert ChannelReassembler().add(SINGLE_CHUNK) == payload


def test_header_codec() -> None:
    header = ChannelPduHeader(12, FIRST | LAST | SHOW)
    assert header.encode() == SINGLE_CHUNK[:8]


def test_three_chunks() -> None:
    data = bytes(range(256)) * 13  # 3328 bytes
    chunks = chunk_channel_data(data, 1600)
    assert [len(c) for c in chunks] == [1608, 1608, 8 + 128]
    flags = [int.from_bytes(c[4:8], "little") for c in chunks]
    assert flags == [FIRST, 0, LAST]
    assert all(int.from_bytes(c[:4], "little") == len(data) for c in chunks)
    reassembler = ChannelReassembler()
    assert reassembler.add(chunks[0]) is None
    assert reassembler.in_progress
    assert reassembler.add(chunks[1]) is None
    assert reassembler.add(chunks[2]) == data
    assert not reassembler.in_progress


def test_empty_message_is_one_chunk() -> None:
    chunks = chunk_channel_data(b"")
    assert chunks == [bytes.fromhex("00000000 03000000")]
    assert ChannelReassembler().add(chunks[0]) == b""


def test_exact_multiple_of_chunk_size() -> None:
    chunks = chunk_channel_data(bytes(3200), 1600)
    assert len(chunks) == 2


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        chunk_channel_data(b"x", 0)


def test_messages_follow_each_other() -> None:
    reassembler = ChannelReassembler()
    for message in (b"a" * 10, b"b" * 5000, b"c"):
        out = None
        for chunk in chunk_channel_data(message, 1600):
            out = reassembler.add(chunk)
        assert out == message


def chunk(length: int, flags: int, data: bytes) -> bytes:
    return ChannelPduHeader(length, ChannelFlag(flags)).encode() + data


def test_too_large() -> None:
    reassembler = ChannelReassembler(max_size=1024)
    with pytest.raises(ProtocolError) as info:
        reassembler.add(chunk(1025, FIRST, b"x"))
    assert (info.value.pdu, info.value.field) == ("Virtual Channel PDU", "length")


def test_default_limit_is_16_mib() -> None:
    with pytest.raises(ProtocolError):
        ChannelReassembler().add(chunk(16 * 1024 * 1024 + 1, FIRST, b""))


def test_first_in_the_middle() -> None:
    reassembler = ChannelReassembler()
    reassembler.add(chunk(10, FIRST, b"12345"))
    with pytest.raises(ProtocolError) as info:
        reassembler.add(chunk(10, FIRST, b"12345"))
    assert info.value.field == "flags"
    assert not reassembler.in_progress


def test_continuation_without_first() -> None:
    with pytest.raises(ProtocolError) as info:
        ChannelReassembler().add(chunk(10, LAST, b"12345"))
    assert info.value.field == "flags"


def test_length_changes_mid_message() -> None:
    reassembler = ChannelReassembler()
    reassembler.add(chunk(10, FIRST, b"12345"))
    with pytest.raises(ProtocolError) as info:
        reassembler.add(chunk(11, LAST, b"12345"))
    assert info.value.field == "length"


def test_more_data_than_announced() -> None:
    reassembler = ChannelReassembler()
    reassembler.add(chunk(6, FIRST, b"12345"))
    with pytest.raises(ProtocolError):
        reassembler.add(chunk(6, LAST, b"67"))


def test_last_with_data_missing() -> None:
    reassembler = ChannelReassembler()
    reassembler.add(chunk(10, FIRST, b"12345"))
    with pytest.raises(ProtocolError) as info:
        reassembler.add(chunk(10, LAST, b"67"))
    assert info.value.field == "length"


def test_compressed_refused() -> None:
    with pytest.raises(ProtocolError):
        ChannelReassembler().add(
            chunk(1, FIRST | LAST | ChannelFlag.CHANNEL_PACKET_COMPRESSED, b"x")
        )


def test_truncated_header() -> None:
    with pytest.raises(ProtocolError):
        ChannelReassembler().add(b"\x01\x00\x00\x00\x03\x00")


def test_recovers_after_an_error() -> None:
    reassembler = ChannelReassembler()
    reassembler.add(chunk(10, FIRST, b"12345"))
    with pytest.raises(ProtocolError):
        reassembler.add(chunk(99, LAST, b"12345"))
    assert reassembler.add(chunk(2, FIRST | LAST, b"ok")) == b"ok"


@given(st.binary(max_size=5000), st.integers(1, 2000))
def test_chunk_then_reassemble(data: bytes, size: int) -> None:
    chunks = chunk_channel_data(data, size)
    assert all(len(c) <= size + 8 for c in chunks)
    reassembler = ChannelReassembler()
    results = [reassembler.add(c) for c in chunks]
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] == data


@given(st.lists(st.binary(max_size=40), max_size=6))
def test_arbitrary_chunks_raise_only_protocol_error(chunks: list[bytes]) -> None:
    reassembler = ChannelReassembler(max_size=64)
    for data in chunks:
        with contextlib.suppress(ProtocolError):
            message = reassembler.add(data)
            assert message is None or len(message) <= 64
