"""Client Info PDU (MS-RDPBCGR 2.2.1.11) and the Basic Security Header around it."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.client_info import (
    AddressFamily,
    ClientInfo,
    CompressionType,
    ExtendedInfo,
    InfoFlag,
    PerformanceFlag,
    TimeZoneInformation,
)
from rdscard.pdu.secure import SecurityFlag, unwrap_basic_security, wrap_basic_security
from rdscard.secret import Secret

# MS-RDPBCGR 4.1.10 Client Info PDU. On the wire it sits under
#   03 00 01 ab            TPKT, length 427
#   02 f0 80               X.224 Data TPDU
#   64 00 06 03 eb 70 81 9c  MCS Send Data Request, initiator 1007, channel 1003
# and a security header (encrypted in the example). The decrypted TS_INFO_PACKET:
SPEC_INFO_PACKET = bytes.fromhex(
    "09040904"  # CodePage = 0x04090409 (en-US)
    "b3430000"  # flags = 0x43b3: MOUSE|DISABLECTRLALTDEL|UNICODE|MAXIMIZESHELL|COMPRESSION
    #             |ENABLEWINDOWSKEY|FORCE_ENCRYPTED_CS_PDU, CompressionTypeMask = 64K
    "0a00"  # cbDomain = 10
    "0c00"  # cbUserName = 12
    "0000"  # cbPassword = 0
    "0000"  # cbAlternateShell = 0
    "0000"  # cbWorkingDir = 0
    "4e0054004400450056000000"  # Domain = "NTDEV" + NUL
    "65006c0074006f006e0073000000"  # UserName = "eltons" + NUL
    "0000"  # Password = NUL
    "0000"  # AlternateShell = NUL
    "0000"  # WorkingDir = NUL
    "0200"  # clientAddressFamily = AF_INET
    "1e00"  # cbClientAddress = 30
    "3100350037002e00350039002e003200340032002e003100350036000000"  # "157.59.242.156"
    "8400"  # cbClientDir = 132
    # clientDir = "C:\depots\w2k3_1\termsrv\newclient\lib\win32\obj\i386\mstscax.dll"
    "43003a005c006400650070006f00740073005c00770032006b0033005f0031005c00740065007200"
    "6d007300720076005c006e006500770063006c00690065006e0074005c006c00690062005c007700"
    "69006e00330032005c006f0062006a005c0069003300380036005c006d0073007400730063006100"
    "78002e0064006c006c000000"
    # clientTimeZone: Bias = 480
    "e0010000"
    # StandardName = "Pacific Standard Time" (64 bytes)
    "500061006300690066006900630020005300740061006e0064006100720064002000540069006d00"
    "650000000000000000000000000000000000000000000000"
    "00000a00000005000200000000000000"  # StandardDate: October, last Sunday, 02:00
    "00000000"  # StandardBias = 0
    # DaylightName = "Pacific Daylight Time" (64 bytes)
    "500061006300690066006900630020004400610079006c0069006700680074002000540069006d00"
    "650000000000000000000000000000000000000000000000"
    "00000400000001000200000000000000"  # DaylightDate: April, first Sunday, 02:00
    "c4ffffff"  # DaylightBias = -60
    "00000000"  # clientSessionId = 0
    "01000000"  # performanceFlags = PERF_DISABLE_WALLPAPER
)


def test_spec_example_decodes() -> None:
    info = ClientInfo.decode(SPEC_INFO_PACKET)
    assert info.code_page == 0x04090409
    assert info.flags & InfoFlag.INFO_UNICODE
    assert info.flags & InfoFlag.INFO_COMPRESSION
    assert info.compression_type == CompressionType.PACKET_COMPR_TYPE_64K
    assert info.domain == "NTDEV"
    assert info.user_name == "eltons"
    assert len(info.password) == 0
    assert info.alternate_shell == "" and info.working_dir == ""
    assert not info.password_is_smart_card_pin
    assert not info.autologon
    extra = info.extra_info
    assert extra is not None
    assert extra.client_address_family == AddressFamily.AF_INET
    assert extra.client_address == "157.59.242.156"
    assert extra.client_dir.endswith("\\i386\\mstscax.dll")
    assert extra.client_time_zone is not None
    assert extra.client_time_zone.bias == 480
    assert extra.client_time_zone.standard_name == "Pacific Standard Time"
    assert extra.client_time_zone.daylight_name == "Pacific Daylight Time"
    assert extra.client_time_zone.daylight_bias == -60
    assert extra.client_session_id == 0
    assert extra.performance_flags == PerformanceFlag.PERF_DISABLE_WALLPAPER
    assert extra.auto_reconnect_cookie is None


def test_spec_example_round_trip_and_size() -> None:
    info = ClientInfo.decode(SPEC_INFO_PACKET)
    encoded = info.encode()
    assert encoded == SPEC_INFO_PACKET
    assert len(encoded) == 398


# The same packet from an ANSI client (INFO_UNICODE clear): one-byte characters
# and one-byte terminators; lengths still exclude the terminator.
ANSI_INFO_PACKET = bytes.fromhex(
    "09040904"  # CodePage
    "a3430000"  # flags = 0x43a3 (no INFO_UNICODE)
    "0500" "0600" "0000" "0000" "0000"  # cbDomain=5 cbUserName=6, others 0
    "4e54444556" "00"  # "NTDEV" NUL
    "656c746f6e73" "00"  # "eltons" NUL
    "00" "00" "00"  # empty Password, AlternateShell, WorkingDir
    "0200" "0f00" "3135372e35392e3234322e31353600"  # AF_INET, "157.59.242.156" NUL
    "0400" "433a5c00"  # cbClientDir = 4, "C:\" NUL
)


def test_ansi_packet() -> None:
    info = ClientInfo.decode(ANSI_INFO_PACKET)
    assert not info.unicode
    assert (info.domain, info.user_name) == ("NTDEV", "eltons")
    assert info.extra_info == ExtendedInfo(AddressFamily.AF_INET, "157.59.242.156", "C:\\")
    assert info.extra_info.client_time_zone is None
    assert info.encode() == ANSI_INFO_PACKET


def smart_card_info(pin: bytes = b"123456") -> ClientInfo:
    return ClientInfo(
        code_page=0x0409,
        flags=InfoFlag.INFO_MOUSE
        | InfoFlag.INFO_UNICODE
        | InfoFlag.INFO_AUTOLOGON
        | InfoFlag.INFO_PASSWORD_IS_SC_PIN
        | InfoFlag.INFO_LOGONNOTIFY,
        domain="",
        user_name="",
        password=Secret(pin),
        extra_info=ExtendedInfo(
            AddressFamily.AF_INET6,
            "::1",
            "C:\\Windows\\System32\\mstscax.dll",
            TimeZoneInformation(bytes(172)),
            0,
            PerformanceFlag.PERF_DISABLE_WALLPAPER,
            bytes(28),
            0,
            0,
            "Pacific Standard Time",
            0,
        ),
    )


def test_smart_card_pin_is_a_secret_and_never_shown() -> None:
    info = ClientInfo.decode(smart_card_info().encode())
    assert info.password_is_smart_card_pin
    assert info.autologon
    assert isinstance(info.password, Secret)
    assert info.password.reveal() == bytearray(b"123456")
    assert "123456" not in repr(info)
    assert "123456" not in str(info)
    assert "auto_reconnect_cookie" not in repr(info.extra_info)


def test_password_is_utf16_on_the_wire_and_utf8_in_the_secret() -> None:
    pin = "pässwörd😀".encode()
    encoded = smart_card_info(pin).encode()
    assert "pässwörd😀".encode("utf-16-le") in encoded
    assert ClientInfo.decode(encoded).password.reveal() == bytearray(pin)


def test_full_tail_round_trip() -> None:
    info = smart_card_info()
    encoded = info.encode()
    decoded = ClientInfo.decode(encoded)
    assert decoded == info
    assert decoded.extra_info is not None
    assert decoded.extra_info.dynamic_dst_time_zone_key_name == "Pacific Standard Time"
    assert decoded.encode() == encoded


def test_tail_fields_may_stop_after_any_field() -> None:
    full = smart_card_info()
    assert full.extra_info is not None
    for present in range(9):
        values = [
            full.extra_info.client_time_zone,
            full.extra_info.client_session_id,
            full.extra_info.performance_flags,
            full.extra_info.auto_reconnect_cookie,
            full.extra_info.reserved1,
            full.extra_info.reserved2,
            full.extra_info.dynamic_dst_time_zone_key_name,
            full.extra_info.dynamic_daylight_time_disabled,
        ]
        values[present:] = [None] * (8 - present)
        extra = ExtendedInfo(AddressFamily.AF_INET, "10.0.0.1", "", *values)  # type: ignore[arg-type]
        info = ClientInfo(flags=InfoFlag.INFO_UNICODE, extra_info=extra)
        assert ClientInfo.decode(info.encode()) == info


def test_without_extended_info() -> None:
    info = ClientInfo(flags=InfoFlag.INFO_UNICODE, user_name="alice", domain="EXAMPLE")
    encoded = info.encode()
    assert len(encoded) == 18 + (14 + 2) + (10 + 2) + 2 + 2 + 2
    assert ClientInfo.decode(encoded) == info


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (SPEC_INFO_PACKET[:3], "CodePage"),
        (SPEC_INFO_PACKET[:17], "cbWorkingDir"),
        (SPEC_INFO_PACKET[:25], "Domain"),
        # cbDomain = 0x0401: over the limit
        (SPEC_INFO_PACKET[:8] + b"\x01\x04" + SPEC_INFO_PACKET[10:], "cbDomain"),
        # cbDomain = 9: odd for a Unicode string
        (SPEC_INFO_PACKET[:8] + b"\x09\x00" + SPEC_INFO_PACKET[10:], "cbDomain"),
        # Domain terminator replaced by "X"
        (SPEC_INFO_PACKET[:28] + b"X\x00" + SPEC_INFO_PACKET[30:], "Domain"),
        # cbClientAddress = 0x00ff: over 80
        (SPEC_INFO_PACKET[:52] + b"\xff\x00" + SPEC_INFO_PACKET[54:], "cbClientAddress"),
        # clientTimeZone cut short
        (SPEC_INFO_PACKET[:300], "clientTimeZone"),
        (SPEC_INFO_PACKET + b"\x00", "cbAutoReconnectCookie"),
    ],
    ids=lambda value: value if isinstance(value, str) else f"{len(value)}B",
)
def test_malformed_input_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ClientInfo.decode(data)
    assert info.value.pdu == "Client Info PDU"
    assert info.value.field.startswith(field)


def test_trailing_bytes_after_the_last_tail_field_are_rejected() -> None:
    encoded = smart_card_info().encode()
    with pytest.raises(ProtocolError) as info:
        ClientInfo.decode(encoded + b"\x00")
    assert info.value.field == "(end)"


def test_invalid_utf16_password_is_rejected() -> None:
    info = ClientInfo(flags=InfoFlag.INFO_UNICODE, password=Secret(b"12"))
    encoded = bytearray(info.encode())
    at = encoded.index(b"1\x002\x00")
    encoded[at : at + 2] = b"\x00\xd8"  # a lone high surrogate
    with pytest.raises(ProtocolError) as error:
        ClientInfo.decode(bytes(encoded))
    assert error.value.field == "Password"


# -- Basic Security Header (MS-RDPBCGR 2.2.8.1.1.2.1) --------------------------

# 4.1.10: "40 00 00 00" in front of the info packet when no encryption is in
# force: flags = SEC_INFO_PKT, flagsHi = 0.
INFO_SECURITY_HEADER = bytes.fromhex("40000000")


def test_security_header_wraps_the_info_packet() -> None:
    pdu = wrap_basic_security(SecurityFlag.SEC_INFO_PKT, SPEC_INFO_PACKET)
    assert pdu[:4] == INFO_SECURITY_HEADER
    flags, body = unwrap_basic_security(pdu)
    assert flags == SecurityFlag.SEC_INFO_PKT
    assert ClientInfo.decode(body) == ClientInfo.decode(SPEC_INFO_PACKET)


def test_security_header_refuses_encryption() -> None:
    with pytest.raises(ProtocolError) as info:
        unwrap_basic_security(bytes.fromhex("48000000") + SPEC_INFO_PACKET)
    assert info.value.field == "flags"
    with pytest.raises(ValueError):
        wrap_basic_security(SecurityFlag.SEC_ENCRYPT, b"")


def test_security_header_truncated() -> None:
    with pytest.raises(ProtocolError):
        unwrap_basic_security(b"\x40\x00\x00")


# -- properties ------------------------------------------------------------------

text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=40
)


@given(
    flags=st.integers(0, 0x03FFFFFF),
    domain=text,
    user=text,
    password=st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
        max_size=60,
    ),
    shell=text,
    address=st.text(alphabet="0123456789abcdef.:", max_size=39),
    session=st.none() | st.integers(0, 0xFFFFFFFF),
)
def test_unicode_round_trip(
    flags: int,
    domain: str,
    user: str,
    password: str,
    shell: str,
    address: str,
    session: int | None,
) -> None:
    flags |= InfoFlag.INFO_UNICODE
    extra = ExtendedInfo(
        AddressFamily.AF_INET,
        address,
        "",
        TimeZoneInformation(bytes(172)) if session is not None else None,
        session,
    )
    info = ClientInfo(
        code_page=0x0409,
        flags=InfoFlag(flags),
        domain=domain,
        user_name=user,
        password=Secret(password.encode()),
        alternate_shell=shell,
        extra_info=extra,
    )
    decoded = ClientInfo.decode(info.encode())
    assert decoded == info
    assert decoded.password.reveal() == bytearray(password.encode())


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        ClientInfo.decode(data)


@given(st.binary(min_size=18, max_size=400))
def test_mutated_spec_example_raises_only_protocol_error(noise: bytes) -> None:
    data = bytearray(SPEC_INFO_PACKET)
    for index, value in enumerate(noise):
        data[(index * 37 + value) % len(data)] = value
    with contextlib.suppress(ProtocolError):
        ClientInfo.decode(bytes(data))


@given(st.binary(max_size=64))
def test_security_header_arbitrary_bytes(data: bytes) -> None:
    try:
        flags, body = unwrap_basic_security(data)
    except ProtocolError:
        return
    assert not flags & SecurityFlag.SEC_ENCRYPT
    assert body == data[4:]
