"""Which call and return structures each IOCTL carries (MS-RDPESC 3.1.4).

:data:`IOCTL_MESSAGES` maps an IOCTL code to its (call, return) types;
:func:`decode_call` and :func:`decode_return` decode an input or output
buffer by IOCTL code; every IOCTL of MS-RDPESC 3.1.4 is in the table.
"""

from __future__ import annotations

from typing import Final

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.base import NdrMessage
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
from rdscard.pdu.esc.constants import ScardIoctl
from rdscard.pdu.esc.context import (
    AccessStartedEventCall,
    ContextCall,
    EstablishContextCall,
    EstablishContextReturn,
    ListReaderGroupsCall,
    ListReaderGroupsReturn,
    ListReadersCall,
    ListReadersReturn,
    LongReturn,
)
from rdscard.pdu.esc.database import (
    ContextAndStringACall,
    ContextAndStringWCall,
    ContextAndTwoStringACall,
    ContextAndTwoStringWCall,
)
from rdscard.pdu.esc.io import (
    ControlCall,
    ControlReturn,
    GetAttribCall,
    GetAttribReturn,
    SetAttribCall,
    TransmitCall,
    TransmitReturn,
)
from rdscard.pdu.esc.status_change import (
    GetStatusChangeACall,
    GetStatusChangeReturn,
    GetStatusChangeWCall,
    LocateCardsACall,
    LocateCardsByATRACall,
    LocateCardsByATRWCall,
    LocateCardsReturn,
    LocateCardsWCall,
)

MessagePair = tuple[type[NdrMessage], type[NdrMessage]]

_I = ScardIoctl
IOCTL_MESSAGES: Final[dict[ScardIoctl, MessagePair]] = {
    _I.SCARD_IOCTL_ESTABLISHCONTEXT: (EstablishContextCall, EstablishContextReturn),
    _I.SCARD_IOCTL_RELEASECONTEXT: (ContextCall, LongReturn),
    _I.SCARD_IOCTL_ISVALIDCONTEXT: (ContextCall, LongReturn),
    _I.SCARD_IOCTL_LISTREADERGROUPSA: (ListReaderGroupsCall, ListReaderGroupsReturn),
    _I.SCARD_IOCTL_LISTREADERGROUPSW: (ListReaderGroupsCall, ListReaderGroupsReturn),
    _I.SCARD_IOCTL_LISTREADERSA: (ListReadersCall, ListReadersReturn),
    _I.SCARD_IOCTL_LISTREADERSW: (ListReadersCall, ListReadersReturn),
    _I.SCARD_IOCTL_INTRODUCEREADERGROUPA: (ContextAndStringACall, LongReturn),
    _I.SCARD_IOCTL_INTRODUCEREADERGROUPW: (ContextAndStringWCall, LongReturn),
    _I.SCARD_IOCTL_FORGETREADERGROUPA: (ContextAndStringACall, LongReturn),
    _I.SCARD_IOCTL_FORGETREADERGROUPW: (ContextAndStringWCall, LongReturn),
    _I.SCARD_IOCTL_INTRODUCEREADERA: (ContextAndTwoStringACall, LongReturn),
    _I.SCARD_IOCTL_INTRODUCEREADERW: (ContextAndTwoStringWCall, LongReturn),
    _I.SCARD_IOCTL_FORGETREADERA: (ContextAndStringACall, LongReturn),
    _I.SCARD_IOCTL_FORGETREADERW: (ContextAndStringWCall, LongReturn),
    _I.SCARD_IOCTL_ADDREADERTOGROUPA: (ContextAndTwoStringACall, LongReturn),
    _I.SCARD_IOCTL_ADDREADERTOGROUPW: (ContextAndTwoStringWCall, LongReturn),
    _I.SCARD_IOCTL_REMOVEREADERFROMGROUPA: (ContextAndTwoStringACall, LongReturn),
    _I.SCARD_IOCTL_REMOVEREADERFROMGROUPW: (ContextAndTwoStringWCall, LongReturn),
    _I.SCARD_IOCTL_LOCATECARDSA: (LocateCardsACall, LocateCardsReturn),
    _I.SCARD_IOCTL_LOCATECARDSW: (LocateCardsWCall, LocateCardsReturn),
    _I.SCARD_IOCTL_GETSTATUSCHANGEA: (GetStatusChangeACall, GetStatusChangeReturn),
    _I.SCARD_IOCTL_GETSTATUSCHANGEW: (GetStatusChangeWCall, GetStatusChangeReturn),
    _I.SCARD_IOCTL_CANCEL: (ContextCall, LongReturn),
    _I.SCARD_IOCTL_CONNECTA: (ConnectACall, ConnectReturn),
    _I.SCARD_IOCTL_CONNECTW: (ConnectWCall, ConnectReturn),
    _I.SCARD_IOCTL_RECONNECT: (ReconnectCall, ReconnectReturn),
    _I.SCARD_IOCTL_DISCONNECT: (HCardAndDispositionCall, LongReturn),
    _I.SCARD_IOCTL_BEGINTRANSACTION: (HCardAndDispositionCall, LongReturn),
    _I.SCARD_IOCTL_ENDTRANSACTION: (HCardAndDispositionCall, LongReturn),
    _I.SCARD_IOCTL_STATE: (StateCall, StateReturn),
    _I.SCARD_IOCTL_STATUSA: (StatusCall, StatusReturn),
    _I.SCARD_IOCTL_STATUSW: (StatusCall, StatusReturn),
    _I.SCARD_IOCTL_TRANSMIT: (TransmitCall, TransmitReturn),
    _I.SCARD_IOCTL_CONTROL: (ControlCall, ControlReturn),
    _I.SCARD_IOCTL_GETATTRIB: (GetAttribCall, GetAttribReturn),
    _I.SCARD_IOCTL_SETATTRIB: (SetAttribCall, LongReturn),
    _I.SCARD_IOCTL_ACCESSSTARTEDEVENT: (AccessStartedEventCall, LongReturn),
    _I.SCARD_IOCTL_RELEASETARTEDEVENT: (AccessStartedEventCall, LongReturn),
    _I.SCARD_IOCTL_LOCATECARDSBYATRA: (LocateCardsByATRACall, LocateCardsReturn),
    _I.SCARD_IOCTL_LOCATECARDSBYATRW: (LocateCardsByATRWCall, LocateCardsReturn),
    _I.SCARD_IOCTL_READCACHEA: (ReadCacheACall, ReadCacheReturn),
    _I.SCARD_IOCTL_READCACHEW: (ReadCacheWCall, ReadCacheReturn),
    _I.SCARD_IOCTL_WRITECACHEA: (WriteCacheACall, LongReturn),
    _I.SCARD_IOCTL_WRITECACHEW: (WriteCacheWCall, LongReturn),
    _I.SCARD_IOCTL_GETTRANSMITCOUNT: (GetTransmitCountCall, GetTransmitCountReturn),
    _I.SCARD_IOCTL_GETREADERICON: (GetReaderIconCall, GetReaderIconReturn),
    _I.SCARD_IOCTL_GETDEVICETYPEID: (GetDeviceTypeIdCall, GetDeviceTypeIdReturn),
}

WIDE_IOCTLS: Final = frozenset(
    code for code in ScardIoctl if code.name.endswith("W") and code in IOCTL_MESSAGES
)


def is_wide(ioctl: int) -> bool:
    """Whether the IOCTL's strings and multi-strings are UTF-16 (the W variants)."""
    return ioctl in WIDE_IOCTLS


def _pair(ioctl: int, pdu: str) -> MessagePair:
    try:
        return IOCTL_MESSAGES[ScardIoctl(ioctl)]
    except (ValueError, KeyError):
        raise ProtocolError(pdu, "IoControlCode", f"unsupported IOCTL 0x{ioctl:08X}") from None


def decode_call(ioctl: int, data: bytes) -> NdrMessage:
    """Decode the input buffer of a Device Control Request for ``ioctl``."""
    return _pair(ioctl, "MS-RDPESC call")[0].decode(data)


def decode_return(ioctl: int, data: bytes) -> NdrMessage:
    """Decode the output buffer of a Device Control Response for ``ioctl``."""
    return _pair(ioctl, "MS-RDPESC return")[1].decode(data)
