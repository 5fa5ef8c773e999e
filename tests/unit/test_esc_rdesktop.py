"""rdesktop 1.9's MS-RDPESC returns, as captured from a real client (``-r scard``, vpcd).

rdesktop (scard.c) writes every return by hand; its quirks, each accepted here:

- ObjectBufferLength (MS-RPCE 2.2.6.2) is the body's length less 8, and the body
  is then followed by (its length mod 16) zero bytes: 8 or 16 bytes more follow
  than the header states.
- Referent ids are arbitrary non-zero values (MS-RPCE only asks for non-zero):
  the context handle itself (EstablishContext), 0x01760650 (ListReaders),
  0x00084DD8 (GetStatusChange), 0x016CFF34 (Connect), 1 (Transmit), 4 (Control),
  0x00020000 (Status), 0x200 (GetAttrib).
- Connect_Return's hCard has an empty Context; later calls must still carry the
  4-byte context, as rdesktop reads them at fixed offsets (see test_esc_backend).
- A failed Status or GetAttrib is the ReturnCode and 256 zero bytes, not aligned:
  ObjectBufferLength 252, 264 bytes follow.
- Control_Return with no output has a non-null pointer to an empty array.
- A failed EstablishContext keeps the success layout with handle 0: cbContext 4, a
  null pointer, then max count 4 and a zero handle that belong to no referent.
"""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.card import ConnectReturn, StatusReturn
from rdscard.pdu.esc.context import EstablishContextReturn, ListReadersReturn, LongReturn
from rdscard.pdu.esc.io import ControlReturn, GetAttribReturn, TransmitReturn
from rdscard.pdu.esc.status_change import GetStatusChangeReturn
from rdscard.pdu.esc.transmit_wire import parse_transmit_return
from rdscard.pdu.ndr import RedirScardContext

H = "01100800cccccccc"  # MS-RPCE 2.2.6.1 common type header
READER_W = "5600690072007400750061006c0020005000430044002000300030002000"  # "Virtual PCD 00 "
ATR = bytes.fromhex("3bf81300008131fe15597562696b657934d4")

ESTABLISH = bytes.fromhex(
    H + "1000000000000000"  # ObjectBufferLength 16; 32 bytes follow
    "00000000"  # ReturnCode
    "04000000" "01000000"  # cbContext 4, pbContext referent id = the handle, 1
    "04000000" "01000000"  # deferred: max count 4, the context
    "00000000" "0000000000000000"  # padding to 8, then rdesktop's 8 bytes
)

# A failed EstablishContext: rdesktop's pcsc-lite was gone (SCARD_E_NO_SERVICE). scard.c
# writes its success layout with handle 0, so the pointer is null.
ESTABLISH_FAILED = bytes.fromhex(
    H + "1000000000000000"  # ObjectBufferLength 16; 32 bytes follow
    "1d001080"  # ReturnCode SCARD_E_NO_SERVICE
    "04000000" "00000000"  # cbContext 4, pbContext null
    "04000000" "00000000"  # max count 4 and a zero handle, for no referent
    "00000000" "0000000000000000"  # padding to 8, then rdesktop's 8 bytes
)

LIST_READERS_W = bytes.fromhex(
    H + "5800000000000000"  # ObjectBufferLength 88; 96 bytes follow
    "00000000" "4a000000" "50067601"  # ReturnCode, cBytes 74, referent id 0x01760650
    "4a000000"  # max count 74
    + READER_W + "300030000000" + READER_W + "300031000000"  # two names with their NULs
    + "0000" "0000" "00000000"  # the final NUL, to 4, to 8 (rdesktop's (96 mod 16) is 0)
)

GET_STATUS_CHANGE_W = bytes.fromhex(
    H + "9800000000000000"  # ObjectBufferLength 152; 160 bytes follow
    "00000000" "03000000" "d84d0800"  # ReturnCode, cReaders 3, referent id 0x00084DD8
    "03000000"  # max count 3
    "00000200" "00000000" "00000000" + "00" * 36  # PnP notification
    + "00000000" "22000100" "12000000"  # reader 0: current, event, cbAtr 18
    + ATR.hex() + "00" * 18
    + "00000000" "12000000" "00000000" + "00" * 36  # reader 1: empty
)

CONNECT = bytes.fromhex(
    H + "1800000000000000"  # ObjectBufferLength 24; 32 bytes follow
    "00000000"  # ReturnCode
    "00000000" "00000000"  # hCard.Context: cbContext 0, null
    "04000000" "34ff6c01"  # cbHandle 4, referent id 0x016CFF34
    "02000000"  # dwActiveProtocol T=1
    "04000000" "03000000"  # deferred: max count 4, the handle
)

TRANSMIT_9000 = bytes.fromhex(
    H + "1000000000000000"  # ObjectBufferLength 16; 32 bytes follow
    "00000000" "00000000"  # ReturnCode, pioRecvPci null
    "02000000" "01000000"  # cbRecvLength 2, referent id 1
    "02000000" "9000"  # max count 2, SW 9000
    "0000" "0000000000000000"  # padding to 4... then rdesktop's 8 bytes
)

TRANSMIT_29 = bytes.fromhex(
    H + "3000000000000000"  # ObjectBufferLength 48; 64 bytes follow (16 more)
    "00000000" "00000000" "1d000000" "01000000" "1d000000"
    "a722219958511af80a34e0783aecc88fca0cc9ac7ede710100fe009000"  # 29 bytes
    "000000" "00000000" "0000000000000000"  # to 4, to 8, rdesktop's 8 bytes
)

CONTROL_FAILED = bytes.fromhex(
    H + "0800000000000000"  # ObjectBufferLength 8; 16 bytes follow
    "1f001080"  # ReturnCode SCARD_E_UNEXPECTED (vpcd has no features)
    "00000000" "04000000" "00000000"  # cbOutBufferSize 0, referent id 4, max count 0
)

LONG = bytes.fromhex(
    H + "0000000000000000"  # ObjectBufferLength 0; 16 bytes follow
    "00000000" "00000000" "0000000000000000"  # ReturnCode, padding, rdesktop's 8 bytes
)

STATUS_W = bytes.fromhex(
    H + "6000000000000000"  # ObjectBufferLength 96; 112 bytes follow
    "00000000" "26000000" "00000200"  # ReturnCode, cBytes 38, referent id
    "06000000" "02000000"  # dwState SCARD_SPECIFIC, dwProtocol T=1
    + ATR.hex() + "00" * 14 + "12000000"  # pbAtr[32], cbAtrLen 18
    + "26000000" + READER_W + "300030000000"  # max count 38, the name and its NUL
    + "0000" "0000" "00000000" "0000000000000000"  # final NUL, to 4, to 8, rdesktop's 8
)

GET_ATTRIB_FAILED = bytes.fromhex(
    H + "fc00000000000000"  # ObjectBufferLength 252; 264 bytes follow
    "1f001080" + "00" * 260  # ReturnCode, 256 zero bytes, (260 mod 16) = 4 more
)


def test_establish_context_return() -> None:
    reply = EstablishContextReturn.decode(ESTABLISH)
    assert reply == EstablishContextReturn(0, RedirScardContext(b"\x01\x00\x00\x00"))


def test_failed_establish_context_return_with_a_null_context() -> None:
    reply = EstablishContextReturn.decode(ESTABLISH_FAILED)
    assert reply == EstablishContextReturn.failure(0x8010001D)
    assert reply.context.pb_context == b""


def test_list_readers_w_return() -> None:
    reply = ListReadersReturn.decode(LIST_READERS_W)
    assert reply.return_code == 0 and reply.c_bytes == 74
    assert reply.msz == ("Virtual PCD 00 00\0Virtual PCD 00 01\0\0").encode("utf-16-le")


def test_get_status_change_w_return() -> None:
    states = GetStatusChangeReturn.decode(GET_STATUS_CHANGE_W).rg_reader_states
    assert len(states) == 3
    assert (states[1].dw_event_state, states[1].cb_atr, states[1].rgb_atr[:18]) == (
        0x00010022, 18, ATR)
    assert states[2].dw_event_state == 0x12


def test_connect_return_with_empty_context() -> None:
    reply = ConnectReturn.decode(CONNECT)
    assert reply.return_code == 0 and reply.dw_active_protocol == 2
    assert reply.h_card.pb_handle == b"\x03\x00\x00\x00"
    assert reply.h_card.context.pb_context == b""


@pytest.mark.parametrize(
    ("data", "response"),
    [(TRANSMIT_9000, b"\x90\x00"), (TRANSMIT_29, TRANSMIT_29[36:65])],
)
def test_transmit_return_goes_past_the_fast_path(data: bytes, response: bytes) -> None:
    reply = TransmitReturn.decode(data)
    assert (reply.return_code, reply.pio_recv_pci, reply.pb_recv_buffer) == (0, None, response)
    assert reply.cb_recv_length == len(response)
    assert parse_transmit_return(data) is None  # unusual: the layered decoder decides


def test_failed_control_return() -> None:
    reply = ControlReturn.decode(CONTROL_FAILED)
    assert (reply.return_code, reply.cb_out_buffer_size, reply.pv_out_buffer) == (
        0x8010001F, 0, b"")


def test_long_return() -> None:
    assert LongReturn.decode(LONG) == LongReturn(0)


def test_status_w_return() -> None:
    reply = StatusReturn.decode(STATUS_W)
    assert (reply.return_code, reply.dw_state, reply.dw_protocol) == (0, 6, 2)
    assert reply.pb_atr[: reply.cb_atr_len] == ATR
    assert reply.msz_reader_names == ("Virtual PCD 00 00\0\0").encode("utf-16-le")


def test_failed_get_attrib_return_with_256_zero_bytes() -> None:
    assert GetAttribReturn.decode(GET_ATTRIB_FAILED) == GetAttribReturn.failure(0x8010001F)


# -- what stays refused ----------------------------------------------------------------
def _relength(data: bytes, length: int) -> bytes:
    return data[:8] + length.to_bytes(4, "little") + data[12:]


# GetAttrib_Return as scard.c TS_SCardGetAttrib writes a successful one with an empty
# attribute (not captured: vpcd has none): a zero word after the array, then padding.
GET_ATTRIB_EMPTY = bytes.fromhex(
    H + "1000000000000000"  # ObjectBufferLength 16; 32 bytes follow
    "00000000" "00000000" "00020000" "00000000"  # ReturnCode, cbAttrLen 0, 0x200, count 0
    "00000000" "00000000" "0000000000000000"  # the zero word, to 8, rdesktop's 8 bytes
)


def test_empty_attribute_in_rdesktops_layout() -> None:
    assert GetAttribReturn.decode(GET_ATTRIB_EMPTY) == GetAttribReturn(0, 0, b"")


@pytest.mark.parametrize(
    ("message", "data", "field"),
    [
        (EstablishContextReturn, ESTABLISH + bytes(8), "ObjectBufferLength"),  # 24 more
        (EstablishContextReturn, _relength(ESTABLISH, 40), "ObjectBufferLength"),  # fewer
        (GetAttribReturn, _relength(GET_ATTRIB_FAILED, 250), "ObjectBufferLength"),  # not 4n
        (GetAttribReturn, GET_ATTRIB_FAILED[:-1] + b"\x01", "(end)"),  # not all zero
        (GetAttribReturn, GET_ATTRIB_EMPTY[:-1] + b"\x01", "(end)"),  # non-zero padding
        # ObjectBufferLength 24, 40 bytes: 24 zero bytes after the array, past pad + 16
        (GetAttribReturn, _relength(GET_ATTRIB_EMPTY + bytes(8), 24), "(end)"),
    ],
)
def test_tolerance_keeps_its_bounds(message: type[GetAttribReturn | EstablishContextReturn],
                                    data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        message.decode(data)
    assert info.value.field == field


def test_an_exact_length_keeps_strict_padding() -> None:
    # ObjectBufferLength that matches: only the usual padding (plus FreeRDP's 8) may follow.
    exact = _relength(ESTABLISH[:-8] + bytes(16), 40)
    with pytest.raises(ProtocolError) as info:
        EstablishContextReturn.decode(exact)
    assert info.value.field == "(end)"


def _body_word(data: bytes, offset: int, value: int) -> bytes:
    at = 16 + offset
    return data[:at] + value.to_bytes(4, "little") + data[at + 4:]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_body_word(ESTABLISH_FAILED, 0, 0), "a success with a null context"),
        (_body_word(ESTABLISH_FAILED, 4, 8), "cbContext 8"),
        (_body_word(ESTABLISH_FAILED, 16, 1), "a non-zero handle after the null pointer"),
        (_body_word(ESTABLISH_FAILED, 20, 1), "non-zero padding"),
        (_relength(ESTABLISH_FAILED[:-8], 24), "an exact length: only rdesktop understates"),
    ],
)
def test_the_null_context_failure_keeps_its_shape(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError):
        EstablishContextReturn.decode(data)
