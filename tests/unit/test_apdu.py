"""Command and response APDUs (ISO/IEC 7816-4 5.1) with SP 800-73-4 commands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.apdu import CommandApdu, ResponseApdu, StatusWord, status

# SP 800-73-4 Part 2 3.1.1 SELECT of the PIV AID (case 4 short, Le = 256).
SELECT_PIV = bytes.fromhex(
    "00 A4 04 00"  # CLA INS P1 P2: SELECT by DF name, first occurrence
    " 09"  # Lc
    " A0 00 00 03 08 00 00 10 00"  # PIV AID without version
    " 00"  # Le: 256
)
# SP 800-73-4 Part 2 3.2.1 VERIFY of the PIV PIN "123456" padded with FF (case 3 short).
VERIFY_PIN = bytes.fromhex("00 20 00 80 08 31 32 33 34 35 36 FF FF")
# VERIFY with no data: the PIN status query (case 1).
VERIFY_STATUS = bytes.fromhex("00 20 00 80")
# GET RESPONSE for 256 bytes (case 2 short).
GET_RESPONSE = bytes.fromhex("00 C0 00 00 00")


def test_select_decode() -> None:
    cmd = CommandApdu.decode(SELECT_PIV)
    assert (cmd.cla, cmd.ins, cmd.p1, cmd.p2) == (0x00, 0xA4, 0x04, 0x00)
    assert cmd.data == bytes.fromhex("A00000030800001000")
    assert cmd.le == 256 and not cmd.extended and not cmd.chained


def test_select_encode_round_trip() -> None:
    cmd = CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A00000030800001000"), 256)
    assert cmd.encode() == SELECT_PIV
    assert len(cmd.encode()) == 15
    assert CommandApdu.decode(cmd.encode()) == cmd


def test_verify_case3() -> None:
    cmd = CommandApdu.decode(VERIFY_PIN)
    assert cmd.data == b"123456\xff\xff" and cmd.le is None and cmd.ne == 256
    assert cmd.encode() == VERIFY_PIN


def test_case1_and_case2() -> None:
    assert CommandApdu.decode(VERIFY_STATUS) == CommandApdu(0x00, 0x20, 0x00, 0x80)
    assert CommandApdu(0x00, 0x20, 0x00, 0x80).encode() == VERIFY_STATUS
    get = CommandApdu.decode(GET_RESPONSE)
    assert get.le == 256 and get.data == b""
    assert get.encode() == GET_RESPONSE
    assert CommandApdu.decode(bytes.fromhex("00C0000010")).le == 16


def test_extended_cases() -> None:
    data = bytes(300)
    # case 4E: 00 Lc(2) data Le(2); Le 0000 means 65536
    raw = bytes.fromhex("00 87 07 9A 00 01 2C") + data + bytes.fromhex("00 00")
    cmd = CommandApdu.decode(raw)
    assert cmd.extended and cmd.data == data and cmd.le == 65536
    assert cmd.encode() == raw and len(raw) == 4 + 3 + 300 + 2
    # case 2E
    cmd2 = CommandApdu.decode(bytes.fromhex("00 CB 3F FF 00 10 00"))
    assert cmd2.extended and cmd2.le == 4096 and cmd2.data == b""
    assert cmd2.encode() == bytes.fromhex("00CB3FFF001000")
    # case 3E
    raw3 = bytes.fromhex("00 DB 3F FF 00 00 02 AA BB")
    cmd3 = CommandApdu.decode(raw3)
    assert cmd3.extended and cmd3.data == b"\xaa\xbb" and cmd3.le is None
    assert cmd3.encode() == raw3


def test_long_data_encodes_extended() -> None:
    cmd = CommandApdu(0, 0xDB, 0x3F, 0xFF, bytes(256))
    assert cmd.encode()[4:7] == b"\x00\x01\x00"


def test_chaining_bit() -> None:
    assert CommandApdu.decode(bytes.fromhex("10DB3FFF0101")).chained


@pytest.mark.parametrize(("data", "field"), [
    ("00 A4 04", "P2"),  # short header
    ("00 A4 04 00 05 A0 00", "data"),  # Lc longer than the data
    ("00 A4 04 00 02 A0 00 00 00", "Le"),  # two bytes after the data
    ("00 A4 04 00 00 00", "Lc/Le"),  # truncated extended length
    ("00 A4 04 00 00 00 00 00", "Lc"),  # extended Lc of zero with data
    ("00 A4 04 00 00 00 02 A0 00 00", "Le"),  # one byte after extended data
])
def test_malformed_commands(data: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        CommandApdu.decode(bytes.fromhex(data))
    assert info.value.pdu == "Command APDU" and info.value.field == field


def test_encode_refuses_bad_fields() -> None:
    with pytest.raises(ValueError):
        CommandApdu(0x100, 0, 0, 0).encode()
    with pytest.raises(ValueError):
        CommandApdu(0, 0, 0, 0, le=0).encode()


def test_response() -> None:
    raw = bytes.fromhex("05 04 03 90 00")  # GET VERSION answer: 5.4.3, success
    resp = ResponseApdu.decode(raw)
    assert resp.data == b"\x05\x04\x03" and resp.sw == StatusWord.SUCCESS
    assert (resp.sw1, resp.sw2) == (0x90, 0x00)
    assert resp.encode() == raw and len(resp.encode()) == 5
    assert status(StatusWord.VERIFICATION_FAILED | 2) == bytes.fromhex("63C2")
    with pytest.raises(ProtocolError):
        ResponseApdu.decode(b"\x90")


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    try:
        cmd = CommandApdu.decode(data)
    except ProtocolError:
        return
    assert CommandApdu.decode(cmd.encode()) == cmd


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=70000),
       st.one_of(st.none(), st.integers(1, 65536)), st.booleans())
def test_round_trip(ins: int, p1: int, data: bytes, le: int | None, extended: bool) -> None:
    if len(data) > 65535:
        data = data[:65535]
    cmd = CommandApdu(0x00, ins, p1, 0x00, data, le, extended)
    decoded = CommandApdu.decode(cmd.encode())
    assert decoded.data == data and decoded.le == le and decoded.ins == ins
