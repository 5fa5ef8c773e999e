"""Share Control and Share Data PDUs (MS-RDPBCGR 2.2.8.1.1.1) and capability exchange.

Everything on the MCS I/O channel after licensing starts with a Share Control
Header (2.2.8.1.1.1.1). :func:`decode_share_pdu` turns one such PDU into
:class:`DemandActive`, :class:`ConfirmActive`, :class:`DeactivateAll`,
:class:`ShareData` (whose ``body`` is one of the classes of
:mod:`rdscard.pdu.share_data` and :mod:`rdscard.pdu.share_session`,
re-exported here), :class:`FlowPdu` or, for a
pduType not modelled, :class:`RawShareControl`. :func:`wrap_share_data`
builds a complete Share Data PDU from a body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Self

from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.capabilities import (
    CapabilitySet,
    decode_capability_sets,
    encode_capability_sets,
)
from rdscard.pdu.share_data import (
    ALLOW_DISPLAY_UPDATES,
    DATA_BODIES,
    FONTLIST_FIRST,
    FONTLIST_LAST,
    SUPPRESS_DISPLAY_UPDATES,
    SYNCMSGTYPE_SYNC,
    Control,
    ControlAction,
    FontList,
    FontMap,
    InputPdu,
    PduType2,
    PersistentKeyList,
    RawShareData,
    Rectangle16,
    RefreshRect,
    ShareDataBody,
    ShutdownDenied,
    ShutdownRequest,
    SuppressOutput,
    Synchronize,
)
from rdscard.pdu.share_session import ErrorInfo, InfoType, SaveSessionInfo, SetErrorInfo

__all__ = [
    "ALLOW_DISPLAY_UPDATES",
    "DATA_BODIES",
    "FONTLIST_FIRST",
    "FONTLIST_LAST",
    "SERVER_CHANNEL_ID",
    "SUPPRESS_DISPLAY_UPDATES",
    "SYNCMSGTYPE_SYNC",
    "ConfirmActive",
    "Control",
    "ControlAction",
    "DeactivateAll",
    "DemandActive",
    "ErrorInfo",
    "FlowPdu",
    "FontList",
    "FontMap",
    "InfoType",
    "InputPdu",
    "PduType",
    "PduType2",
    "PersistentKeyList",
    "RawShareControl",
    "RawShareData",
    "Rectangle16",
    "RefreshRect",
    "SaveSessionInfo",
    "SetErrorInfo",
    "ShareControlHeader",
    "ShareData",
    "ShareDataBody",
    "SharePdu",
    "ShutdownDenied",
    "ShutdownRequest",
    "StreamId",
    "SuppressOutput",
    "Synchronize",
    "decode_share_pdu",
    "decode_share_pdus",
    "wrap_share_data",
]

#: The server's channel id by convention (MS-RDPBCGR 2.2.1.13.2.1 originatorId).
SERVER_CHANNEL_ID: Final = 0x03EA
#: PDUVersion subfield of pduType (2.2.8.1.1.1.1).
TS_PROTOCOL_VERSION: Final = 0x1
#: totalLength of a flow control PDU (2.2.8.1.1.1.1: "flow PDUs have 0x8000").
FLOW_MARKER: Final = 0x8000
#: Largest lengthSourceDescriptor accepted.
MAX_SOURCE_DESCRIPTOR: Final = 256
SHARE_CONTROL_HEADER_SIZE: Final = 6
SHARE_DATA_HEADER_SIZE: Final = 18
#: compressedType flag meaning the body is bulk-compressed (MS-RDPBCGR 3.1.8.2.1).
PACKET_COMPRESSED: Final = 0x20


class PduType(IntEnum):
    """type subfield of pduType (MS-RDPBCGR 2.2.8.1.1.1.1)."""

    PDUTYPE_DEMANDACTIVEPDU = 0x1
    PDUTYPE_CONFIRMACTIVEPDU = 0x3
    PDUTYPE_DEACTIVATEALLPDU = 0x6
    PDUTYPE_DATAPDU = 0x7
    PDUTYPE_SERVER_REDIR_PKT = 0xA


class StreamId(IntEnum):
    """streamId of the Share Data Header (MS-RDPBCGR 2.2.8.1.1.1.2)."""

    STREAM_UNDEFINED = 0x00
    STREAM_LOW = 0x01
    STREAM_MED = 0x02
    STREAM_HI = 0x04


@dataclass(frozen=True)
class ShareControlHeader:
    """TS_SHARECONTROLHEADER (MS-RDPBCGR 2.2.8.1.1.1.1): totalLength, pduType, pduSource."""

    total_length: int
    pdu_type: int
    pdu_source: int
    pdu_version: int = TS_PROTOCOL_VERSION

    def write(self, w: Writer) -> None:
        w.u16le(self.total_length)
        w.u16le((self.pdu_version & 0xFFF) << 4 | self.pdu_type & 0xF)
        w.u16le(self.pdu_source)

    @classmethod
    def read(cls, r: Reader) -> Self:
        total_length = r.u16le("totalLength")
        pdu_type = r.u16le("pduType")
        pdu_source = r.u16le("pduSource")
        return cls(total_length, pdu_type & 0xF, pdu_source, pdu_type >> 4)


def _control_pdu(pdu_type: PduType, pdu_source: int, body: bytes) -> bytes:
    total = SHARE_CONTROL_HEADER_SIZE + len(body)
    if total > 0xFFFF:
        raise ValueError(f"share control PDU too long ({total} bytes)")
    w = Writer()
    ShareControlHeader(total, pdu_type, pdu_source).write(w)
    return w.raw(body).getvalue()


def _read_source_descriptor(r: Reader, length: int) -> bytes:
    if length > MAX_SOURCE_DESCRIPTOR:
        raise r.error("lengthSourceDescriptor", f"{length} exceeds {MAX_SOURCE_DESCRIPTOR}")
    return r.raw(length, "sourceDescriptor")


def _read_capabilities(r: Reader, combined: int) -> tuple[CapabilitySet, ...]:
    """numberCapabilities, pad2Octets and capabilitySets: exactly ``combined`` bytes."""
    caps = r.sub(combined, "lengthCombinedCapabilities")
    count = caps.u16le("numberCapabilities")
    caps.skip(2, "pad2Octets")
    sets = decode_capability_sets(caps, count)
    if caps.remaining:
        raise caps.error(
            "lengthCombinedCapabilities", f"{caps.remaining} bytes after the last capability set"
        )
    return sets


def _write_capabilities(w: Writer, sets: tuple[CapabilitySet, ...]) -> None:
    body = encode_capability_sets(sets)
    w.u16le(len(sets)).u16le(0).raw(body)


@dataclass(frozen=True)
class DemandActive:
    """Demand Active PDU (MS-RDPBCGR 2.2.1.13.1, TS_DEMAND_ACTIVE_PDU 2.2.1.13.1.1).

    Server to client: shareId, sourceDescriptor ("RDP"), the server's
    capability sets, sessionId. The encoding is exact in length: the client
    drops the connection on trailing bytes.
    """

    share_id: int
    capability_sets: tuple[CapabilitySet, ...]
    session_id: int = 0
    source_descriptor: bytes = b"RDP\0"
    pdu_source: int = SERVER_CHANNEL_ID

    PDU = "Demand Active PDU"

    def encode(self) -> bytes:
        sets = tuple(self.capability_sets)
        combined = 4 + len(encode_capability_sets(sets))
        w = Writer().u32le(self.share_id)
        w.u16le(len(self.source_descriptor)).u16le(combined).raw(self.source_descriptor)
        _write_capabilities(w, sets)
        w.u32le(self.session_id)
        return _control_pdu(PduType.PDUTYPE_DEMANDACTIVEPDU, self.pdu_source, w.getvalue())

    @classmethod
    def read_body(cls, r: Reader, pdu_source: int) -> Self:
        share_id = r.u32le("shareID")
        length_source = r.u16le("lengthSourceDescriptor")
        combined = r.u16le("lengthCombinedCapabilities")
        source = _read_source_descriptor(r, length_source)
        sets = _read_capabilities(r, combined)
        session_id = r.u32le("sessionId")
        r.expect_end()
        return cls(share_id, sets, session_id, source, pdu_source)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        pdu = decode_share_pdu(data)
        if not isinstance(pdu, cls):
            raise Reader(data, cls.PDU).error("pduType", f"got {type(pdu).__name__}")
        return pdu


@dataclass(frozen=True)
class ConfirmActive:
    """Confirm Active PDU (MS-RDPBCGR 2.2.1.13.2, TS_CONFIRM_ACTIVE_PDU 2.2.1.13.2.1).

    Client to server: shareId, originatorId (the server channel id),
    sourceDescriptor and the client's capability sets.
    """

    share_id: int
    capability_sets: tuple[CapabilitySet, ...]
    source_descriptor: bytes = b"MSTSC\0"
    originator_id: int = SERVER_CHANNEL_ID
    pdu_source: int = 0

    PDU = "Confirm Active PDU"

    def encode(self) -> bytes:
        sets = tuple(self.capability_sets)
        combined = 4 + len(encode_capability_sets(sets))
        w = Writer().u32le(self.share_id).u16le(self.originator_id)
        w.u16le(len(self.source_descriptor)).u16le(combined).raw(self.source_descriptor)
        _write_capabilities(w, sets)
        return _control_pdu(PduType.PDUTYPE_CONFIRMACTIVEPDU, self.pdu_source, w.getvalue())

    @classmethod
    def read_body(cls, r: Reader, pdu_source: int) -> Self:
        share_id = r.u32le("shareID")
        originator_id = r.u16le("originatorID")
        length_source = r.u16le("lengthSourceDescriptor")
        combined = r.u16le("lengthCombinedCapabilities")
        source = _read_source_descriptor(r, length_source)
        sets = _read_capabilities(r, combined)
        r.expect_end()
        return cls(share_id, sets, source, originator_id, pdu_source)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        pdu = decode_share_pdu(data)
        if not isinstance(pdu, cls):
            raise Reader(data, cls.PDU).error("pduType", f"got {type(pdu).__name__}")
        return pdu


@dataclass(frozen=True)
class DeactivateAll:
    """Deactivate All PDU (MS-RDPBCGR 2.2.3.1, TS_DEACTIVATE_ALL_PDU 2.2.3.1.1)."""

    share_id: int
    source_descriptor: bytes = b"\0"
    pdu_source: int = SERVER_CHANNEL_ID

    PDU = "Deactivate All PDU"

    def encode(self) -> bytes:
        w = Writer().u32le(self.share_id).u16le(len(self.source_descriptor))
        w.raw(self.source_descriptor)
        return _control_pdu(PduType.PDUTYPE_DEACTIVATEALLPDU, self.pdu_source, w.getvalue())

    @classmethod
    def read_body(cls, r: Reader, pdu_source: int) -> Self:
        share_id = r.u32le("shareID")
        source = _read_source_descriptor(r, r.u16le("lengthSourceDescriptor"))
        r.expect_end()
        return cls(share_id, source, pdu_source)


@dataclass(frozen=True)
class ShareData:
    """A Share Data PDU: TS_SHAREDATAHEADER (MS-RDPBCGR 2.2.8.1.1.1.2) and its body.

    Compressed bodies are refused: the server never enables bulk compression.
    uncompressedLength is not checked when reading, since senders disagree
    (Windows writes the whole PDU's length, FreeRDP the body's); it is kept,
    with pad1, so that a decoded PDU encodes back to the same bytes. When
    ``uncompressed_length`` is None the body length is written.
    """

    share_id: int
    body: ShareDataBody
    pdu_source: int = SERVER_CHANNEL_ID
    stream_id: int = StreamId.STREAM_LOW
    uncompressed_length: int | None = None
    pad1: int = 0

    PDU = "Share Data PDU"

    @property
    def pdu_type2(self) -> int:
        return self.body.pdu_type2

    def encode(self) -> bytes:
        body = self.body.encode()
        if len(body) > 0xFFFF - SHARE_DATA_HEADER_SIZE:
            raise ValueError(f"share data body too long ({len(body)} bytes)")
        length = len(body) if self.uncompressed_length is None else self.uncompressed_length
        w = Writer().u32le(self.share_id).u8(self.pad1).u8(self.stream_id)
        w.u16le(length).u8(self.body.pdu_type2).u8(0).u16le(0).raw(body)
        return _control_pdu(PduType.PDUTYPE_DATAPDU, self.pdu_source, w.getvalue())

    @classmethod
    def read_body(cls, r: Reader, pdu_source: int) -> Self:
        share_id = r.u32le("shareId")
        pad1 = r.u8("pad1")
        stream_id = r.u8("streamId")
        uncompressed_length = r.u16le("uncompressedLength")
        pdu_type2 = r.u8("pduType2")
        compressed_type = r.u8("compressedType")
        r.u16le("compressedLength")
        if compressed_type & PACKET_COMPRESSED:
            raise r.error("compressedType", "bulk-compressed data is not supported")
        payload = r.rest()
        decoder = DATA_BODIES.get(pdu_type2)
        body = decoder(payload) if decoder else RawShareData(pdu_type2, payload)
        return cls(share_id, body, pdu_source, stream_id, uncompressed_length, pad1)


@dataclass(frozen=True)
class FlowPdu:
    """A flow control PDU (MS-RDPBCGR 2.2.8.1.1.1.1, totalLength 0x8000), ignored by servers."""

    pdu_type_flow: int
    flow_identifier: int
    flow_number: int
    pdu_source: int

    def encode(self) -> bytes:
        w = Writer().u16le(FLOW_MARKER).u8(0).u8(self.pdu_type_flow)
        return w.u8(self.flow_identifier).u8(self.flow_number).u16le(self.pdu_source).getvalue()


@dataclass(frozen=True)
class RawShareControl:
    """A Share Control PDU of a pduType not modelled here (e.g. server redirection)."""

    pdu_type: int
    pdu_source: int
    payload: bytes = field(repr=False)

    def encode(self) -> bytes:
        total = SHARE_CONTROL_HEADER_SIZE + len(self.payload)
        w = Writer()
        ShareControlHeader(total, self.pdu_type, self.pdu_source).write(w)
        return w.raw(self.payload).getvalue()


SharePdu = DemandActive | ConfirmActive | DeactivateAll | ShareData | FlowPdu | RawShareControl


def _read_share_pdu(r: Reader, *, clamp: bool = False) -> SharePdu:
    """Read one Share Control PDU from ``r``, consuming exactly totalLength bytes.

    With ``clamp``, a totalLength running past the end of the enclosing MCS
    PDU is cut to it: the MCS length is authoritative, and some clients
    (aardwolf) count the header bytes twice. The body must still decode.
    """
    total_length = r.u16le("totalLength")
    if clamp and total_length != FLOW_MARKER and total_length - 2 > r.remaining:
        total_length = r.remaining + 2
    if total_length == FLOW_MARKER:
        r.skip(1, "pad8bits")
        pdu_type_flow = r.u8("pduTypeFlow")
        flow_identifier = r.u8("flowIdentifier")
        flow_number = r.u8("flowNumber")
        return FlowPdu(pdu_type_flow, flow_identifier, flow_number, r.u16le("pduSource"))
    if total_length < SHARE_CONTROL_HEADER_SIZE:
        raise r.error("totalLength", f"{total_length} is shorter than the header")
    body = r.sub(total_length - 2, "totalLength")
    raw_type = body.u16le("pduType")
    pdu_source = body.u16le("pduSource")
    pdu_type = raw_type & 0xF
    if pdu_type == PduType.PDUTYPE_DATAPDU:
        return ShareData.read_body(Reader(body.rest(), ShareData.PDU), pdu_source)
    if pdu_type == PduType.PDUTYPE_CONFIRMACTIVEPDU:
        return ConfirmActive.read_body(Reader(body.rest(), ConfirmActive.PDU), pdu_source)
    if pdu_type == PduType.PDUTYPE_DEMANDACTIVEPDU:
        return DemandActive.read_body(Reader(body.rest(), DemandActive.PDU), pdu_source)
    if pdu_type == PduType.PDUTYPE_DEACTIVATEALLPDU:
        return DeactivateAll.read_body(Reader(body.rest(), DeactivateAll.PDU), pdu_source)
    return RawShareControl(pdu_type, pdu_source, body.rest())


def decode_share_pdu(data: bytes) -> SharePdu:
    """Decode one Share Control PDU whose totalLength covers all of ``data``."""
    r = Reader(data, "Share Control PDU")
    pdu = _read_share_pdu(r)
    r.expect_end()
    return pdu


def decode_share_pdus(data: bytes) -> list[SharePdu]:
    """Decode back-to-back Share Control PDUs (a sender may pack several in one MCS PDU)."""
    r = Reader(data, "Share Control PDU")
    pdus = [_read_share_pdu(r, clamp=True)]
    while r.remaining:
        pdus.append(_read_share_pdu(r, clamp=True))
    return pdus


def wrap_share_data(
    body: ShareDataBody,
    *,
    share_id: int,
    pdu_source: int = SERVER_CHANNEL_ID,
    stream_id: int = StreamId.STREAM_LOW,
) -> bytes:
    """A complete Share Data PDU (control header, data header, ``body``)."""
    if isinstance(body, SetErrorInfo):
        pdu_source = 0  # MS-RDPBCGR 2.2.5.1.1: pduSource MUST be zero
    return ShareData(share_id, body, pdu_source, stream_id).encode()
