"""GetStatusChange and LocateCards (MS-RDPESC 2.2.1.5-2.2.1.7, 2.2.1.11, 2.2.2, 2.2.3.5)."""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.constants import (
    PNP_NOTIFICATION,
    ScardReaderState,
    ScardReturn,
)
from rdscard.pdu.esc.status_change import (
    GetStatusChangeACall,
    GetStatusChangeReturn,
    GetStatusChangeWCall,
    LocateCardsAtrMask,
    LocateCardsByATRACall,
    LocateCardsReturn,
    LocateCardsWCall,
    ReaderStateA,
    ReaderStateReturn,
    ReaderStateW,
)
from rdscard.pdu.ndr import RedirScardContext

HEADERS = "01100800cccccccc"
YUBIKEY_ATR = bytes.fromhex("3bf81300008131fe15597562696b657934d4")
CONTEXT = RedirScardContext(bytes.fromhex("0d8b5e2a00000000"))

# GetStatusChange_Return as xfreerdp packs it: one reader that now holds a card.
GET_STATUS_CHANGE_RETURN = bytes.fromhex(
    HEADERS + "4000000000000000"  # ObjectBufferLength 64
    "00000000"  # ReturnCode
    "01000000"  # cReaders
    "00000200"  # rgReaderStates referent
    "01000000"  # conformant array max count
    "10000000"  # dwCurrentState SCARD_STATE_EMPTY
    "22000100"  # dwEventState PRESENT | CHANGED, event count 1 in the high word
    "12000000"  # cbAtr 18
    "3bf81300008131fe15597562696b657934d4" + "00" * 18  # rgbAtr[36]
)

# GetStatusChangeA_Call waiting on the PnP pseudo-reader and one reader, forever.
GET_STATUS_CHANGE_A_CALL = bytes.fromhex(
    HEADERS + "d000000000000000"  # ObjectBufferLength 208
    "08000000" "00000200"  # Context
    "ffffffff"  # dwTimeOut INFINITE
    "02000000" "04000200"  # cReaders 2, rgReaderStates referent
    "08000000" "0d8b5e2a00000000"  # context bytes
    "02000000"  # array max count
    "08000200" "00000000" "00000000" "00000000" + "00" * 36  # [0]: szReader, states, no ATR
    + "0c000200" "10000000" "00000000" "00000000" + "00" * 36  # [1]: known EMPTY
    + "15000000" "00000000" "15000000"  # szReader[0]: 21 chars with the NUL
    "5c5c3f506e503f5c4e6f74696669636174696f6e00"  # \\?PnP?\Notification
    "000000"  # align
    "12000000" "00000000" "12000000"  # szReader[1]: 18 chars
    "5669727475616c2050434420303020303000"  # Virtual PCD 00 00
    "0000"  # padding to 8
)


def test_get_status_change_return() -> None:
    ret = GetStatusChangeReturn.decode(GET_STATUS_CHANGE_RETURN)
    assert ret.return_code == ScardReturn.SCARD_S_SUCCESS
    (state,) = ret.rg_reader_states
    assert state.dw_current_state == ScardReaderState.SCARD_STATE_EMPTY
    assert state.dw_event_state & 0xFFFF == (
        ScardReaderState.SCARD_STATE_PRESENT | ScardReaderState.SCARD_STATE_CHANGED
    )
    assert state.dw_event_state >> 16 == 1
    assert state.atr == YUBIKEY_ATR
    assert ret.encode() == GET_STATUS_CHANGE_RETURN
    assert len(ret.encode()) == 80
    built = GetStatusChangeReturn(0, (ReaderStateReturn(0x10, 0x00010022, 18, YUBIKEY_ATR),))
    assert built == ret


def test_get_status_change_a_call() -> None:
    call = GetStatusChangeACall(
        CONTEXT,
        0xFFFFFFFF,
        (
            ReaderStateA(PNP_NOTIFICATION, ReaderStateReturn(0, 0, 0)),
            ReaderStateA("Virtual PCD 00 00", ReaderStateReturn(0x10, 0, 0)),
        ),
    )
    data = call.encode()
    assert data == GET_STATUS_CHANGE_A_CALL
    assert len(data) == 224
    assert GetStatusChangeACall.decode(data) == call
    assert call.rg_reader_states[0].sz_reader == "\\\\?PnP?\\Notification"


def test_get_status_change_w_call_round_trip() -> None:
    state = ReaderStateW("Virtual PCD 00 00", ReaderStateReturn(0x20, 0, 18, YUBIKEY_ATR))
    call = GetStatusChangeWCall(CONTEXT, 0, (state,))
    data = call.encode()
    # Name as UTF-16: 18 characters with the NUL.
    assert bytes.fromhex("120000000000000012000000") + "Virtual".encode("utf-16-le") in data
    assert GetStatusChangeWCall.decode(data) == call
    # The A decoder reads the same bytes as text with embedded NULs and rejects them.
    with pytest.raises(ProtocolError):
        GetStatusChangeACall.decode(data)


def test_timeout_return_keeps_the_reader_states() -> None:
    ret = GetStatusChangeReturn(ScardReturn.SCARD_E_TIMEOUT, (ReaderStateReturn(0x10, 0x10, 0),))
    assert GetStatusChangeReturn.decode(ret.encode()) == ret


def test_cancelled_return_as_freerdp_sends_it() -> None:
    data = bytes.fromhex(HEADERS + "1000000000000000" "02001080" "00000000" "00000000" "00000000")
    ret = GetStatusChangeReturn.decode(data)
    assert ret == GetStatusChangeReturn(ScardReturn.SCARD_E_CANCELLED, ())
    assert ret.encode() == data


@pytest.mark.parametrize(
    ("patch_at", "value", "field"),
    [
        (20, "0c000000", "cReaders"),  # 12 readers: over the limit of 11
        (28, "02000000", "rgReaderStates"),  # array count 2 != cReaders 1
        (40, "25000000", "rgReaderStates[0].cbAtr"),  # cbAtr 37 > 36
        (24, "00000000", "rgReaderStates"),  # null array with cReaders 1
    ],
)
def test_malformed_get_status_change_returns(patch_at: int, value: str, field: str) -> None:
    data = bytearray(GET_STATUS_CHANGE_RETURN)
    data[patch_at : patch_at + 4] = bytes.fromhex(value)
    with pytest.raises(ProtocolError) as info:
        GetStatusChangeReturn.decode(bytes(data))
    assert info.value.pdu == "GetStatusChange_Return"
    assert info.value.field == field


def test_reader_state_atr_limits() -> None:
    with pytest.raises(ValueError):
        ReaderStateReturn(0, 0, 37)
    with pytest.raises(ValueError):
        ReaderStateReturn(0, 0, 1, bytes(37))
    state = ReaderStateReturn(0, 0, 2, b"\x3b\x00")
    assert state.rgb_atr == b"\x3b\x00" + bytes(34)
    with pytest.raises(ValueError):
        GetStatusChangeACall(CONTEXT, 0, (ReaderStateA("r", state),) * 12)
    with pytest.raises(ValueError):
        GetStatusChangeWCall(CONTEXT, 0, (ReaderStateA("r", state),))


def test_locate_cards_w_call_and_return() -> None:
    cards = "PIV\0\0".encode("utf-16-le")
    call = LocateCardsWCall(
        CONTEXT, len(cards), cards, (ReaderStateW("Virtual PCD 00 00", ReaderStateReturn(0, 0, 0)),)
    )
    data = call.encode()
    assert data[16:40] == bytes.fromhex(
        "08000000" "00000200"  # Context
        "0a000000" "04000200"  # cBytes 10, mszCards
        "01000000" "08000200"  # cReaders 1, rgReaderStates
    )
    assert LocateCardsWCall.decode(data) == call
    ret = LocateCardsReturn(0, (ReaderStateReturn(0, 0x60, 18, YUBIKEY_ATR),))
    assert LocateCardsReturn.decode(ret.encode()) == ret
    with pytest.raises(ValueError):
        LocateCardsReturn(0, (ReaderStateReturn(0, 0, 0),) * 11)


def test_locate_cards_by_atr_call() -> None:
    mask = LocateCardsAtrMask(18, YUBIKEY_ATR, b"\xff" * 18)
    call = LocateCardsByATRACall(
        CONTEXT, (mask,), (ReaderStateA("Virtual PCD 00 00", ReaderStateReturn(0, 0, 0)),)
    )
    data = call.encode()
    body = data[16:]
    assert body[:24] == bytes.fromhex(
        "08000000" "00000200"  # Context
        "01000000" "04000200"  # cAtrs 1, rgAtrMasks
        "01000000" "08000200"  # cReaders 1, rgReaderStates
    )
    # After the context bytes: the mask array (count, cbAtr, rgbAtr[36], rgbMask[36]).
    assert body[36:116] == bytes.fromhex("01000000" "12000000") + mask.rgb_atr + mask.rgb_mask
    assert LocateCardsByATRACall.decode(data) == call
