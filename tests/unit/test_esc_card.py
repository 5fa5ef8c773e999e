"""Card handle calls and returns: Connect, Reconnect, Disconnect, Status, State (MS-RDPESC 2.2)."""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.card import (
    ConnectACall,
    ConnectReturn,
    ConnectWCall,
    GetTransmitCountCall,
    GetTransmitCountReturn,
    HCardAndDispositionCall,
    ReconnectCall,
    ReconnectReturn,
    StateCall,
    StateReturn,
    StatusCall,
    StatusReturn,
)
from rdscard.pdu.esc.constants import (
    ScardCardState,
    ScardDisposition,
    ScardProtocol,
    ScardReturn,
    ScardShareMode,
)
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle

HEADERS = "01100800cccccccc"
CONTEXT = RedirScardContext(bytes.fromhex("0d8b5e2a00000000"))
HANDLE = RedirScardHandle(CONTEXT, bytes.fromhex("6f1c3a0100000000"))
YUBIKEY_ATR = bytes.fromhex("3bf81300008131fe15597562696b657934d4")
T1 = ScardProtocol.SCARD_PROTOCOL_T1

# ConnectA_Call: the name pointer first, then Connect_Common; the name is
# deferred before the context bytes because its pointer came first.
CONNECT_A_CALL = bytes.fromhex(
    HEADERS + "4000000000000000"  # ObjectBufferLength 64
    "00000200"  # szReader referent 0x00020000
    "08000000" "04000200"  # Common.Context: cbContext 8, referent 0x00020004
    "02000000"  # dwShareMode SCARD_SHARE_SHARED
    "03000000"  # dwPreferredProtocols T0 | T1
    "12000000" "00000000" "12000000"  # szReader: max 18, offset 0, actual 18
    "5669727475616c2050434420303020303000"  # "Virtual PCD 00 00" NUL
    "0000"  # align
    "08000000" "0d8b5e2a00000000"  # context bytes
)

# Connect_Return as xfreerdp packs it.
CONNECT_RETURN = bytes.fromhex(
    HEADERS + "3000000000000000"  # ObjectBufferLength 48
    "00000000"  # ReturnCode
    "08000000" "00000200"  # hCard.Context
    "08000000" "04000200"  # hCard.cbHandle, pbHandle referent
    "02000000"  # dwActiveProtocol T1
    "08000000" "0d8b5e2a00000000"  # context bytes
    "08000000" "6f1c3a0100000000"  # handle bytes
)

# HCardAndDisposition_Call for Disconnect with SCARD_RESET_CARD.
DISCONNECT_CALL = bytes.fromhex(
    HEADERS + "3000000000000000"
    "08000000" "00000200"  # hCard.Context
    "08000000" "04000200"  # hCard handle
    "01000000"  # dwDisposition
    "08000000" "0d8b5e2a00000000"
    "08000000" "6f1c3a0100000000"
    "00000000"
)

# StatusA_Return as xfreerdp packs it: the reader name, a specific-mode T1 card.
STATUS_A_RETURN = bytes.fromhex(
    HEADERS + "5000000000000000"  # ObjectBufferLength 80
    "00000000"  # ReturnCode
    "13000000" "00000200"  # cBytes 19, mszReaderNames referent
    "06000000"  # dwState SCARD_SPECIFIC
    "02000000"  # dwProtocol T1
    "3bf81300008131fe15597562696b657934d4" + "00" * 14  # pbAtr[32]
    + "12000000"  # cbAtrLen 18
    "13000000" "5669727475616c20504344203030203030" "0000"  # the multi-string
    "00"  # padding
)


def test_connect_a_call() -> None:
    call = ConnectACall.decode(CONNECT_A_CALL)
    assert call == ConnectACall(
        "Virtual PCD 00 00",
        CONTEXT,
        ScardShareMode.SCARD_SHARE_SHARED,
        ScardProtocol.SCARD_PROTOCOL_T0 | T1,
    )
    assert call.encode() == CONNECT_A_CALL
    assert len(call.encode()) == 80


def test_connect_w_call_round_trip() -> None:
    call = ConnectWCall("Lecteur à puce 0", CONTEXT, 1, 2)
    data = call.encode()
    assert "Lecteur à puce 0\0".encode("utf-16-le") in data
    assert ConnectWCall.decode(data) == call


def test_connect_call_requires_the_reader_name() -> None:
    data = bytearray(CONNECT_A_CALL)
    data[16:20] = bytes(4)  # null szReader
    with pytest.raises(ProtocolError) as info:
        ConnectACall.decode(bytes(data))
    assert info.value.field == "szReader"


def test_connect_return() -> None:
    ret = ConnectReturn.decode(CONNECT_RETURN)
    assert ret == ConnectReturn(0, HANDLE, T1)
    assert ret.encode() == CONNECT_RETURN
    assert len(ret.encode()) == 64


def test_failed_connect_return_round_trip() -> None:
    ret = ConnectReturn.failure(ScardReturn.SCARD_E_NO_SMARTCARD)
    assert ConnectReturn.decode(ret.encode()) == ret
    assert ret.h_card.pb_handle == b""


def test_disconnect_call() -> None:
    call = HCardAndDispositionCall.decode(DISCONNECT_CALL)
    assert call == HCardAndDispositionCall(HANDLE, ScardDisposition.SCARD_RESET_CARD)
    assert call.encode() == DISCONNECT_CALL


def test_handle_with_null_pointer_is_rejected() -> None:
    data = bytearray(DISCONNECT_CALL)
    data[28:32] = bytes(4)  # pbHandle null with cbHandle 8
    with pytest.raises(ProtocolError) as info:
        HCardAndDispositionCall.decode(bytes(data))
    assert info.value.field == "hCard.pbHandle"


def test_reconnect_round_trip() -> None:
    call = ReconnectCall(HANDLE, 2, 3, ScardDisposition.SCARD_LEAVE_CARD)
    assert ReconnectCall.decode(call.encode()) == call
    ret = ReconnectReturn(0, T1)
    data = ret.encode()
    assert data[16:] == bytes.fromhex("00000000" "02000000")
    assert ReconnectReturn.decode(data) == ret


def test_status_a_return() -> None:
    ret = StatusReturn.decode(STATUS_A_RETURN)
    assert ret.names(wide=False) == ("Virtual PCD 00 00",)
    assert ret.dw_state == ScardCardState.SCARD_SPECIFIC
    assert ret.dw_protocol == T1
    assert ret.atr == YUBIKEY_ATR
    assert ret.encode() == STATUS_A_RETURN
    assert len(ret.encode()) == 96


def test_status_return_rejects_an_oversized_atr_length() -> None:
    data = bytearray(STATUS_A_RETURN)
    data[68:72] = (33).to_bytes(4, "little")
    with pytest.raises(ProtocolError) as info:
        StatusReturn.decode(bytes(data))
    assert info.value.field == "cbAtrLen"


def test_status_call_round_trip() -> None:
    call = StatusCall(HANDLE, 0, 0xFFFFFFFF, 32)
    data = call.encode()
    assert data[32:44] == bytes.fromhex("00000000" "ffffffff" "20000000")
    assert StatusCall.decode(data) == call


def test_state_and_transmit_count() -> None:
    call = StateCall(HANDLE, 0, 36)
    assert StateCall.decode(call.encode()) == call
    ret = StateReturn(0, 6, 2, len(YUBIKEY_ATR), YUBIKEY_ATR)
    assert StateReturn.decode(ret.encode()) == ret
    with pytest.raises(ValueError):
        StateReturn(0, 6, 2, 37, bytes(37))
    count_call = GetTransmitCountCall(HANDLE)
    assert GetTransmitCountCall.decode(count_call.encode()) == count_call
    count = GetTransmitCountReturn(0, 7)
    assert GetTransmitCountReturn.decode(count.encode()) == count
