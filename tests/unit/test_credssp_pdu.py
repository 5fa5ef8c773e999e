"""CredSSP codecs (MS-CSSP 2.2.1): the section 4 smart card example, round trips, properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.credssp import (
    MAX_TS_REQUEST,
    CredType,
    TsCredentials,
    TsCspDataDetail,
    TsRequest,
    TsSmartCardCreds,
    take_smart_card_pin,
    ts_request_length,
)
from rdscard.secret import Secret

# MS-CSSP 4 "Protocol Examples", step 9: an unencrypted TSRequest.authInfo (TSCredentials).
SPEC_EXAMPLE = bytes.fromhex(
    "3082010f"            # TSCredentials SEQUENCE, 271 bytes
    "a003020102"          # [0] credType INTEGER 2 (smart card)
    "a182010604820102"    # [1] credentials: OCTET STRING of 258 bytes
    "3081ff"              # TSSmartCardCreds SEQUENCE, 255 bytes
    "a01a0418" + "6200" * 12 +  # [0] pin: "bbbbbbbbbbbb" (UTF-16LE)
    "a181e0"              # [1] cspData
    "3081dd"              # TSCspDataDetail SEQUENCE, 221 bytes
    "a003020101"          # [0] keySpec 1 (AT_KEYEXCHANGE)
    "a22e042c" + "OMNIKEY CardMan 3x21 0".encode("utf-16-le").hex() +   # [2] readerName
    "a350044e" + "le-MSSmartcardUser-8bda019f-1266--53268".encode("utf-16-le").hex() +  # [3]
    "a4540452" + "Microsoft Base Smart Card Crypto Provider".encode("utf-16-le").hex()  # [4]
)


def test_the_spec_example_decodes_field_by_field() -> None:
    assert len(SPEC_EXAMPLE) == 275  # "Bytes Remaining: 275-275=0"
    creds = TsCredentials.decode(SPEC_EXAMPLE)
    assert creds.cred_type == CredType.SMART_CARD
    card = TsSmartCardCreds.decode(creds.credentials)
    assert bytes(card.pin.reveal()) == b"bbbbbbbbbbbb"
    assert card.csp_data == TsCspDataDetail(
        key_spec=1, card_name=None, reader_name="OMNIKEY CardMan 3x21 0",
        container_name="le-MSSmartcardUser-8bda019f-1266--53268",
        csp_name="Microsoft Base Smart Card Crypto Provider")
    assert card.user_hint is None and card.domain_hint is None


def test_the_spec_example_encodes_byte_for_byte() -> None:
    csp = TsCspDataDetail(1, None, "OMNIKEY CardMan 3x21 0",
                          "le-MSSmartcardUser-8bda019f-1266--53268",
                          "Microsoft Base Smart Card Crypto Provider")
    inner = TsSmartCardCreds(Secret(b"bbbbbbbbbbbb"), csp).encode()
    assert TsCredentials(CredType.SMART_CARD, inner).encode() == SPEC_EXAMPLE


def test_nul_terminated_strings_lose_one_nul() -> None:  # rdesktop's form
    csp = TsCspDataDetail(1, "PIV\0", "Virtual PCD 00 00\0", None, None)
    creds = TsSmartCardCreds(Secret(b"123456"), csp, "alice\0", "EXAMPLE.TEST\0")
    back = TsSmartCardCreds.decode(creds.encode())
    assert (back.csp_data.card_name, back.csp_data.reader_name) == ("PIV", "Virtual PCD 00 00")
    assert (back.user_hint, back.domain_hint) == ("alice", "EXAMPLE.TEST")
    pin_with_nul = TsSmartCardCreds(Secret(b"1234\0"), csp)
    assert bytes(TsSmartCardCreds.decode(pin_with_nul.encode()).pin.reveal()) == b"1234"


def test_ts_request_round_trip_and_framing() -> None:
    request = TsRequest(6, (b"\x60\x01\x00", b"x" * 300), b"auth", b"pk" * 200, 0xC000006D,
                        bytes(range(32)))
    data = request.encode()
    assert TsRequest.decode(data) == request
    assert ts_request_length(data[:1]) is None
    assert ts_request_length(data[:4]) == len(data)
    # errorCode goes out as a signed 32-bit INTEGER, as FreeRDP and Windows read it
    assert bytes.fromhex("a4060204c000006d") in data


def test_a_minimal_version_only_request() -> None:
    assert TsRequest(2).encode() == bytes.fromhex("3005a003020102")
    assert TsRequest.decode(bytes.fromhex("3005a003020102")) == TsRequest(2)


@pytest.mark.parametrize("data, field", [
    (b"\x31\x00", "tag"),                                       # not a SEQUENCE
    (bytes.fromhex("3005a003020102") + b"\x00", "(end)"),       # trailing byte
    (bytes.fromhex("3003a00102"), "version"),                   # truncated
    (bytes.fromhex("3007a00302010204"[:-2]) + b"\xa6\x00", "TSRequest"),  # unknown field
    (bytes.fromhex("3006a00402020002"), "version"),             # non-minimal INTEGER
    (bytes.fromhex("3009a003020106a5020400"), "clientNonce"),   # nonce of 0 bytes
    (bytes.fromhex("3084000000000000"), "length"),              # 4-byte length form
])
def test_malformed_requests_are_protocol_errors(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        TsRequest.decode(data)
    assert field in str(caught.value)


def test_length_limits() -> None:
    with pytest.raises(ProtocolError):
        ts_request_length(b"\x30\x83\x01\x00\x01")  # 65537 bytes announced
    with pytest.raises(ValueError):
        TsRequest(6, (b"x" * MAX_TS_REQUEST,)).encode()
    too_long_pin = TsSmartCardCreds(Secret(b"1" * 200), TsCspDataDetail(1)).encode()
    with pytest.raises(ProtocolError, match="pin"):
        TsSmartCardCreds.decode(too_long_pin)


def test_password_credentials_are_recognised_by_type() -> None:
    creds = TsCredentials(CredType.PASSWORD, b"\x30\x00")
    assert TsCredentials.decode(creds.encode()).cred_type == CredType.PASSWORD


@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    for decode in (TsRequest.decode, TsCredentials.decode, TsSmartCardCreds.decode):
        with contextlib.suppress(ProtocolError):
            decode(data)
    with contextlib.suppress(ProtocolError):
        ts_request_length(data)


@given(st.binary(min_size=1, max_size=300))
def test_mutated_spec_example_never_raises_anything_else(noise: bytes) -> None:
    data = bytearray(SPEC_EXAMPLE)
    for i, b in enumerate(noise[:40]):
        data[(i * 37 + b) % len(data)] ^= b
    try:
        creds = TsCredentials.decode(bytes(data))
        TsSmartCardCreds.decode(creds.credentials).pin.wipe()
    except ProtocolError:
        pass


_text = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",),
                                                   blacklist_characters="\0"), max_size=40))


@given(st.integers(0, 6), st.lists(st.binary(max_size=80), max_size=3), _text, _text,
       st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)),
       st.one_of(st.none(), st.binary(min_size=32, max_size=32)))
def test_ts_request_round_trips(version: int, tokens: list[bytes], auth: str | None,
                                pub: str | None, error: int | None,
                                nonce: bytes | None) -> None:
    request = TsRequest(version, tuple(tokens), auth.encode() if auth is not None else None,
                        pub.encode() if pub is not None else None, error, nonce)
    data = request.encode()
    assert TsRequest.decode(data) == request
    assert ts_request_length(data) == len(data)


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16),
       st.integers(0, 2), _text, _text, _text, _text)
def test_smart_card_creds_round_trip(pin: str, key_spec: int, card: str | None,
                                     reader: str | None, user: str | None,
                                     domain: str | None) -> None:
    creds = TsSmartCardCreds(Secret(pin.encode()), TsCspDataDetail(key_spec, card, reader),
                             user, domain)
    back = TsSmartCardCreds.decode(TsCredentials.decode(
        TsCredentials(2, creds.encode()).encode()).credentials)
    assert back.pin == creds.pin and back.csp_data == creds.csp_data
    assert (back.user_hint, back.domain_hint) == (user, domain)


def test_the_pin_is_taken_out_and_the_rest_decodes_the_same() -> None:
    card = TsSmartCardCreds(Secret(b"58213907"), TsCspDataDetail(1, None, "Virtual PCD 00 00"),
                            "alice", "EXAMPLE")
    plain = TsCredentials(CredType.SMART_CARD, card.encode()).encode()
    pin, rest = take_smart_card_pin(plain)
    assert pin is not None and bytes(pin.reveal()) == b"58213907"
    assert "58213907".encode("utf-16-le") not in rest and len(rest) == len(plain)
    decoded = TsSmartCardCreds.decode(TsCredentials.decode(bytes(rest)).credentials, pin=pin)
    assert decoded.pin is pin
    assert (decoded.csp_data, decoded.user_hint, decoded.domain_hint) == (
        card.csp_data, "alice", "EXAMPLE")


def test_password_credentials_have_no_pin_to_take() -> None:
    plain = TsCredentials(CredType.PASSWORD, b"\x30\x00").encode()
    assert take_smart_card_pin(plain) == (None, bytearray(plain))


@given(st.binary(max_size=300))
def test_taking_a_pin_from_arbitrary_bytes_never_raises(data: bytes) -> None:
    pin, rest = take_smart_card_pin(data)
    assert len(rest) == len(data)
    if pin is not None:
        pin.wipe()
