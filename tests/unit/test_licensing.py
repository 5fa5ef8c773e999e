"""Licensing (MS-RDPBCGR 2.2.1.12): the License Error PDU - Valid Client."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.licensing import (
    BlobType,
    LicenseErrorCode,
    LicenseErrorMessage,
    LicenseMsgType,
    PreambleFlag,
    RawLicensingMessage,
    StateTransition,
    decode_licensing,
    license_error_valid_client,
)
from rdscard.pdu.secure import SecurityFlag, unwrap_basic_security, wrap_basic_security

# MS-RDPBCGR 4.1.11 Server License Error PDU - Valid Client. On the wire:
#   03 00 00 2a            TPKT, length 42
#   02 f0 80               X.224 Data TPDU
#   68 00 01 03 eb 70 1c   MCS Send Data Indication, initiator 1002, channel 1003, 28 bytes
#   88 02 02 03 + 8-byte signature: the example's security header (RC4 encrypted);
# under TLS the header is the 4-byte Basic Security Header "80 00 00 00".
# The decrypted licensing packet:
SPEC_VALID_CLIENT = bytes.fromhex(
    "ff"  # bMsgType = ERROR_ALERT
    "03"  # flags = PREAMBLE_VERSION_3_0
    "1000"  # wMsgSize = 16
    "07000000"  # dwErrorCode = STATUS_VALID_CLIENT
    "02000000"  # dwStateTransition = ST_NO_TRANSITION
    "0400"  # bbErrorInfo.wBlobType = BB_ERROR_BLOB
    "0000"  # bbErrorInfo.wBlobLen = 0
)
BASIC_SECURITY_LICENSE = bytes.fromhex("80000000")  # flags = SEC_LICENSE_PKT, flagsHi = 0


def test_valid_client_is_byte_exact() -> None:
    assert license_error_valid_client() == SPEC_VALID_CLIENT
    assert len(license_error_valid_client()) == 16


def test_valid_client_inside_the_security_header() -> None:
    pdu = wrap_basic_security(SecurityFlag.SEC_LICENSE_PKT, license_error_valid_client())
    assert pdu == BASIC_SECURITY_LICENSE + SPEC_VALID_CLIENT
    flags, body = unwrap_basic_security(pdu)
    assert flags == SecurityFlag.SEC_LICENSE_PKT
    assert body == SPEC_VALID_CLIENT


def test_decode_spec_example() -> None:
    message = decode_licensing(SPEC_VALID_CLIENT)
    assert isinstance(message, LicenseErrorMessage)
    assert message.error_code == LicenseErrorCode.STATUS_VALID_CLIENT
    assert message.state_transition == StateTransition.ST_NO_TRANSITION
    assert message.error_info_blob_type == BlobType.BB_ERROR_BLOB
    assert message.error_info == b""
    assert message.flags == PreambleFlag.PREAMBLE_VERSION_3_0
    assert message.is_valid_client
    assert message.encode() == SPEC_VALID_CLIENT


def test_size_counting_the_security_header_is_accepted() -> None:
    data = SPEC_VALID_CLIENT[:2] + b"\x14\x00" + SPEC_VALID_CLIENT[4:]
    message = decode_licensing(data)
    assert isinstance(message, LicenseErrorMessage) and message.is_valid_client


def test_error_with_blob_round_trip() -> None:
    message = LicenseErrorMessage(
        LicenseErrorCode.ERR_INVALID_CLIENT, StateTransition.ST_TOTAL_ABORT, b"why"
    )
    encoded = message.encode()
    assert len(encoded) == 19
    assert encoded[2:4] == b"\x13\x00"
    decoded = decode_licensing(encoded)
    assert decoded == message
    assert isinstance(decoded, LicenseErrorMessage) and not decoded.is_valid_client


def test_other_messages_are_kept_raw() -> None:
    body = bytes(range(12))
    message = RawLicensingMessage(LicenseMsgType.NEW_LICENSE_REQUEST, 0x83, body)
    encoded = message.encode()
    assert decode_licensing(encoded) == message


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (SPEC_VALID_CLIENT[:3], "wMsgSize"),
        (SPEC_VALID_CLIENT[:2] + b"\x20\x00" + SPEC_VALID_CLIENT[4:], "wMsgSize"),
        (SPEC_VALID_CLIENT[:12] + b"\x04\x00\x05\x00", "bbErrorInfo.blobData"),
        (SPEC_VALID_CLIENT[:2] + b"\x0a\x00" + SPEC_VALID_CLIENT[4:10], "dwStateTransition"),
    ],
    ids=["preamble", "size", "blob", "transition"],
)
def test_malformed(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_licensing(data)
    assert info.value.field == field


def test_trailing_bytes_rejected() -> None:
    data = SPEC_VALID_CLIENT[:2] + b"\x11\x00" + SPEC_VALID_CLIENT[4:] + b"\x00"
    with pytest.raises(ProtocolError) as info:
        decode_licensing(data)
    assert info.value.field == "(end)"


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_licensing(data)
