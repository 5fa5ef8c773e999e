"""Transmit, Control, GetAttrib and SetAttrib (MS-RDPESC 2.2.1.8, 2.2.2.19-2.2.2.22, 2.2.3)."""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.constants import ScardProtocol, ScardReturn
from rdscard.pdu.esc.io import (
    ControlCall,
    ControlReturn,
    GetAttribCall,
    GetAttribReturn,
    SCardIORequest,
    SetAttribCall,
    TransmitCall,
    TransmitReturn,
)
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle

HEADERS = "01100800cccccccc"
CONTEXT = RedirScardContext(bytes.fromhex("0d8b5e2a00000000"))
HANDLE = RedirScardHandle(CONTEXT, bytes.fromhex("6f1c3a0100000000"))
T1 = ScardProtocol.SCARD_PROTOCOL_T1
SELECT_PIV = bytes.fromhex("00a4040009a00000030800001000")
SELECT_PIV_RESPONSE = bytes.fromhex("61114f0600001000010079074f05a0000003089000")

# Transmit_Call of SELECT PIV over T1, no receive PCI, 258 bytes expected.
TRANSMIT_CALL = bytes.fromhex(
    HEADERS + "6000000000000000"  # ObjectBufferLength 96
    "08000000" "00000200"  # hCard.Context
    "08000000" "04000200"  # hCard handle
    "02000000" "00000000" "00000000"  # ioSendPci: T1, no extra bytes, null pointer
    "0e000000" "08000200"  # cbSendLength 14, pbSendBuffer referent
    "00000000"  # pioRecvPci null
    "00000000"  # fpbRecvBufferIsNULL
    "02010000"  # cbRecvLength 258
    "08000000" "0d8b5e2a00000000"  # context bytes
    "08000000" "6f1c3a0100000000"  # handle bytes
    "0e000000" "00a4040009a00000030800001000"  # the APDU
    "000000000000"  # padding to 8
)

# Transmit_Return as xfreerdp packs it: no receive PCI, the response.
TRANSMIT_RETURN = bytes.fromhex(
    HEADERS + "3000000000000000"  # ObjectBufferLength 48
    "00000000"  # ReturnCode
    "00000000"  # pioRecvPci null
    "15000000" "00000200"  # cbRecvLength 21, pbRecvBuffer referent
    "15000000" "61114f0600001000010079074f05a0000003089000"
    "00000000000000"  # padding
)

# With a receive PCI: its structure and extra bytes come before the response,
# and the extra bytes' pointer takes the third referent id.
TRANSMIT_RETURN_WITH_PCI_BODY = bytes.fromhex(
    "00000000"  # ReturnCode
    "00000200"  # pioRecvPci referent
    "02000000" "04000200"  # cbRecvLength 2, pbRecvBuffer referent
    "02000000" "03000000" "08000200"  # the PCI: T1, 3 extra bytes, referent 0x00020008
    "03000000" "aabbcc00"  # the extra bytes
    "02000000" "90000000"  # the response
    "00000000"  # padding
)


def test_transmit_call() -> None:
    call = TransmitCall.decode(TRANSMIT_CALL)
    assert call == TransmitCall.simple(HANDLE, T1, SELECT_PIV, 258)
    assert call.io_send_pci == SCardIORequest(T1)
    assert call.encode() == TRANSMIT_CALL
    assert len(call.encode()) == 112


def test_transmit_return() -> None:
    ret = TransmitReturn.decode(TRANSMIT_RETURN)
    assert ret == TransmitReturn.with_response(0, SELECT_PIV_RESPONSE)
    assert ret.encode() == TRANSMIT_RETURN
    assert len(ret.encode()) == 64


def test_transmit_return_with_receive_pci() -> None:
    ret = TransmitReturn(0, SCardIORequest(T1, 3, b"\xaa\xbb\xcc"), 2, b"\x90\x00")
    assert ret.encode()[16:] == TRANSMIT_RETURN_WITH_PCI_BODY
    assert TransmitReturn.decode(ret.encode()) == ret


def test_transmit_call_with_both_pcis_round_trip() -> None:
    call = TransmitCall(
        HANDLE, SCardIORequest(T1, 2, b"\x01\x02"), 4, b"\x00\xca\x00\x00", SCardIORequest(T1), 0, 2
    )
    assert TransmitCall.decode(call.encode()) == call


def test_transmit_limits() -> None:
    big = bytes(66560)
    assert len(TransmitCall.simple(HANDLE, T1, big, 0).encode()) > 66560
    with pytest.raises(ValueError):
        TransmitCall.simple(HANDLE, T1, big + b"\0", 0)
    with pytest.raises(ValueError):
        SCardIORequest(T1, 1025, bytes(1025))
    data = bytearray(TRANSMIT_CALL)
    data[44:48] = (66561).to_bytes(4, "little")  # cbSendLength
    with pytest.raises(ProtocolError) as info:
        TransmitCall.decode(bytes(data))
    assert info.value.field == "cbSendLength"


def test_transmit_call_send_buffer_pointer_must_match_its_length() -> None:
    data = bytearray(TRANSMIT_CALL)
    data[48:52] = bytes(4)  # pbSendBuffer null with cbSendLength 14
    with pytest.raises(ProtocolError) as info:
        TransmitCall.decode(bytes(data))
    assert info.value.field == "pbSendBuffer"


def test_failed_transmit_return_round_trip() -> None:
    ret = TransmitReturn.failure(ScardReturn.SCARD_W_REMOVED_CARD)
    data = ret.encode()
    assert data[16:] == bytes.fromhex("69001080" "00000000" "00000000" "00000000")
    assert TransmitReturn.decode(data) == ret


def test_control_round_trip() -> None:
    # CM_IOCTL_GET_FEATURE_REQUEST as Windows numbers it: SCARD_CTL_CODE(3400).
    call = ControlCall(HANDLE, 0x00313520, 0, None, 0, 2048)
    data = call.encode()
    assert data[32:52] == bytes.fromhex("20353100" "00000000" "00000000" "00000000" "00080000")
    assert ControlCall.decode(data) == call
    ret = ControlReturn(0, 6, bytes.fromhex("120442330012"))
    assert ControlReturn.decode(ret.encode()) == ret


def test_attrib_round_trip() -> None:
    call = GetAttribCall(HANDLE, 0x00090303, 0, 36)  # SCARD_ATTR_ATR_STRING
    assert GetAttribCall.decode(call.encode()) == call
    ret = GetAttribReturn.with_data(0, b"\x3b\x00")
    assert ret.encode()[16:] == bytes.fromhex(
        "00000000" "02000000" "00000200" "02000000" "3b000000" "00000000"
    )
    assert GetAttribReturn.decode(ret.encode()) == ret
    set_call = SetAttribCall(HANDLE, 0x00090303, 2, b"\x01\x02")
    assert SetAttribCall.decode(set_call.encode()) == set_call
    with pytest.raises(ValueError):
        GetAttribReturn(0, 65537, bytes(65537))
