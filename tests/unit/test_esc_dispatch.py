"""The IOCTL table (MS-RDPESC 3.1.4) and decoding by IOCTL code."""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.card import ConnectReturn, ConnectWCall
from rdscard.pdu.esc.constants import ScardIoctl, ScardProtocol, ScardReturn
from rdscard.pdu.esc.context import EstablishContextCall, LongReturn
from rdscard.pdu.esc.dispatch import (
    IOCTL_MESSAGES,
    decode_call,
    decode_return,
    is_wide,
)
from rdscard.pdu.esc.io import TransmitReturn
from rdscard.pdu.esc.status_change import GetStatusChangeACall, GetStatusChangeWCall
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle


def test_ioctl_codes_from_the_specification() -> None:
    assert ScardIoctl.SCARD_IOCTL_ESTABLISHCONTEXT == 0x00090014
    assert ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW == 0x000900A4
    assert ScardIoctl.SCARD_IOCTL_TRANSMIT == 0x000900D0
    assert ScardIoctl.SCARD_IOCTL_GETDEVICETYPEID == 0x00090108
    # Every code is SCARD_CTL_CODE(n) = FILE_DEVICE_SMARTCARD << 16 | n << 2.
    for code in ScardIoctl:
        assert code >> 16 == 0x0009
        assert code & 0x3 == 0


def test_every_ioctl_is_dispatched() -> None:
    assert set(IOCTL_MESSAGES) == set(ScardIoctl)
    assert len(IOCTL_MESSAGES) == 48


def test_return_codes() -> None:
    assert ScardReturn.SCARD_E_CANCELLED == 0x80100002
    assert ScardReturn.SCARD_E_TIMEOUT == 0x8010000A
    assert ScardReturn.SCARD_E_NO_SERVICE == 0x8010001D
    assert ScardReturn.SCARD_E_UNSUPPORTED_FEATURE == 0x80100022
    assert ScardReturn.SCARD_E_NO_READERS_AVAILABLE == 0x8010002E
    assert ScardReturn.SCARD_W_REMOVED_CARD == 0x80100069
    assert ScardProtocol.SCARD_PROTOCOL_RAW == 0x10000


def test_wide_variants() -> None:
    assert is_wide(ScardIoctl.SCARD_IOCTL_LISTREADERSW)
    assert is_wide(ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW)
    assert not is_wide(ScardIoctl.SCARD_IOCTL_LISTREADERSA)
    assert not is_wide(ScardIoctl.SCARD_IOCTL_TRANSMIT)
    assert IOCTL_MESSAGES[ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEA][0] is GetStatusChangeACall
    assert IOCTL_MESSAGES[ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW][0] is GetStatusChangeWCall


def test_decode_by_ioctl() -> None:
    context = RedirScardContext(b"\x01\x02\x03\x04")
    call = EstablishContextCall(2)
    assert decode_call(ScardIoctl.SCARD_IOCTL_ESTABLISHCONTEXT, call.encode()) == call
    connect = ConnectWCall("Virtual PCD 00 00", context, 2, 3)
    assert decode_call(0x000900B0, connect.encode()) == connect
    ret = ConnectReturn(0, RedirScardHandle(context, b"\x05\x06\x07\x08"), 2)
    assert decode_return(0x000900B0, ret.encode()) == ret
    cancelled = LongReturn(ScardReturn.SCARD_E_CANCELLED)
    assert decode_return(ScardIoctl.SCARD_IOCTL_CANCEL, cancelled.encode()) == cancelled
    removed = TransmitReturn.failure(ScardReturn.SCARD_W_REMOVED_CARD)
    assert decode_return(ScardIoctl.SCARD_IOCTL_TRANSMIT, removed.encode()) == removed


@pytest.mark.parametrize(
    "ioctl", [0x00090010, 0x0009010C, 0x000900E6, 0x12345678]
)
def test_unsupported_ioctls_raise_protocol_errors(ioctl: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_call(ioctl, b"")
    assert info.value.field == "IoControlCode"
    with pytest.raises(ProtocolError):
        decode_return(ioctl, b"")
