"""The Basic Security Header (MS-RDPBCGR 2.2.8.1.1.2.1).

Under TLS (Enhanced RDP Security) nothing is encrypted at this layer, but the
Client Info PDU and the licensing PDUs still carry a four-byte header whose
flags say what the payload is. Standard RDP Security (RC4, SEC_ENCRYPT) is
not supported: a payload flagged SEC_ENCRYPT is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Self

from rdscard.pdu.buffer import Reader, Writer

PDU = "Basic Security Header"


class SecurityFlag(IntFlag):
    """TS_SECURITY_HEADER flags (MS-RDPBCGR 2.2.8.1.1.2.1)."""

    SEC_EXCHANGE_PKT = 0x0001
    SEC_TRANSPORT_REQ = 0x0002
    RDP_SEC_TRANSPORT_RSP = 0x0004
    SEC_ENCRYPT = 0x0008
    SEC_RESET_SEQNO = 0x0010
    SEC_IGNORE_SEQNO = 0x0020
    SEC_INFO_PKT = 0x0040
    SEC_LICENSE_PKT = 0x0080
    SEC_LICENSE_ENCRYPT = 0x0200
    SEC_REDIRECTION_PKT = 0x0400
    SEC_SECURE_CHECKSUM = 0x0800
    SEC_AUTODETECT_REQ = 0x1000
    SEC_AUTODETECT_RSP = 0x2000
    SEC_HEARTBEAT = 0x4000
    SEC_FLAGSHI_VALID = 0x8000


@dataclass(frozen=True)
class BasicSecurityHeader:
    """TS_SECURITY_HEADER (MS-RDPBCGR 2.2.8.1.1.2.1): flags and flagsHi."""

    flags: SecurityFlag
    flags_hi: int = 0

    SIZE = 4

    def encode(self) -> bytes:
        return Writer().u16le(self.flags).u16le(self.flags_hi).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        reader = Reader(data, PDU)
        header = cls.read(reader)
        reader.expect_end()
        return header

    @classmethod
    def read(cls, reader: Reader) -> Self:
        """Read the header from the front of ``reader``."""
        flags = SecurityFlag(reader.u16le("flags"))
        flags_hi = reader.u16le("flagsHi")
        return cls(flags, flags_hi)


def wrap_basic_security(flags: SecurityFlag, body: bytes, flags_hi: int = 0) -> bytes:
    """``body`` preceded by a Basic Security Header carrying ``flags``."""
    if flags & SecurityFlag.SEC_ENCRYPT:
        raise ValueError("SEC_ENCRYPT needs Standard RDP Security, which is not supported")
    return BasicSecurityHeader(flags, flags_hi).encode() + body


def unwrap_basic_security(data: bytes) -> tuple[SecurityFlag, bytes]:
    """Split a payload into its security flags and the bytes that follow.

    Raises ProtocolError when the header is truncated or the payload is
    encrypted (SEC_ENCRYPT): only Enhanced RDP Security (TLS) is supported.
    """
    reader = Reader(data, PDU)
    header = BasicSecurityHeader.read(reader)
    if header.flags & SecurityFlag.SEC_ENCRYPT:
        raise reader.error("flags", "SEC_ENCRYPT set: Standard RDP Security is not supported")
    return header.flags, reader.rest()
