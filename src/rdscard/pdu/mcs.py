"""MCS domain PDUs (T.125 7 parts 3-10; MS-RDPBCGR 2.2.1.5-2.2.1.9, 2.2.2.3, 2.2.8.1.1.1).

Each PDU is an aligned-PER DomainMCSPDU: the first byte holds the CHOICE
index in its top six bits and, in the low two, the first bits of what
follows (an optional-field bit, or the start of a 4-bit result or 3-bit
reason). :func:`decode_domain_pdu` returns the dataclass matching that
choice. The BER Connect-Initial and Connect-Response live in
:mod:`rdscard.pdu.mcs_connect` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, Self

from rdscard.errors import ProtocolError
from rdscard.pdu import per
from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.mcs_connect import (
    SERVER_DOMAIN_PARAMETERS,
    ConnectInitial,
    ConnectResponse,
    DomainParameters,
    McsResult,
)

__all__ = [
    "BASE_CHANNEL_ID",
    "SERVER_DOMAIN_PARAMETERS",
    "AttachUserConfirm",
    "AttachUserRequest",
    "ChannelJoinConfirm",
    "ChannelJoinRequest",
    "ConnectInitial",
    "ConnectResponse",
    "DataPriority",
    "DisconnectProviderUltimatum",
    "DisconnectReason",
    "DomainMcsPdu",
    "DomainParameters",
    "DomainPdu",
    "ErectDomainRequest",
    "McsConnectInitial",
    "McsConnectResponse",
    "McsPdu",
    "McsResult",
    "Segmentation",
    "SendDataIndication",
    "SendDataRequest",
    "decode_domain_pdu",
]

#: User ids (initiator) are PER-encoded as offsets from 1001 (T.125 UserId).
BASE_CHANNEL_ID: Final = 1001
_PDU: Final = "MCS Domain PDU"


class DomainMcsPdu(IntEnum):
    """DomainMCSPDU CHOICE indexes (T.125 7 part 10)."""

    PLUMB_DOMAIN_INDICATION = 0
    ERECT_DOMAIN_REQUEST = 1
    MERGE_CHANNELS_REQUEST = 2
    MERGE_CHANNELS_CONFIRM = 3
    PURGE_CHANNELS_INDICATION = 4
    MERGE_TOKENS_REQUEST = 5
    MERGE_TOKENS_CONFIRM = 6
    PURGE_TOKENS_INDICATION = 7
    DISCONNECT_PROVIDER_ULTIMATUM = 8
    REJECT_MCSPDU_ULTIMATUM = 9
    ATTACH_USER_REQUEST = 10
    ATTACH_USER_CONFIRM = 11
    DETACH_USER_REQUEST = 12
    DETACH_USER_INDICATION = 13
    CHANNEL_JOIN_REQUEST = 14
    CHANNEL_JOIN_CONFIRM = 15
    CHANNEL_LEAVE_REQUEST = 16
    CHANNEL_CONVENE_REQUEST = 17
    CHANNEL_CONVENE_CONFIRM = 18
    CHANNEL_DISBAND_REQUEST = 19
    CHANNEL_DISBAND_INDICATION = 20
    CHANNEL_ADMIT_REQUEST = 21
    CHANNEL_ADMIT_INDICATION = 22
    CHANNEL_EXPEL_REQUEST = 23
    CHANNEL_EXPEL_INDICATION = 24
    SEND_DATA_REQUEST = 25
    SEND_DATA_INDICATION = 26
    UNIFORM_SEND_DATA_REQUEST = 27
    UNIFORM_SEND_DATA_INDICATION = 28


class DisconnectReason(IntEnum):
    """Reason (T.125 7 part 1) of a Disconnect Provider Ultimatum."""

    RN_DOMAIN_DISCONNECTED = 0
    RN_PROVIDER_INITIATED = 1
    RN_TOKEN_PURGED = 2
    RN_USER_REQUESTED = 3
    RN_CHANNEL_PURGED = 4


class DataPriority(IntEnum):
    """DataPriority (T.125 7 part 1)."""

    TOP = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3


class Segmentation(IntFlag):
    """Segmentation BIT STRING {begin(0), end(1)} (T.125 7 part 1)."""

    END = 0x1
    BEGIN = 0x2


class _DomainPduBase:
    """Gives every domain PDU a ``decode(data)`` that insists on its own type."""

    __slots__ = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode ``data``, which must hold this very PDU."""
        # Typed as object: narrowing the union of every PDU by ``cls`` misleads mypyc.
        pdu: object = decode_domain_pdu(data)
        if not isinstance(pdu, cls):
            raise ProtocolError(
                f"MCS {cls.__name__}", "choice", f"got {type(pdu).__name__} instead"
            )
        return pdu


def _check_result(result: int) -> None:
    if not 0 <= result <= 15:
        raise ValueError(f"MCS result {result} out of range")


def _choice_byte(choice: DomainMcsPdu, low_bits: int = 0) -> int:
    return (choice << 2) | (low_bits & 0x03)


def _result(value: int, reader: Reader) -> McsResult:
    try:
        return McsResult(value)
    except ValueError:  # pragma: no cover - four bits cannot exceed 15
        raise reader.error("result", f"unknown result {value}") from None


@dataclass(frozen=True, slots=True)
class ErectDomainRequest(_DomainPduBase):
    """MCS Erect Domain Request (MS-RDPBCGR 2.2.1.5; T.125 11.8)."""

    sub_height: int = 0
    sub_interval: int = 0

    def encode(self) -> bytes:
        writer = Writer().u8(_choice_byte(DomainMcsPdu.ERECT_DOMAIN_REQUEST))
        per.write_integer(writer, self.sub_height)
        per.write_integer(writer, self.sub_interval)
        return writer.getvalue()

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        # A server ignores subHeight and subInterval, and so do Windows servers:
        # some clients send a fixed, malformed body (aardwolf: 00 01 00 01).
        # Keep the values when they parse, accept the PDU either way.
        body = Reader(reader.rest(), reader.pdu)
        try:
            height = per.read_integer(body, "subHeight")
            interval = per.read_integer(body, "subInterval")
            body.expect_end()
        except ProtocolError:
            return cls()
        return cls(height, interval)


@dataclass(frozen=True, slots=True)
class AttachUserRequest(_DomainPduBase):
    """MCS Attach User Request (MS-RDPBCGR 2.2.1.6; T.125 11.17)."""

    def encode(self) -> bytes:
        return bytes((_choice_byte(DomainMcsPdu.ATTACH_USER_REQUEST),))

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        return cls()


@dataclass(frozen=True, slots=True)
class AttachUserConfirm(_DomainPduBase):
    """MCS Attach User Confirm (MS-RDPBCGR 2.2.1.7; T.125 11.18).

    ``initiator`` is the user channel id (for example 1007), or None when the
    attach failed and the optional field is absent.
    """

    result: int
    initiator: int | None

    def encode(self) -> bytes:
        _check_result(self.result)
        present = self.initiator is not None
        writer = Writer()
        low_bits = (present << 1) | (self.result >> 3)
        writer.u8(_choice_byte(DomainMcsPdu.ATTACH_USER_CONFIRM, low_bits))
        writer.u8((self.result & 0x07) << 5)
        if self.initiator is not None:
            per.write_integer16(writer, self.initiator, BASE_CHANNEL_ID)
        return writer.getvalue()

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        result = ((low_bits & 0x01) << 3) | (reader.u8("result") >> 5)
        initiator = (
            per.read_integer16(reader, BASE_CHANNEL_ID, "initiator") if low_bits & 0x02 else None
        )
        return cls(_result(result, reader), initiator)


@dataclass(frozen=True, slots=True)
class ChannelJoinRequest(_DomainPduBase):
    """MCS Channel Join Request (MS-RDPBCGR 2.2.1.8; T.125 11.21)."""

    initiator: int
    channel_id: int

    def encode(self) -> bytes:
        writer = Writer().u8(_choice_byte(DomainMcsPdu.CHANNEL_JOIN_REQUEST))
        per.write_integer16(writer, self.initiator, BASE_CHANNEL_ID)
        per.write_integer16(writer, self.channel_id, 0)
        return writer.getvalue()

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        return cls(
            per.read_integer16(reader, BASE_CHANNEL_ID, "initiator"),
            per.read_integer16(reader, 0, "channelId"),
        )


@dataclass(frozen=True, slots=True)
class ChannelJoinConfirm(_DomainPduBase):
    """MCS Channel Join Confirm (MS-RDPBCGR 2.2.1.9; T.125 11.22).

    ``channel_id`` is the joined channel, or None (the optional field absent)
    when the join failed.
    """

    result: int
    initiator: int
    requested: int
    channel_id: int | None

    def encode(self) -> bytes:
        _check_result(self.result)
        present = self.channel_id is not None
        writer = Writer()
        low_bits = (present << 1) | (self.result >> 3)
        writer.u8(_choice_byte(DomainMcsPdu.CHANNEL_JOIN_CONFIRM, low_bits))
        writer.u8((self.result & 0x07) << 5)
        per.write_integer16(writer, self.initiator, BASE_CHANNEL_ID)
        per.write_integer16(writer, self.requested, 0)
        if self.channel_id is not None:
            per.write_integer16(writer, self.channel_id, 0)
        return writer.getvalue()

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        result = ((low_bits & 0x01) << 3) | (reader.u8("result") >> 5)
        initiator = per.read_integer16(reader, BASE_CHANNEL_ID, "initiator")
        requested = per.read_integer16(reader, 0, "requested")
        channel_id = per.read_integer16(reader, 0, "channelId") if low_bits & 0x02 else None
        return cls(_result(result, reader), initiator, requested, channel_id)


@dataclass(frozen=True, slots=True)
class DisconnectProviderUltimatum(_DomainPduBase):
    """MCS Disconnect Provider Ultimatum (MS-RDPBCGR 2.2.2.3; T.125 11.15)."""

    reason: DisconnectReason = DisconnectReason.RN_USER_REQUESTED

    def encode(self) -> bytes:
        return bytes(
            (
                _choice_byte(DomainMcsPdu.DISCONNECT_PROVIDER_ULTIMATUM, self.reason >> 1),
                (self.reason & 0x01) << 7,
            )
        )

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        value = (low_bits << 1) | (reader.u8("reason") >> 7)
        try:
            return cls(DisconnectReason(value))
        except ValueError:
            raise reader.error("reason", f"unknown reason {value}") from None


def _encode_send_data(
    choice: DomainMcsPdu,
    initiator: int,
    channel_id: int,
    data_priority: DataPriority,
    segmentation: Segmentation,
    user_data: bytes,
) -> bytes:
    writer = Writer().u8(_choice_byte(choice))
    per.write_integer16(writer, initiator, BASE_CHANNEL_ID)
    per.write_integer16(writer, channel_id, 0)
    writer.u8((data_priority << 6) | ((segmentation & 0x03) << 4))
    per.write_length(writer, len(user_data))
    writer.raw(user_data)
    return writer.getvalue()


def _decode_send_data(
    reader: Reader,
) -> tuple[int, int, DataPriority, Segmentation, bytes]:
    initiator = per.read_integer16(reader, BASE_CHANNEL_ID, "initiator")
    channel_id = per.read_integer16(reader, 0, "channelId")
    flags = reader.u8("dataPriority")
    length = per.read_length(reader, "userData")
    user_data = reader.raw(length, "userData")
    return (
        initiator,
        channel_id,
        DataPriority(flags >> 6),
        Segmentation((flags >> 4) & 0x03),
        user_data,
    )


@dataclass(frozen=True, slots=True)
class SendDataRequest(_DomainPduBase):
    """MCS Send Data Request, client to server (T.125 11.32; MS-RDPBCGR 2.2.1.11 and others)."""

    initiator: int
    channel_id: int
    user_data: bytes
    data_priority: DataPriority = DataPriority.HIGH
    segmentation: Segmentation = Segmentation.BEGIN | Segmentation.END

    def encode(self) -> bytes:
        return _encode_send_data(
            DomainMcsPdu.SEND_DATA_REQUEST,
            self.initiator,
            self.channel_id,
            self.data_priority,
            self.segmentation,
            self.user_data,
        )

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        initiator, channel_id, priority, segmentation, data = _decode_send_data(reader)
        return cls(initiator, channel_id, data, priority, segmentation)


@dataclass(frozen=True, slots=True)
class SendDataIndication(_DomainPduBase):
    """MCS Send Data Indication, server to client (T.125 11.33)."""

    initiator: int
    channel_id: int
    user_data: bytes
    data_priority: DataPriority = DataPriority.HIGH
    segmentation: Segmentation = Segmentation.BEGIN | Segmentation.END

    def encode(self) -> bytes:
        return _encode_send_data(
            DomainMcsPdu.SEND_DATA_INDICATION,
            self.initiator,
            self.channel_id,
            self.data_priority,
            self.segmentation,
            self.user_data,
        )

    @classmethod
    def _decode_body(cls, reader: Reader, low_bits: int) -> Self:
        initiator, channel_id, priority, segmentation, data = _decode_send_data(reader)
        return cls(initiator, channel_id, data, priority, segmentation)


DomainPdu = (
    ErectDomainRequest
    | AttachUserRequest
    | AttachUserConfirm
    | ChannelJoinRequest
    | ChannelJoinConfirm
    | DisconnectProviderUltimatum
    | SendDataRequest
    | SendDataIndication
)
"""Every domain PDU this module decodes."""

McsConnectInitial = ConnectInitial
McsConnectResponse = ConnectResponse

McsPdu = DomainPdu | ConnectInitial | ConnectResponse
"""Anything that goes in an X.224 Data TPDU at the MCS layer."""

_DOMAIN_TYPES: Final[dict[DomainMcsPdu, type[DomainPdu]]] = {
    DomainMcsPdu.ERECT_DOMAIN_REQUEST: ErectDomainRequest,
    DomainMcsPdu.ATTACH_USER_REQUEST: AttachUserRequest,
    DomainMcsPdu.ATTACH_USER_CONFIRM: AttachUserConfirm,
    DomainMcsPdu.CHANNEL_JOIN_REQUEST: ChannelJoinRequest,
    DomainMcsPdu.CHANNEL_JOIN_CONFIRM: ChannelJoinConfirm,
    DomainMcsPdu.DISCONNECT_PROVIDER_ULTIMATUM: DisconnectProviderUltimatum,
    DomainMcsPdu.SEND_DATA_REQUEST: SendDataRequest,
    DomainMcsPdu.SEND_DATA_INDICATION: SendDataIndication,
}


def decode_domain_pdu(data: bytes) -> DomainPdu:
    """Decode one aligned-PER DomainMCSPDU (the X.224 Data payload).

    Raises :class:`~rdscard.errors.ProtocolError` for an unsupported choice,
    truncated fields or trailing bytes.
    """
    reader = Reader(data, _PDU)
    first = reader.u8("choice")
    index = first >> 2
    try:
        choice = DomainMcsPdu(index)
    except ValueError:
        raise reader.error("choice", f"unknown DomainMCSPDU choice {index}") from None
    kind = _DOMAIN_TYPES.get(choice)
    if kind is None:
        raise reader.error("choice", f"unsupported DomainMCSPDU {choice.name}")
    reader.pdu = f"MCS {kind.__name__}"
    pdu = kind._decode_body(reader, first & 0x03)
    reader.expect_end()
    return pdu
