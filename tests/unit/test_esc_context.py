"""Context calls and returns (MS-RDPESC 2.2.2.1-2.2.2.4, 2.2.2.30, 2.2.3.2-2.2.3.4) on the wire."""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.constants import ScardReturn, ScardScope
from rdscard.pdu.esc.context import (
    AccessStartedEventCall,
    ContextCall,
    EstablishContextCall,
    EstablishContextReturn,
    ListReaderGroupsCall,
    ListReadersCall,
    ListReadersReturn,
    LongReturn,
)
from rdscard.pdu.ndr import RedirScardContext, encode_multistring

HEADERS = "01100800cccccccc"  # MS-RPCE 2.2.6.1 common type header

# EstablishContext_Call, dwScope = SCARD_SCOPE_SYSTEM
ESTABLISH_CALL = bytes.fromhex(
    HEADERS + "0800000000000000"  # private header: ObjectBufferLength 8, filler
    "02000000"  # dwScope
    "00000000"  # padding to 8
)

# EstablishContext_Return as xfreerdp sends it: an 8-byte pcsc-lite context.
FREERDP_CONTEXT = bytes.fromhex("0d8b5e2a00000000")
ESTABLISH_RETURN = bytes.fromhex(
    HEADERS + "1800000000000000"  # ObjectBufferLength 24
    "00000000"  # ReturnCode SCARD_S_SUCCESS
    "08000000"  # Context.cbContext
    "00000200"  # Context.pbContext referent id
    "08000000" "0d8b5e2a00000000"  # deferred conformant array: max count 8, the context
)

# xfreerdp answers a failed EstablishContext with the return code alone.
ESTABLISH_FAILED_FREERDP = bytes.fromhex(
    HEADERS + "0800000000000000" "1d001080" "00000000"  # SCARD_E_NO_SERVICE
)

# ListReadersW_Call in the form Windows servers send it: a 4-byte context,
# the group SCard$AllReaders, SCARD_AUTOALLOCATE.
WINDOWS_LIST_READERS_W = bytes.fromhex(
    HEADERS + "4800000000000000"  # ObjectBufferLength 72
    "04000000" "00000200"  # Context: cbContext 4, referent 0x00020000
    "24000000" "04000200"  # cBytes 36, mszGroups referent 0x00020004
    "00000000"  # fmszReadersIsNULL FALSE
    "ffffffff"  # cchReaders SCARD_AUTOALLOCATE
    "04000000" "84db0301"  # deferred context bytes
    "24000000"  # mszGroups max count 36
    "5300430061007200640024004100"  # S C a r d $ A
    "6c006c0052006500610064006500"  # l l R e a d e
    "720073000000" "0000"  # r s NUL NUL
)

# ListReadersA_Return as xfreerdp sends it for one reader.
LIST_READERS_A_RETURN = bytes.fromhex(
    HEADERS + "2800000000000000"  # ObjectBufferLength 40
    "00000000"  # ReturnCode
    "13000000" "00000200"  # cBytes 19, msz referent
    "13000000"  # max count 19
    "5669727475616c2050434420303020303000" "00"  # "Virtual PCD 00 00" NUL NUL
    "0000000000"  # padding
)

# ...and when the client has no reader: cBytes 0 and a null pointer.
NO_READERS_RETURN = bytes.fromhex(
    HEADERS + "1000000000000000"
    "2e001080"  # SCARD_E_NO_READERS_AVAILABLE
    "00000000" "00000000"  # cBytes 0, msz null
    "00000000"  # padding
)

RELEASE_CALL = bytes.fromhex(
    HEADERS + "1800000000000000"
    "08000000" "00000200"  # Context
    "08000000" "0d8b5e2a00000000"  # context bytes
    "00000000"
)

LONG_RETURN_CANCELLED = bytes.fromhex(HEADERS + "0800000000000000" "02001080" "00000000")


def test_establish_context_call() -> None:
    call = EstablishContextCall.decode(ESTABLISH_CALL)
    assert call == EstablishContextCall(ScardScope.SCARD_SCOPE_SYSTEM)
    assert call.encode() == ESTABLISH_CALL
    assert len(call.encode()) == 24


def test_establish_context_return() -> None:
    ret = EstablishContextReturn.decode(ESTABLISH_RETURN)
    assert ret.return_code == ScardReturn.SCARD_S_SUCCESS
    assert ret.context == RedirScardContext(FREERDP_CONTEXT)
    assert ret.encode() == ESTABLISH_RETURN
    assert len(ret.encode()) == 40


def test_failed_establish_context_in_freerdp_form() -> None:
    ret = EstablishContextReturn.decode(ESTABLISH_FAILED_FREERDP)
    assert ret == EstablishContextReturn.failure(ScardReturn.SCARD_E_NO_SERVICE)
    assert ret.context.pb_context == b""
    # ...also with the extra 8-byte padding block xfreerdp 2.x may add.
    padded = bytes.fromhex(HEADERS + "1000000000000000" "1d001080" + "00" * 12)
    assert EstablishContextReturn.decode(padded) == ret
    # We encode the full structure (cbContext 0, null pointer), which decodes back.
    assert EstablishContextReturn.decode(ret.encode()) == ret


def test_a_success_code_alone_is_not_a_valid_establish_return() -> None:
    with pytest.raises(ProtocolError) as info:
        EstablishContextReturn.decode(bytes.fromhex(HEADERS + "0800000000000000" + "00" * 8))
    assert info.value.pdu == "EstablishContext_Return"


def test_windows_list_readers_w_call() -> None:
    call = ListReadersCall.decode(WINDOWS_LIST_READERS_W)
    assert call.context == RedirScardContext(bytes.fromhex("84db0301"))
    assert call.c_bytes == 36
    assert call.msz_groups == encode_multistring(["SCard$AllReaders"], wide=True)
    assert call.fmsz_readers_is_null == 0
    assert call.cch_readers == 0xFFFFFFFF
    assert call.encode() == WINDOWS_LIST_READERS_W
    built = ListReadersCall.for_groups(call.context, call.msz_groups, 0xFFFFFFFF)
    assert built == call
    assert len(built.encode()) == 88


def test_list_readers_return() -> None:
    ret = ListReadersReturn.decode(LIST_READERS_A_RETURN)
    assert ret.names(wide=False) == ("Virtual PCD 00 00",)
    assert ret == ListReadersReturn.with_msz(0, b"Virtual PCD 00 00\0\0")
    assert ret.encode() == LIST_READERS_A_RETURN
    assert len(ret.encode()) == 56


def test_list_readers_w_return_round_trip() -> None:
    msz = encode_multistring(["Virtual PCD 00 00", "Virtual PCD 00 01"], wide=True)
    ret = ListReadersReturn.with_msz(0, msz)
    assert ListReadersReturn.decode(ret.encode()).names(wide=True) == (
        "Virtual PCD 00 00",
        "Virtual PCD 00 01",
    )


def test_no_readers_return() -> None:
    ret = ListReadersReturn.decode(NO_READERS_RETURN)
    assert ret == ListReadersReturn(ScardReturn.SCARD_E_NO_READERS_AVAILABLE, 0, None)
    assert ret.names(wide=False) == ()
    assert ret.encode() == NO_READERS_RETURN


def test_length_query_return_keeps_the_count_with_a_null_pointer() -> None:
    ret = ListReadersReturn(0, 38, None)
    assert ListReadersReturn.decode(ret.encode()) == ret


def test_release_context_call_and_long_return() -> None:
    call = ContextCall.decode(RELEASE_CALL)
    assert call == ContextCall(RedirScardContext(FREERDP_CONTEXT))
    assert call.encode() == RELEASE_CALL
    ret = LongReturn.decode(LONG_RETURN_CANCELLED)
    assert ret.return_code == ScardReturn.SCARD_E_CANCELLED
    assert ret.encode() == LONG_RETURN_CANCELLED
    assert len(ret.encode()) == 24


def test_list_reader_groups_call() -> None:
    call = ListReaderGroupsCall(RedirScardContext(b"\x01\x02\x03\x04"), 0, 0xFFFFFFFF)
    data = call.encode()
    assert data[16:] == bytes.fromhex(
        "04000000" "00000200" "00000000" "ffffffff" "04000000" "01020304"
    )
    assert ListReaderGroupsCall.decode(data) == call


def test_unpadded_started_event_return_from_xfreerdp() -> None:
    # xfreerdp does not pad its answer to AccessStartedEvent: ObjectBufferLength 4.
    data = bytes.fromhex(HEADERS + "0400000000000000" "1d001080")
    assert LongReturn.decode(data) == LongReturn(ScardReturn.SCARD_E_NO_SERVICE)
    with pytest.raises(ProtocolError):
        LongReturn.decode(bytes.fromhex(HEADERS + "0400000001000000" "1d001080"))


def test_access_started_event_call_is_four_bare_bytes() -> None:
    # Windows sends four uninitialized bytes, e.g. 28 b7 9d 02.
    call = AccessStartedEventCall.decode(bytes.fromhex("28b79d02"))
    assert call.unused == 0x029DB728
    assert call.encode() == bytes.fromhex("28b79d02")
    with pytest.raises(ProtocolError) as info:
        AccessStartedEventCall.decode(bytes(8))
    assert info.value.pdu == "ScardAccessStartedEvent_Call"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (LIST_READERS_A_RETURN[:-8], "ObjectBufferLength"),  # no longer matches the body
        # 24 bytes more than ObjectBufferLength: past rdesktop's understatement (8 or 16)
        (LIST_READERS_A_RETURN + bytes(24), "ObjectBufferLength"),
        (
            LIST_READERS_A_RETURN[:28] + bytes.fromhex("14000000") + LIST_READERS_A_RETURN[32:],
            "msz",
        ),  # max count 20 != cBytes 19
        (
            LIST_READERS_A_RETURN[:16]
            + bytes.fromhex("00000000" "01000100")
            + LIST_READERS_A_RETURN[24:],
            "cBytes",
        ),  # cBytes 65537, over the limit
    ],
)
def test_malformed_list_readers_returns(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ListReadersReturn.decode(data)
    assert info.value.pdu == "ListReaders_Return"
    assert info.value.field == field
