"""ReadCache, WriteCache, GetReaderIcon and GetDeviceTypeId (MS-RDPESC 2.2.1.9-10, 2.2.2, 2.2.3)."""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.cache import (
    GetDeviceTypeIdCall,
    GetDeviceTypeIdReturn,
    GetReaderIconCall,
    GetReaderIconReturn,
    ReadCacheACall,
    ReadCacheReturn,
    ReadCacheWCall,
    WriteCacheACall,
    WriteCacheWCall,
)
from rdscard.pdu.esc.constants import ScardReaderType, ScardReturn
from rdscard.pdu.ndr import RedirScardContext

HEADERS = "01100800cccccccc"
CONTEXT = RedirScardContext(bytes.fromhex("0d8b5e2a00000000"))
CARD_ID = bytes.fromhex("00112233445566778899aabbccddeeff")

# ReadCacheA_Call: name pointer, ReadCache_Common, then the deferred name,
# context bytes and CardIdentifier in pointer order.
READ_CACHE_A_CALL = bytes.fromhex(
    HEADERS + "5000000000000000"  # ObjectBufferLength 80
    "00000200"  # szLookupName referent
    "08000000" "04000200"  # Common.Context
    "08000200"  # Common.CardIdentifier referent
    "01000000"  # FreshnessCounter
    "00000000"  # fPbDataIsNULL
    "00040000"  # cbDataLen 1024
    "0b000000" "00000000" "0b000000" "436172644d6f64756c6500"  # "CardModule" NUL
    "00"  # align
    "08000000" "0d8b5e2a00000000"  # context bytes
    "00112233445566778899aabbccddeeff"  # CardIdentifier
)


def test_read_cache_a_call() -> None:
    call = ReadCacheACall.decode(READ_CACHE_A_CALL)
    assert call == ReadCacheACall("CardModule", CONTEXT, CARD_ID, 1, 0, 1024)
    assert call.encode() == READ_CACHE_A_CALL
    assert len(call.encode()) == 96


def test_read_cache_w_and_return_round_trip() -> None:
    call = ReadCacheWCall("Cache/PIV", CONTEXT, None, 3, 1, 0)
    assert ReadCacheWCall.decode(call.encode()) == call
    ret = ReadCacheReturn(0, 4, b"data")
    assert ReadCacheReturn.decode(ret.encode()) == ret
    missing = ReadCacheReturn.failure(ScardReturn.SCARD_W_CACHE_ITEM_NOT_FOUND)
    assert ReadCacheReturn.decode(missing.encode()) == missing


def test_write_cache_round_trip() -> None:
    for cls in (WriteCacheACall, WriteCacheWCall):
        call = cls("CardModule", CONTEXT, CARD_ID, 2, 5, b"hello")
        assert cls.decode(call.encode()) == call
    with pytest.raises(ValueError):
        WriteCacheACall("x", CONTEXT, b"short", 0, 0, None)


def test_card_identifier_must_be_sixteen_bytes() -> None:
    data = bytearray(READ_CACHE_A_CALL)
    data = data[:-16]  # drop the UUID, fix up ObjectBufferLength
    data[8:12] = (len(data) - 16).to_bytes(4, "little")
    with pytest.raises(ProtocolError) as info:
        ReadCacheACall.decode(bytes(data))
    assert info.value.pdu == "ReadCacheA_Call"


def test_reader_icon_and_device_type() -> None:
    call = GetReaderIconCall(CONTEXT, "Virtual PCD 00 00")
    data = call.encode()
    assert data[16:28] == bytes.fromhex("08000000" "00000200" "04000200")
    assert GetReaderIconCall.decode(data) == call
    device = GetDeviceTypeIdCall(CONTEXT, "Virtual PCD 00 00")
    assert device.encode() == data  # same layout
    assert GetDeviceTypeIdCall.decode(data) == device
    # xfreerdp answers GetReaderIcon with SCARD_E_UNSUPPORTED_FEATURE and no data.
    icon = GetReaderIconReturn.decode(
        bytes.fromhex(HEADERS + "1000000000000000" "22001080" "00000000" "00000000" "00000000")
    )
    assert icon == GetReaderIconReturn(ScardReturn.SCARD_E_UNSUPPORTED_FEATURE, 0, None)
    # ...and GetDeviceTypeId with USB.
    usb = GetDeviceTypeIdReturn(0, ScardReaderType.SCARD_READER_TYPE_USB)
    assert usb.encode()[16:] == bytes.fromhex("00000000" "20000000")
    assert GetDeviceTypeIdReturn.decode(usb.encode()) == usb
