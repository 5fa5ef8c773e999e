"""X.224 class 0 TPDUs and RDP security negotiation (MS-RDPBCGR 2.2.1.1, 2.2.1.2).

The Connection Request carries an optional routing token or cookie, an
optional RDP_NEG_REQ and an optional RDP_NEG_CORRELATION_INFO; the Connection
Confirm carries an RDP_NEG_RSP or an RDP_NEG_FAILURE. Every later slow-path
PDU is wrapped in the 3-byte X.224 Data TPDU header (02 F0 80).

The functions here take and return the TPDU without its TPKT header; see
:mod:`rdscard.pdu.tpkt` for the framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer


class TpduCode(IntEnum):
    """X.224 TPDU codes (high nibble of the second byte), X.224 section 13."""

    CONNECTION_REQUEST = 0xE0
    CONNECTION_CONFIRM = 0xD0
    DISCONNECT_REQUEST = 0x80
    DATA = 0xF0
    ERROR = 0x70


class NegType(IntEnum):
    """The type byte of the negotiation structures (2.2.1.1.1, 2.2.1.1.2, 2.2.1.2.1, 2.2.1.2.2)."""

    TYPE_RDP_NEG_REQ = 0x01
    TYPE_RDP_NEG_RSP = 0x02
    TYPE_RDP_NEG_FAILURE = 0x03
    TYPE_RDP_CORRELATION_INFO = 0x06


class Protocol(IntFlag):
    """Security protocols: RDP_NEG_REQ requestedProtocols, RDP_NEG_RSP selectedProtocol.

    The spec names are ``PROTOCOL_RDP``, ``PROTOCOL_SSL``, ... (2.2.1.1.1).
    """

    RDP = 0x00000000
    SSL = 0x00000001
    HYBRID = 0x00000002
    RDSTLS = 0x00000004
    HYBRID_EX = 0x00000008
    RDSAAD = 0x00000010


class NegRequestFlags(IntFlag):
    """RDP_NEG_REQ flags (MS-RDPBCGR 2.2.1.1.1)."""

    RESTRICTED_ADMIN_MODE_REQUIRED = 0x01
    REDIRECTED_AUTHENTICATION_MODE_REQUIRED = 0x02
    CORRELATION_INFO_PRESENT = 0x08


class NegResponseFlags(IntFlag):
    """RDP_NEG_RSP flags (MS-RDPBCGR 2.2.1.2.1)."""

    EXTENDED_CLIENT_DATA_SUPPORTED = 0x01
    DYNVC_GFX_PROTOCOL_SUPPORTED = 0x02
    NEGRSP_FLAG_RESERVED = 0x04
    RESTRICTED_ADMIN_MODE_SUPPORTED = 0x08
    REDIRECTED_AUTHENTICATION_MODE_SUPPORTED = 0x10


class FailureCode(IntEnum):
    """RDP_NEG_FAILURE failureCode (MS-RDPBCGR 2.2.1.2.2)."""

    SSL_REQUIRED_BY_SERVER = 0x00000001
    SSL_NOT_ALLOWED_BY_SERVER = 0x00000002
    SSL_CERT_NOT_ON_SERVER = 0x00000003
    INCONSISTENT_FLAGS = 0x00000004
    HYBRID_REQUIRED_BY_SERVER = 0x00000005
    SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER = 0x00000006


NO_REQUEST_FLAGS: Final = NegRequestFlags(0)
NO_RESPONSE_FLAGS: Final = NegResponseFlags(0)
NEG_STRUCT_SIZE: Final = 8
CORRELATION_INFO_SIZE: Final = 36
COOKIE_PREFIX: Final = b"Cookie: mstshash="
CRLF: Final = b"\r\n"
#: 2.2.1.2: the server's Source reference ("bogus value" in 4.1.2).
SERVER_SOURCE_REFERENCE: Final = 0x1234
DATA_HEADER: Final = b"\x02\xf0\x80"

_CR_PDU: Final = "X.224 Connection Request"
_CC_PDU: Final = "X.224 Connection Confirm"
_DT_PDU: Final = "X.224 Data"


@dataclass(frozen=True, slots=True)
class NegotiationRequest:
    """RDP_NEG_REQ (MS-RDPBCGR 2.2.1.1.1)."""

    requested_protocols: Protocol
    flags: NegRequestFlags = NO_REQUEST_FLAGS

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(NegType.TYPE_RDP_NEG_REQ)
            .u8(self.flags)
            .u16le(NEG_STRUCT_SIZE)
            .u32le(self.requested_protocols)
            .getvalue()
        )

    @classmethod
    def decode_from(cls, reader: Reader) -> Self:
        kind = reader.u8("rdpNegReq.type")
        if kind != NegType.TYPE_RDP_NEG_REQ:
            raise reader.error("rdpNegReq.type", f"expected 1, got {kind}")
        flags = reader.u8("rdpNegReq.flags")
        length = reader.u16le("rdpNegReq.length")
        if length != NEG_STRUCT_SIZE:
            raise reader.error("rdpNegReq.length", f"expected 8, got {length}")
        protocols = reader.u32le("rdpNegReq.requestedProtocols")
        return cls(Protocol(protocols), NegRequestFlags(flags))


@dataclass(frozen=True, slots=True)
class CorrelationInfo:
    """RDP_NEG_CORRELATION_INFO (MS-RDPBCGR 2.2.1.1.2): a 16-byte correlation id."""

    correlation_id: bytes
    flags: int = 0

    def __post_init__(self) -> None:
        if len(self.correlation_id) != 16:
            raise ValueError("correlationId must be 16 bytes")

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(NegType.TYPE_RDP_CORRELATION_INFO)
            .u8(self.flags)
            .u16le(CORRELATION_INFO_SIZE)
            .raw(self.correlation_id)
            .zeros(16)
            .getvalue()
        )

    @classmethod
    def decode_from(cls, reader: Reader) -> Self:
        kind = reader.u8("rdpCorrelationInfo.type")
        if kind != NegType.TYPE_RDP_CORRELATION_INFO:
            raise reader.error("rdpCorrelationInfo.type", f"expected 6, got {kind}")
        flags = reader.u8("rdpCorrelationInfo.flags")
        length = reader.u16le("rdpCorrelationInfo.length")
        if length != CORRELATION_INFO_SIZE:
            raise reader.error("rdpCorrelationInfo.length", f"expected 36, got {length}")
        correlation_id = reader.raw(16, "rdpCorrelationInfo.correlationId")
        # 2.2.1.1.2: the first byte is neither 0x00 nor 0xF4 and no byte is 0x0D.
        if correlation_id[0] in (0x00, 0xF4) or 0x0D in correlation_id:
            raise reader.error("rdpCorrelationInfo.correlationId", "reserved byte value")
        reader.skip(16, "rdpCorrelationInfo.reserved")
        return cls(correlation_id, flags)


def _read_header(reader: Reader, expected: TpduCode, total: int) -> tuple[int, int, int]:
    """Length indicator, code, references and class of a CR or CC TPDU."""
    length_indicator = reader.u8("lengthIndicator")
    if length_indicator != total - 1:
        raise reader.error(
            "lengthIndicator", f"says {length_indicator}, TPDU has {total - 1} bytes after it"
        )
    code = reader.u8("code")
    if code & 0xF0 != expected:
        raise reader.error("code", f"expected 0x{int(expected):02x}, got 0x{code:02x}")
    dst_ref = reader.u16be("dstRef")
    src_ref = reader.u16be("srcRef")
    class_options = reader.u8("classOptions")
    if class_options & 0xF0:
        raise reader.error("classOptions", f"class {class_options >> 4} is not class 0")
    return dst_ref, src_ref, class_options


@dataclass(frozen=True, slots=True)
class ConnectionRequest:
    """Client X.224 Connection Request PDU (MS-RDPBCGR 2.2.1.1), TPKT header excluded.

    ``cookie`` is the IDENTIFIER of "Cookie: mstshash=IDENTIFIER" (its bytes
    read as Latin-1, since the client's ANSI code page is unknown); a
    ``routing_token`` is kept as raw bytes without its CR LF. At most one of
    them is present.
    """

    cookie: str | None = None
    routing_token: bytes | None = None
    negotiation: NegotiationRequest | None = None
    correlation_info: CorrelationInfo | None = None
    dst_ref: int = 0
    src_ref: int = 0
    class_options: int = 0

    @property
    def requested_protocols(self) -> Protocol:
        """The protocols the client offers; PROTOCOL_RDP without an RDP_NEG_REQ."""
        return self.negotiation.requested_protocols if self.negotiation else Protocol.RDP

    def encode(self) -> bytes:
        body = Writer()
        if self.routing_token is not None:
            body.raw(self.routing_token).raw(CRLF)
        elif self.cookie is not None:
            body.raw(COOKIE_PREFIX).raw(self.cookie.encode("latin-1")).raw(CRLF)
        if self.negotiation is not None:
            body.raw(self.negotiation.encode())
        if self.correlation_info is not None:
            body.raw(self.correlation_info.encode())
        variable = body.getvalue()
        length_indicator = 6 + len(variable)
        if length_indicator > 0xFE:
            raise ValueError("X.224 Connection Request too long")
        return (
            Writer()
            .u8(length_indicator)
            .u8(TpduCode.CONNECTION_REQUEST)
            .u16be(self.dst_ref)
            .u16be(self.src_ref)
            .u8(self.class_options)
            .raw(variable)
            .getvalue()
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        reader = Reader(data, _CR_PDU)
        code = TpduCode.CONNECTION_REQUEST
        dst_ref, src_ref, class_options = _read_header(reader, code, len(data))
        cookie: str | None = None
        routing_token: bytes | None = None
        rest = data[reader.offset :]
        if rest and rest[0] != NegType.TYPE_RDP_NEG_REQ:
            end = rest.find(CRLF)
            if end < 0:
                raise reader.error("cookie", "no CR LF terminator")
            text = rest[:end]
            reader.skip(end + 2, "cookie")
            if text.startswith(COOKIE_PREFIX):
                # An ANSI string in the client's code page; the server ignores it
                # (3.3.5.3.1), so any byte is accepted.
                cookie = text[len(COOKIE_PREFIX) :].decode("latin-1")
            else:
                routing_token = text
        negotiation: NegotiationRequest | None = None
        correlation: CorrelationInfo | None = None
        if reader.remaining:
            negotiation = NegotiationRequest.decode_from(reader)
            if negotiation.flags & NegRequestFlags.CORRELATION_INFO_PRESENT:
                correlation = CorrelationInfo.decode_from(reader)
        reader.expect_end()
        return cls(cookie, routing_token, negotiation, correlation, dst_ref, src_ref, class_options)


@dataclass(frozen=True, slots=True)
class NegotiationResponse:
    """RDP_NEG_RSP (MS-RDPBCGR 2.2.1.2.1)."""

    selected_protocol: Protocol
    flags: NegResponseFlags = NO_RESPONSE_FLAGS

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(NegType.TYPE_RDP_NEG_RSP)
            .u8(self.flags)
            .u16le(NEG_STRUCT_SIZE)
            .u32le(self.selected_protocol)
            .getvalue()
        )


@dataclass(frozen=True, slots=True)
class NegotiationFailure:
    """RDP_NEG_FAILURE (MS-RDPBCGR 2.2.1.2.2)."""

    failure_code: FailureCode
    flags: int = 0

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(NegType.TYPE_RDP_NEG_FAILURE)
            .u8(self.flags)
            .u16le(NEG_STRUCT_SIZE)
            .u32le(self.failure_code)
            .getvalue()
        )


@dataclass(frozen=True, slots=True)
class ConnectionConfirm:
    """Server X.224 Connection Confirm PDU (MS-RDPBCGR 2.2.1.2), TPKT header excluded."""

    negotiation: NegotiationResponse | NegotiationFailure | None = None
    dst_ref: int = 0
    src_ref: int = SERVER_SOURCE_REFERENCE
    class_options: int = 0

    @classmethod
    def selecting(
        cls,
        protocol: Protocol,
        flags: NegResponseFlags = NegResponseFlags.EXTENDED_CLIENT_DATA_SUPPORTED,
    ) -> Self:
        """A confirm with an RDP_NEG_RSP selecting ``protocol``."""
        return cls(NegotiationResponse(protocol, flags))

    @classmethod
    def failing(cls, code: FailureCode) -> Self:
        """A confirm with an RDP_NEG_FAILURE carrying ``code``."""
        return cls(NegotiationFailure(code))

    def encode(self) -> bytes:
        variable = self.negotiation.encode() if self.negotiation is not None else b""
        return (
            Writer()
            .u8(6 + len(variable))
            .u8(TpduCode.CONNECTION_CONFIRM)
            .u16be(self.dst_ref)
            .u16be(self.src_ref)
            .u8(self.class_options)
            .raw(variable)
            .getvalue()
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        reader = Reader(data, _CC_PDU)
        code = TpduCode.CONNECTION_CONFIRM
        dst_ref, src_ref, class_options = _read_header(reader, code, len(data))
        negotiation: NegotiationResponse | NegotiationFailure | None = None
        if reader.remaining:
            kind = reader.u8("rdpNegData.type")
            flags = reader.u8("rdpNegData.flags")
            length = reader.u16le("rdpNegData.length")
            if length != NEG_STRUCT_SIZE:
                raise reader.error("rdpNegData.length", f"expected 8, got {length}")
            value = reader.u32le("rdpNegData.value")
            if kind == NegType.TYPE_RDP_NEG_RSP:
                negotiation = NegotiationResponse(Protocol(value), NegResponseFlags(flags))
            elif kind == NegType.TYPE_RDP_NEG_FAILURE:
                try:
                    failure = FailureCode(value)
                except ValueError:
                    raise reader.error("failureCode", f"unknown code {value}") from None
                negotiation = NegotiationFailure(failure, flags)
            else:
                raise reader.error("rdpNegData.type", f"unexpected type {kind}")
        reader.expect_end()
        return cls(negotiation, dst_ref, src_ref, class_options)


def wrap_data(payload: bytes) -> bytes:
    """Prefix ``payload`` with the X.224 Data TPDU header (X.224 13.7: LI 2, DT, EOT)."""
    return DATA_HEADER + payload


def unwrap_data(tpdu: bytes) -> bytes:
    """The user data of an X.224 Data TPDU; anything else raises ProtocolError."""
    reader = Reader(tpdu, _DT_PDU)
    length_indicator = reader.u8("lengthIndicator")
    code = reader.u8("code")
    if code & 0xF0 != TpduCode.DATA:
        raise reader.error("code", f"expected a Data TPDU (0xf0), got 0x{code:02x}")
    if length_indicator != 2:
        raise reader.error("lengthIndicator", f"expected 2, got {length_indicator}")
    eot = reader.u8("eot")
    if eot != 0x80:
        raise reader.error("eot", f"expected 0x80 (last data unit), got 0x{eot:02x}")
    return reader.rest()


def tpdu_code(tpdu: bytes) -> TpduCode:
    """The code of an X.224 TPDU (to tell a Disconnect Request from Data)."""
    reader = Reader(tpdu, "X.224 TPDU")
    reader.u8("lengthIndicator")
    code = reader.u8("code") & 0xF0
    try:
        return TpduCode(code)
    except ValueError:
        raise reader.error("code", f"unknown TPDU code 0x{code:02x}") from None


wrap_x224_data = wrap_data
unwrap_x224_data = unwrap_data
