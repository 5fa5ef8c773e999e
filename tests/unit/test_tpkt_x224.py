"""TPKT framing, fast-path frame lengths and X.224 negotiation (MS-RDPBCGR 2.2.1.1, 2.2.1.2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu import tpkt, x224

# MS-RDPBCGR 4.1.1 Client X.224 Connection Request PDU
CONNECTION_REQUEST = bytes.fromhex(
    "03 00 00 2c"  # TPKT: version 3, reserved, length 44
    "27"  # X.224 length indicator 39
    "e0"  # CR TPDU, credit 0
    "00 00"  # destination reference
    "00 00"  # source reference
    "00"  # class and options
    "43 6f 6f 6b 69 65 3a 20 6d 73 74 73 68 61 73 68"  # "Cookie: mstshash"
    "3d 65 6c 74 6f 6e 73"  # "=eltons"
    "0d 0a"  # cookie terminator
    "01"  # RDP_NEG_REQ::type TYPE_RDP_NEG_REQ
    "00"  # RDP_NEG_REQ::flags
    "08 00"  # RDP_NEG_REQ::length 8
    "00 00 00 00"  # RDP_NEG_REQ::requestedProtocols PROTOCOL_RDP
)

# MS-RDPBCGR 4.1.2 Server X.224 Connection Confirm PDU. The annotation of the
# example says PROTOCOL_RDP, but its bytes select PROTOCOL_SSL (01 00 00 00).
CONNECTION_CONFIRM = bytes.fromhex(
    "03 00 00 13"  # TPKT: length 19
    "0e"  # X.224 length indicator 14
    "d0"  # CC TPDU
    "00 00"  # destination reference
    "12 34"  # source reference 0x1234
    "00"  # class and options
    "02"  # RDP_NEG_RSP::type TYPE_RDP_NEG_RSP
    "00"  # RDP_NEG_RSP::flags
    "08 00"  # RDP_NEG_RSP::length 8
    "01 00 00 00"  # RDP_NEG_RSP::selectedProtocol PROTOCOL_SSL
)

# MS-RDPBCGR 4.1.5 Client MCS Erect Domain Request PDU (TPKT + X.224 Data + MCS)
ERECT_DOMAIN = bytes.fromhex("03 00 00 0c 02 f0 80 04 01 00 01 00")


# -- TPKT -------------------------------------------------------------------


def test_tpkt_unwrap_and_wrap_spec_example() -> None:
    payload = tpkt.unwrap(CONNECTION_REQUEST)
    assert len(payload) == 40
    assert payload[:2] == b"\x27\xe0"
    assert tpkt.wrap(payload) == CONNECTION_REQUEST
    assert tpkt.tpkt_wrap(payload) == CONNECTION_REQUEST


def test_tpkt_unwrap_rejects_bad_version_and_length() -> None:
    with pytest.raises(ProtocolError) as info:
        tpkt.unwrap(b"\x04" + CONNECTION_REQUEST[1:])
    assert info.value.field == "version"
    with pytest.raises(ProtocolError) as info:
        tpkt.unwrap(CONNECTION_REQUEST[:-1])
    assert info.value.field == "length"
    with pytest.raises(ProtocolError):
        tpkt.unwrap(b"\x03\x00\x00\x06\x02\xf0")


def test_tpkt_wrap_refuses_oversized_payload() -> None:
    with pytest.raises(ValueError):
        tpkt.wrap(bytes(0xFFFF - 3))
    assert len(tpkt.wrap(bytes(0xFFFF - 4))) == 0xFFFF


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"", None),
        (b"\x03", None),
        (b"\x03\x00\x00", None),
        (CONNECTION_REQUEST[:4], 44),
        (ERECT_DOMAIN, 12),
        (b"\x03\x00\xff\xff", 0xFFFF),
        (b"\x00", None),  # fast-path header, length not yet known
        (b"\x00\x05", 5),  # 1-byte length
        (b"\x44\x10\xaa", 0x10),  # flags and event count bits do not matter
        (b"\x00\x81", None),  # 2-byte length, second byte missing
        (b"\x00\x81\x00", 0x100),
        (b"\x00\xff\xff", 0x7FFF),  # the 15-bit maximum
    ],
)
def test_next_frame_length(prefix: bytes, expected: int | None) -> None:
    assert tpkt.next_frame_length(prefix) == expected


@pytest.mark.parametrize(
    "prefix",
    [
        b"\x01",  # action bits 1
        b"\x02\x00",  # action bits 2
        b"\x07\x00\x00\x10",  # action bits 3 but not TPKT version 3
        b"\x03\x00\x00\x06",  # TPKT shorter than TPKT + X.224 Data header
        b"\x00\x01",  # fast-path length below its own header
        b"\x00\x80\x02",  # 2-byte form below 3
    ],
)
def test_next_frame_length_rejects_garbage(prefix: bytes) -> None:
    with pytest.raises(ProtocolError):
        tpkt.next_frame_length(prefix)


def test_is_fastpath() -> None:
    assert not tpkt.is_fastpath(CONNECTION_REQUEST)
    assert tpkt.is_fastpath(b"\x44\x05\x00\x00\x00")
    with pytest.raises(ProtocolError):
        tpkt.is_fastpath(b"")


def test_fastpath_wrap_uses_short_and_long_lengths() -> None:
    assert tpkt.fastpath_wrap(0x00, b"\xaa" * 3) == b"\x00\x05" + b"\xaa" * 3
    # 0x7e bytes of body + 2 = 0x80: too long for the short form, 3-byte header.
    long = tpkt.fastpath_wrap(0x80, bytes(0x7E))
    assert long[:3] == b"\x80\x80\x81"
    assert len(long) == 0x81
    assert tpkt.fastpath_unwrap(long) == (0x80, bytes(0x7E))
    with pytest.raises(ValueError):
        tpkt.fastpath_wrap(0x03, b"")
    with pytest.raises(ValueError):
        tpkt.fastpath_wrap(0x00, bytes(0x7FFF))


def test_fastpath_unwrap_rejects_inconsistent_length() -> None:
    with pytest.raises(ProtocolError):
        tpkt.fastpath_unwrap(b"\x00\x05\x00")
    with pytest.raises(ProtocolError):
        tpkt.fastpath_unwrap(b"\x03\x03\x00")


@given(st.binary(max_size=8))
def test_next_frame_length_only_raises_protocol_error(data: bytes) -> None:
    try:
        length = tpkt.next_frame_length(data)
    except ProtocolError:
        return
    if length is not None:
        assert 2 <= length <= 0xFFFF
        # More bytes never change the answer once it is known.
        assert tpkt.next_frame_length(data + b"\x00\x00\x00\x00") == length


@given(st.binary(max_size=0xFFFF - 4))
def test_tpkt_frame_length_matches_wrap(payload: bytes) -> None:
    frame = tpkt.wrap(b"\x02\xf0\x80" + payload[: 0xFFFF - 7])
    assert tpkt.next_frame_length(frame[:4]) == len(frame)
    assert tpkt.unwrap(frame) == frame[4:]


@given(st.integers(0, 0x3F).map(lambda n: n << 2), st.binary(max_size=0x7FFF - 3))
def test_fastpath_frame_round_trip(header: int, body: bytes) -> None:
    frame = tpkt.fastpath_wrap(header, body)
    assert tpkt.is_fastpath(frame)
    assert tpkt.next_frame_length(frame[:4]) == len(frame)
    assert tpkt.fastpath_unwrap(frame) == (header, body)


@given(st.binary(max_size=64))
def test_tpkt_decoders_only_raise_protocol_error(data: bytes) -> None:
    for decode in (tpkt.unwrap, tpkt.fastpath_unwrap):
        with contextlib.suppress(ProtocolError):
            decode(data)


# -- X.224 Connection Request ---------------------------------------------


def test_connection_request_spec_example() -> None:
    request = x224.ConnectionRequest.decode(tpkt.unwrap(CONNECTION_REQUEST))
    assert request.cookie == "eltons"
    assert request.routing_token is None
    assert request.negotiation == x224.NegotiationRequest(x224.Protocol.RDP)
    assert request.requested_protocols == x224.Protocol.RDP
    assert request.correlation_info is None
    encoded = request.encode()
    assert tpkt.wrap(encoded) == CONNECTION_REQUEST
    assert len(encoded) == 40


# Captured from xfreerdp 2.11.7 run with /sec:tls /u:alice.
XFREERDP_CONNECTION_REQUEST = bytes.fromhex(
    "03 00 00 2b 26 e0 00 00 00 00 00"  # TPKT length 43, CR TPDU (LI 38)
    "43 6f 6f 6b 69 65 3a 20 6d 73 74 73 68 61 73 68 3d 61 6c 69 63 65 0d 0a"  # cookie alice
    "01 00 08 00 01 00 00 00"  # RDP_NEG_REQ: PROTOCOL_SSL only
)


def test_xfreerdp_connection_request() -> None:
    assert tpkt.next_frame_length(XFREERDP_CONNECTION_REQUEST[:4]) == 43
    request = x224.ConnectionRequest.decode(tpkt.unwrap(XFREERDP_CONNECTION_REQUEST))
    assert request.cookie == "alice"
    assert request.requested_protocols == x224.Protocol.SSL
    assert tpkt.wrap(request.encode()) == XFREERDP_CONNECTION_REQUEST

def test_connection_request_cookie_in_a_local_code_page() -> None:
    # "Cookie: mstshash=J\xfcrgen" as a client with code page 1252 sends it.
    tpdu = bytes((6 + 17 + 6 + 2, 0xE0, 0, 0, 0, 0, 0)) + b"Cookie: mstshash=J\xfcrgen\r\n"
    request = x224.ConnectionRequest.decode(tpdu)
    assert request.cookie == "J\u00fcrgen"
    assert request.encode() == tpdu

def test_connection_request_without_negotiation_defaults_to_rdp() -> None:
    # A bare CR TPDU (LI 6), as very old clients send it.
    request = x224.ConnectionRequest.decode(bytes.fromhex("06 e0 00 00 00 00 00"))
    assert request.negotiation is None
    assert request.cookie is None
    assert request.requested_protocols == x224.Protocol.RDP


def test_connection_request_xfreerdp_tls_hybrid() -> None:
    # xfreerdp style: cookie, then RDP_NEG_REQ offering SSL | HYBRID | HYBRID_EX.
    data = x224.ConnectionRequest(
        cookie="user",
        negotiation=x224.NegotiationRequest(
            x224.Protocol.SSL | x224.Protocol.HYBRID | x224.Protocol.HYBRID_EX
        ),
    ).encode()
    assert data[:2] == bytes((len(data) - 1, 0xE0))
    assert data.endswith(bytes.fromhex("01 00 08 00 0b 00 00 00"))
    request = x224.ConnectionRequest.decode(data)
    assert request.requested_protocols & x224.Protocol.SSL
    assert request.requested_protocols & x224.Protocol.HYBRID_EX


def test_connection_request_routing_token_and_correlation_info() -> None:
    correlation = x224.CorrelationInfo(bytes(range(0x20, 0x30)))
    request = x224.ConnectionRequest(
        routing_token=b"Cookie: msts=3640205228.15629.0000",
        negotiation=x224.NegotiationRequest(
            x224.Protocol.SSL, x224.NegRequestFlags.CORRELATION_INFO_PRESENT
        ),
        correlation_info=correlation,
    )
    data = request.encode()
    # 7 header + 34 token + 2 CRLF + 8 RDP_NEG_REQ + 36 correlation info
    assert len(data) == 7 + 34 + 2 + 8 + 36
    assert data[-36:] == bytes.fromhex("06 00 24 00") + bytes(range(0x20, 0x30)) + bytes(16)
    decoded = x224.ConnectionRequest.decode(data)
    assert decoded == request
    assert decoded.cookie is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("07 e0 00 00 00 00 00", "lengthIndicator"),  # LI larger than the TPDU
        ("06 d0 00 00 00 00 00", "code"),  # a CC where a CR is expected
        ("06 e0 00 00 00 00 20", "classOptions"),  # class 2
        ("0e e0 00 00 00 00 00 01 00 09 00 00 00 00 00", "rdpNegReq.length"),
        ("0e e0 00 00 00 00 00 02 00 08 00 00 00 00 00", "cookie"),  # no CR LF
        ("0f e0 00 00 00 00 00 01 00 08 00 01 00 00 00 ff", "(end)"),  # trailing byte
        ("0a e0 00 00 00 00 00 01 00 08 00", "rdpNegReq.requestedProtocols"),
    ],
)
def test_connection_request_rejects_malformed(data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        x224.ConnectionRequest.decode(bytes.fromhex(data))
    assert info.value.pdu == "X.224 Connection Request"
    assert info.value.field == field


def test_correlation_info_rejects_reserved_bytes() -> None:
    bad = bytes.fromhex("06 00 24 00") + b"\x00" + bytes(range(1, 16)) + bytes(16)
    neg = bytes.fromhex("01 08 08 00 01 00 00 00")
    tpdu = bytes((6 + 8 + 36, 0xE0, 0, 0, 0, 0, 0)) + neg + bad
    with pytest.raises(ProtocolError) as info:
        x224.ConnectionRequest.decode(tpdu)
    assert info.value.field == "rdpCorrelationInfo.correlationId"


_identifiers = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)


@given(
    _identifiers | st.none(),
    st.integers(0, 0x1F),
    st.integers(0, 0xFF).filter(lambda f: not f & 0x08),
    st.booleans(),
)
def test_connection_request_round_trip(
    cookie: str | None, protocols: int, flags: int, with_negotiation: bool
) -> None:
    negotiation = (
        x224.NegotiationRequest(x224.Protocol(protocols), x224.NegRequestFlags(flags))
        if with_negotiation
        else None
    )
    request = x224.ConnectionRequest(cookie=cookie, negotiation=negotiation)
    data = request.encode()
    assert x224.ConnectionRequest.decode(data) == request
    expected = 7 + (len(cookie) + 19 if cookie else 0) + (8 if with_negotiation else 0)
    assert len(data) == expected


@given(st.binary(max_size=300))
def test_connection_request_decoder_only_raises_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        x224.ConnectionRequest.decode(data)


@given(st.binary(max_size=60))
def test_connection_request_fuzzed_tail_only_raises_protocol_error(tail: bytes) -> None:
    data = bytes((6 + len(tail), 0xE0, 0, 0, 0, 0, 0)) + tail
    with contextlib.suppress(ProtocolError):
        x224.ConnectionRequest.decode(data)


# -- X.224 Connection Confirm ---------------------------------------------


def test_connection_confirm_spec_example() -> None:
    confirm = x224.ConnectionConfirm.decode(tpkt.unwrap(CONNECTION_CONFIRM))
    assert confirm.negotiation == x224.NegotiationResponse(x224.Protocol.SSL)
    assert confirm.src_ref == 0x1234
    built = x224.ConnectionConfirm.selecting(x224.Protocol.SSL, x224.NegResponseFlags(0))
    assert tpkt.wrap(built.encode()) == CONNECTION_CONFIRM
    assert len(built.encode()) == 15


def test_connection_confirm_selecting_defaults_to_extended_client_data() -> None:
    data = x224.ConnectionConfirm.selecting(x224.Protocol.SSL).encode()
    assert data == bytes.fromhex("0e d0 00 00 12 34 00 02 01 08 00 01 00 00 00")


def test_connection_confirm_failure() -> None:
    failure = x224.ConnectionConfirm.failing(x224.FailureCode.HYBRID_REQUIRED_BY_SERVER)
    data = failure.encode()
    assert data == bytes.fromhex(
        "0e d0 00 00 12 34 00"  # CC TPDU
        "03 00 08 00"  # RDP_NEG_FAILURE, flags 0, length 8
        "05 00 00 00"  # HYBRID_REQUIRED_BY_SERVER
    )
    assert x224.ConnectionConfirm.decode(data) == failure


def test_connection_confirm_without_negotiation() -> None:
    confirm = x224.ConnectionConfirm()
    assert confirm.encode() == bytes.fromhex("06 d0 00 00 12 34 00")
    assert x224.ConnectionConfirm.decode(confirm.encode()) == confirm


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("0e d0 00 00 12 34 00 04 00 08 00 01 00 00 00", "rdpNegData.type"),
        ("0e d0 00 00 12 34 00 03 00 08 00 63 00 00 00", "failureCode"),
        ("0e d0 00 00 12 34 00 02 00 0c 00 01 00 00 00", "rdpNegData.length"),
    ],
)
def test_connection_confirm_rejects_malformed(data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        x224.ConnectionConfirm.decode(bytes.fromhex(data))
    assert info.value.field == field


@given(st.binary(max_size=40))
def test_connection_confirm_decoder_only_raises_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        x224.ConnectionConfirm.decode(data)


# -- X.224 Data -------------------------------------------------------------


def test_data_tpdu_wrap_unwrap_spec_example() -> None:
    tpdu = tpkt.unwrap(ERECT_DOMAIN)
    assert x224.unwrap_data(tpdu) == bytes.fromhex("04 01 00 01 00")
    assert x224.wrap_data(bytes.fromhex("04 01 00 01 00")) == tpdu
    assert x224.wrap_x224_data(b"") == b"\x02\xf0\x80"
    assert x224.tpdu_code(tpdu) is x224.TpduCode.DATA
    assert x224.tpdu_code(bytes.fromhex("06 80 00 00 00 00 00")) is x224.TpduCode.DISCONNECT_REQUEST


@pytest.mark.parametrize(
    ("data", "field"),
    [("02 e0 80", "code"), ("03 f0 80", "lengthIndicator"), ("02 f0 00", "eot"), ("02", "code")],
)
def test_data_tpdu_rejects_malformed(data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        x224.unwrap_data(bytes.fromhex(data))
    assert info.value.pdu == "X.224 Data"
    assert info.value.field == field


@given(st.binary(max_size=16))
def test_data_tpdu_decoders_only_raise_protocol_error(data: bytes) -> None:
    for decode in (x224.unwrap_data, x224.tpdu_code):
        with contextlib.suppress(ProtocolError):
            decode(data)
