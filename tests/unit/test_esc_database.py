"""Reader database calls: ContextAndString(A/W) and ContextAndTwoString(A/W) (MS-RDPESC 2.2.2)."""

from __future__ import annotations

import pytest

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.constants import ScardIoctl
from rdscard.pdu.esc.database import (
    ContextAndStringACall,
    ContextAndStringWCall,
    ContextAndTwoStringACall,
    ContextAndTwoStringWCall,
)
from rdscard.pdu.esc.dispatch import decode_call
from rdscard.pdu.ndr import RedirScardContext

HEADERS = "01100800cccccccc"
CONTEXT = RedirScardContext(bytes.fromhex("84db0301"))

# IntroduceReaderGroupA: a 4-byte context and the group name.
INTRODUCE_GROUP_A = bytes.fromhex(
    HEADERS + "2800000000000000"  # ObjectBufferLength 40
    "04000000" "00000200"  # Context
    "04000200"  # sz referent
    "04000000" "84db0301"  # context bytes
    "04000000" "00000000" "04000000" "47727000"  # "Grp" NUL
    "00000000"  # padding
)


def test_context_and_string_a_call() -> None:
    call = ContextAndStringACall.decode(INTRODUCE_GROUP_A)
    assert call == ContextAndStringACall(CONTEXT, "Grp")
    assert call.encode() == INTRODUCE_GROUP_A
    assert decode_call(ScardIoctl.SCARD_IOCTL_INTRODUCEREADERGROUPA, INTRODUCE_GROUP_A) == call


def test_context_and_string_requires_the_name() -> None:
    data = bytearray(INTRODUCE_GROUP_A)
    data[24:28] = bytes(4)
    with pytest.raises(ProtocolError) as info:
        ContextAndStringACall.decode(bytes(data))
    assert info.value.field == "sz"


def test_wide_and_two_string_round_trips() -> None:
    wide = ContextAndStringWCall(CONTEXT, "Lecteur")
    assert ContextAndStringWCall.decode(wide.encode()) == wide
    for cls in (ContextAndTwoStringACall, ContextAndTwoStringWCall):
        call = cls(CONTEXT, "Virtual PCD 00 00", "SCard$DefaultReaders")
        assert cls.decode(call.encode()) == call
        half = cls(CONTEXT, "Virtual PCD 00 00", None)
        assert cls.decode(half.encode()) == half
