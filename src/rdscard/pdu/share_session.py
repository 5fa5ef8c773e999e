"""Set Error Info (MS-RDPBCGR 2.2.5.1) and Save Session Info (2.2.10.1) Share Data bodies.

The server sends Set Error Info just before it disconnects, so that the
client can tell the user why, and Save Session Info to report the logon.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.share_base import PduType2, ShareDataBodyBase

# -- set error info (2.2.5.1.1) --------------------------------------------------------------


class ErrorInfo(IntEnum):
    """errorInfo codes of TS_SET_ERROR_INFO_PDU (MS-RDPBCGR 2.2.5.1.1) the server uses."""

    ERRINFO_NONE = 0x00000000
    ERRINFO_RPC_INITIATED_DISCONNECT = 0x00000001
    ERRINFO_RPC_INITIATED_LOGOFF = 0x00000002
    ERRINFO_IDLE_TIMEOUT = 0x00000003
    ERRINFO_LOGON_TIMEOUT = 0x00000004
    ERRINFO_DISCONNECTED_BY_OTHERCONNECTION = 0x00000005
    ERRINFO_OUT_OF_MEMORY = 0x00000006
    ERRINFO_SERVER_DENIED_CONNECTION = 0x00000007
    ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES = 0x00000009
    ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED = 0x0000000A
    ERRINFO_RPC_INITIATED_DISCONNECT_BYUSER = 0x0000000B
    ERRINFO_LOGOFF_BY_USER = 0x0000000C
    ERRINFO_CLOSE_STACK_ON_DRIVER_NOT_READY = 0x0000000F
    ERRINFO_SERVER_DWM_CRASH = 0x00000010
    ERRINFO_CLOSE_STACK_ON_DRIVER_FAILURE = 0x00000011
    ERRINFO_CLOSE_STACK_ON_DRIVER_IFACE_FAILURE = 0x00000012
    ERRINFO_SERVER_WINLOGON_CRASH = 0x00000017
    ERRINFO_SERVER_CSRSS_CRASH = 0x00000018
    ERRINFO_SERVER_SHUTDOWN = 0x00000019
    ERRINFO_SERVER_REBOOT = 0x0000001A
    ERRINFO_LICENSE_INTERNAL = 0x00000100
    ERRINFO_LICENSE_NO_LICENSE_SERVER = 0x00000101
    ERRINFO_LICENSE_NO_LICENSE = 0x00000102
    ERRINFO_LICENSE_BAD_CLIENT_MSG = 0x00000103
    ERRINFO_LICENSE_HWID_DOESNT_MATCH_LICENSE = 0x00000104
    ERRINFO_LICENSE_BAD_CLIENT_LICENSE = 0x00000105
    ERRINFO_LICENSE_CANT_FINISH_PROTOCOL = 0x00000106
    ERRINFO_LICENSE_CLIENT_ENDED_PROTOCOL = 0x00000107
    ERRINFO_LICENSE_BAD_CLIENT_ENCRYPTION = 0x00000108
    ERRINFO_LICENSE_CANT_UPGRADE_LICENSE = 0x00000109
    ERRINFO_LICENSE_NO_REMOTE_CONNECTIONS = 0x0000010A
    ERRINFO_UNKNOWNPDUTYPE2 = 0x000010C9
    ERRINFO_UNKNOWNPDUTYPE = 0x000010CA
    ERRINFO_DATAPDUSEQUENCE = 0x000010CB
    ERRINFO_CONTROLPDUSEQUENCE = 0x000010CD
    ERRINFO_INVALIDCONTROLPDUACTION = 0x000010CE
    ERRINFO_INVALIDINPUTPDUTYPE = 0x000010CF
    ERRINFO_INVALIDINPUTPDUMOUSE = 0x000010D0
    ERRINFO_INVALIDREFRESHRECTPDU = 0x000010D1
    ERRINFO_CREATEUSERDATAFAILED = 0x000010D2
    ERRINFO_CONNECTFAILED = 0x000010D3
    ERRINFO_CONFIRMACTIVEWRONGSHAREID = 0x000010D4
    ERRINFO_CONFIRMACTIVEWRONGORIGINATOR = 0x000010D5
    ERRINFO_PERSISTENTKEYPDUBADLENGTH = 0x000010DA
    ERRINFO_INPUTPDUBADLENGTH = 0x000010DE
    ERRINFO_SHAREDATATOOSHORT = 0x000010E2
    ERRINFO_BADSUPRESSOUTPUTPDU = 0x000010E3
    ERRINFO_CONFIRMACTIVEPDUTOOSHORT = 0x000010E5
    ERRINFO_CAPABILITYSETTOOSMALL = 0x000010E7
    ERRINFO_CAPABILITYSETTOOLARGE = 0x000010E8
    ERRINFO_BADCAPABILITIES = 0x000010EA
    ERRINFO_INVALIDCHANNELID = 0x000010EF
    ERRINFO_VCHANNELSTOOMANY = 0x000010F0


@dataclass(frozen=True)
class SetErrorInfo(ShareDataBodyBase):
    """TS_SET_ERROR_INFO_PDU (MS-RDPBCGR 2.2.5.1.1): why the server is disconnecting.

    ``error_info`` is an :class:`ErrorInfo` when the code is known here,
    otherwise the plain integer.
    """

    PDU_TYPE2 = PduType2.PDUTYPE2_SET_ERROR_INFO_PDU
    NAME = "Set Error Info PDU"

    error_info: int

    def encode(self) -> bytes:
        return Writer().u32le(self.error_info).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        code = r.u32le("errorInfo")
        r.expect_end()
        try:
            return cls(ErrorInfo(code))
        except ValueError:
            return cls(code)


# -- save session info (2.2.10.1) ----------------------------------------------------------


class InfoType(IntEnum):
    """infoType of TS_SAVE_SESSION_INFO_PDU_DATA (MS-RDPBCGR 2.2.10.1.1)."""

    INFOTYPE_LOGON = 0x00000000
    INFOTYPE_LOGON_LONG = 0x00000001
    INFOTYPE_LOGON_PLAINNOTIFY = 0x00000002
    INFOTYPE_LOGON_EXTENDED_INFO = 0x00000003


#: Fixed sizes: TS_LOGON_INFO and TS_PLAIN_NOTIFY are 576 bytes; the
#: TS_LOGON_INFO_VERSION_2 header is 18 bytes followed by 558 pad bytes.
LOGON_INFO_SIZE: Final = 576
LOGON_INFO_V2_HEADER: Final = 18
LOGON_INFO_V2_PAD: Final = 558
#: Largest infoData accepted (the version 2 names are at most 52 + 512 bytes).
MAX_SAVE_SESSION_INFO: Final = 2048
SAVE_SESSION_PDU_VERSION_ONE: Final = 0x0001


@dataclass(frozen=True)
class SaveSessionInfo(ShareDataBodyBase):
    """TS_SAVE_SESSION_INFO_PDU_DATA (MS-RDPBCGR 2.2.10.1.1), the logon notification.

    ``info_data`` is kept raw; :meth:`logon_long` and :meth:`plain_notify`
    build the two forms the server sends.
    """

    PDU_TYPE2 = PduType2.PDUTYPE2_SAVE_SESSION_INFO
    NAME = "Save Session Info PDU"

    info_type: InfoType
    info_data: bytes

    @classmethod
    def logon_long(cls, session_id: int, domain: str, user_name: str) -> Self:
        """INFOTYPE_LOGON_LONG with TS_LOGON_INFO_VERSION_2 (2.2.10.1.1.2)."""
        domain_raw = domain.encode("utf-16-le") + b"\0\0"
        user_raw = user_name.encode("utf-16-le") + b"\0\0"
        if len(domain_raw) > 52 or len(user_raw) > 512:
            raise ValueError("domain or user name too long for TS_LOGON_INFO_VERSION_2")
        w = Writer().u16le(SAVE_SESSION_PDU_VERSION_ONE).u32le(LOGON_INFO_V2_HEADER)
        w.u32le(session_id).u32le(len(domain_raw)).u32le(len(user_raw))
        w.zeros(LOGON_INFO_V2_PAD).raw(domain_raw).raw(user_raw)
        return cls(InfoType.INFOTYPE_LOGON_LONG, w.getvalue())

    @classmethod
    def plain_notify(cls) -> Self:
        """INFOTYPE_LOGON_PLAINNOTIFY with TS_PLAIN_NOTIFY (2.2.10.1.1.3)."""
        return cls(InfoType.INFOTYPE_LOGON_PLAINNOTIFY, bytes(LOGON_INFO_SIZE))

    def encode(self) -> bytes:
        return Writer().u32le(self.info_type).raw(self.info_data).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        r = Reader(data, cls.NAME)
        raw_type = r.u32le("infoType")
        try:
            info_type = InfoType(raw_type)
        except ValueError:
            raise r.error("infoType", f"unknown info type {raw_type}") from None
        if r.remaining > MAX_SAVE_SESSION_INFO:
            raise r.error("infoData", f"{r.remaining} bytes exceeds {MAX_SAVE_SESSION_INFO}")
        if r.remaining < LOGON_INFO_SIZE:
            raise r.error("infoData", f"{r.remaining} bytes, at least {LOGON_INFO_SIZE} needed")
        return cls(info_type, r.rest())
