"""GCC Conference Create Request/Response (T.124 8.7, 9.5, 9.6; MS-RDPBCGR 2.2.1.3, 2.2.1.4).

The MCS Connect-Initial and Connect-Response carry a T.124 ConnectData in
their userData: the T.124 object identifier, then a PER-encoded
ConferenceCreateRequest (H.221 key "Duca") or ConferenceCreateResponse
(key "McDn") whose single user data value is the concatenation of the RDP
settings blocks of :mod:`rdscard.pdu.gcc_client` and
:mod:`rdscard.pdu.gcc_server`.

Typical server use::

    client = decode_client_data(ConnectInitial.decode(payload).user_data)
    user_data = server_data_response(requested_protocols=..., channel_ids=[1004, 1005])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Self

from rdscard.pdu import per
from rdscard.pdu.buffer import Reader, Writer
from rdscard.pdu.gcc_client import (
    USER_DATA_HEADER_SIZE,
    ChannelDef,
    ChannelOption,
    ClientBlockType,
    ClientClusterData,
    ClientCoreData,
    ClientMessageChannelData,
    ClientMonitorData,
    ClientMonitorExtendedData,
    ClientMultitransportChannelData,
    ClientNetworkData,
    ClientSecurityData,
    ClusterFlags,
    ColorDepth,
    ConnectionType,
    EarlyCapabilityFlags,
    EncryptionMethod,
    MonitorAttributes,
    MonitorDef,
    RdpVersion,
    SupportedColorDepths,
    UnknownBlock,
)
from rdscard.pdu.gcc_server import (
    EncryptionLevel,
    ServerBlockType,
    ServerCoreData,
    ServerEarlyCapabilityFlags,
    ServerMessageChannelData,
    ServerMultitransportChannelData,
    ServerNetworkData,
    ServerSecurityData,
)

__all__ = [
    "IO_CHANNEL_ID",
    "T124_OBJECT_ID",
    "ChannelDef",
    "ChannelOption",
    "ClientBlockType",
    "ClientClusterData",
    "ClientCoreData",
    "ClientGccData",
    "ClientMessageChannelData",
    "ClientMonitorData",
    "ClientMonitorExtendedData",
    "ClientMultitransportChannelData",
    "ClientNetworkData",
    "ClientSecurityData",
    "ClusterFlags",
    "ColorDepth",
    "ConferenceCreateRequest",
    "ConferenceCreateResponse",
    "ConnectionType",
    "EarlyCapabilityFlags",
    "EncryptionLevel",
    "EncryptionMethod",
    "MonitorAttributes",
    "MonitorDef",
    "RdpVersion",
    "ServerBlockType",
    "ServerCoreData",
    "ServerEarlyCapabilityFlags",
    "ServerGccData",
    "ServerMessageChannelData",
    "ServerMultitransportChannelData",
    "ServerNetworkData",
    "ServerSecurityData",
    "SupportedColorDepths",
    "UnknownBlock",
    "decode_client_data",
    "server_data_response",
    "split_blocks",
]

#: T.124 object identifier {itu-t recommendation t 124 version(0) 1}.
T124_OBJECT_ID: Final = (0, 0, 20, 124, 0, 1)
CLIENT_H221_KEY: Final = b"Duca"
SERVER_H221_KEY: Final = b"McDn"
#: MS-RDPBCGR 2.2.1.4.4: the MCS I/O channel a Windows server announces.
IO_CHANNEL_ID: Final = 1003
#: ConnectGCCPDU choice conferenceCreateRequest, then its option bitmap (userData present).
_REQUEST_PREFIX: Final = b"\x00\x08"
#: ConnectGCCPDU choice conferenceCreateResponse with userData present.
_RESPONSE_CHOICE: Final = 0x14
#: UserData SET OF element: h221NonStandard key, value present.
_USER_DATA_CHOICE: Final = 0xC0
#: The node id and tag a Windows server answers with (4.1.4).
DEFAULT_NODE_ID: Final = 0x79F3
MAX_BLOCKS: Final = 32

_REQ_PDU: Final = "GCC Conference Create Request"
_RSP_PDU: Final = "GCC Conference Create Response"


def _read_connect_data_header(reader: Reader) -> int:
    """The T.124 ConnectData key and the connectPDU length."""
    choice = reader.u8("t124Identifier")
    if choice != 0:
        raise reader.error("t124Identifier", f"expected an object identifier, got choice {choice}")
    oid = per.read_object_identifier(reader, "t124Identifier")
    if oid != T124_OBJECT_ID:
        raise reader.error("t124Identifier", f"unexpected object identifier {oid}")
    return per.read_length(reader, "connectPDU")


def _write_connect_data(content: bytes) -> bytes:
    writer = Writer().u8(0)
    per.write_object_identifier(writer, T124_OBJECT_ID)
    per.write_length(writer, len(content))
    return writer.raw(content).getvalue()


def _read_user_data_set(reader: Reader, key: bytes) -> bytes:
    count = reader.u8("userData.count")
    if count != 1:
        raise reader.error("userData.count", f"expected one user data set, got {count}")
    choice = reader.u8("userData.key")
    if choice != _USER_DATA_CHOICE:
        raise reader.error("userData.key", f"expected h221NonStandard (0xc0), got 0x{choice:02x}")
    got = per.read_octet_string(reader, 4, "h221NonStandard", 255)
    if got != key:
        raise reader.error("h221NonStandard", f"expected {key!r}, got {got!r}")
    length = per.read_length(reader, "userData.value")
    if length != reader.remaining:
        raise reader.error("userData.value", f"length {length}, {reader.remaining} bytes left")
    return reader.rest()


def _write_user_data_set(writer: Writer, key: bytes, value: bytes) -> None:
    writer.u8(1).u8(_USER_DATA_CHOICE)
    per.write_octet_string(writer, key, 4)
    per.write_length(writer, len(value))
    writer.raw(value)


@dataclass(frozen=True, slots=True)
class ConferenceCreateRequest:
    """T.124 ConnectData with a ConferenceCreateRequest (MS-RDPBCGR 2.2.1.3).

    ``user_data`` is the concatenation of the client settings blocks.
    """

    user_data: bytes
    conference_name: str = "1"
    conference_flags: int = 0

    def encode(self) -> bytes:
        content = Writer().raw(_REQUEST_PREFIX)
        per.write_numeric_string(content, self.conference_name, 1)
        content.u8(self.conference_flags)
        _write_user_data_set(content, CLIENT_H221_KEY, self.user_data)
        return _write_connect_data(content.getvalue())

    @classmethod
    def decode(cls, data: bytes) -> Self:
        reader = Reader(data, _REQ_PDU)
        length = _read_connect_data_header(reader)
        if length != reader.remaining:
            raise reader.error("connectPDU", f"length {length}, {reader.remaining} bytes left")
        prefix = reader.raw(2, "ConferenceCreateRequest")
        if prefix != _REQUEST_PREFIX:
            raise reader.error(
                "ConferenceCreateRequest", f"unsupported choice or options {prefix.hex()}"
            )
        name = per.read_numeric_string(reader, 1, "conferenceName")
        flags = reader.u8("lockedConference")
        return cls(_read_user_data_set(reader, CLIENT_H221_KEY), name, flags)


@dataclass(frozen=True, slots=True)
class ConferenceCreateResponse:
    """T.124 ConnectData with a ConferenceCreateResponse (MS-RDPBCGR 2.2.1.4).

    ``user_data`` is the concatenation of the server settings blocks. On
    decode the connectPDU length is not checked: Windows servers send a
    fixed, wrong value there (0x2a in MS-RDPBCGR 4.1.4) and clients ignore it.
    """

    user_data: bytes
    node_id: int = DEFAULT_NODE_ID
    tag: int = 1
    result: int = 0

    def encode(self) -> bytes:
        content = Writer().u8(_RESPONSE_CHOICE)
        per.write_integer16(content, self.node_id, 1001)
        per.write_integer(content, self.tag)
        content.u8(self.result)
        _write_user_data_set(content, SERVER_H221_KEY, self.user_data)
        return _write_connect_data(content.getvalue())

    @classmethod
    def decode(cls, data: bytes) -> Self:
        reader = Reader(data, _RSP_PDU)
        _read_connect_data_header(reader)
        choice = reader.u8("ConferenceCreateResponse")
        if choice != _RESPONSE_CHOICE:
            raise reader.error("ConferenceCreateResponse", f"unsupported choice 0x{choice:02x}")
        node_id = per.read_integer16(reader, 1001, "nodeID")
        tag = per.read_integer(reader, "tag")
        result = reader.u8("result")
        return cls(_read_user_data_set(reader, SERVER_H221_KEY), node_id, tag, result)


def split_blocks(data: bytes, pdu: str) -> Iterator[tuple[int, bytes]]:
    """Each (type, whole block) of concatenated GCC settings blocks."""
    reader = Reader(data, pdu)
    count = 0
    while reader.remaining:
        count += 1
        if count > MAX_BLOCKS:
            raise reader.error("header", f"more than {MAX_BLOCKS} blocks")
        start = reader.offset
        kind = reader.u16le("header.type")
        length = reader.u16le("header.length")
        if length < USER_DATA_HEADER_SIZE:
            raise reader.error("header.length", f"block length {length} below 4")
        reader.skip(length - USER_DATA_HEADER_SIZE, f"block 0x{kind:04x}")
        yield kind, data[start : start + length]


_CLIENT_DECODERS: Final[dict[int, tuple[str, Callable[[bytes], object]]]] = {
    ClientBlockType.CS_CORE: ("core", ClientCoreData.decode),
    ClientBlockType.CS_SECURITY: ("security", ClientSecurityData.decode),
    ClientBlockType.CS_NET: ("net", ClientNetworkData.decode),
    ClientBlockType.CS_CLUSTER: ("cluster", ClientClusterData.decode),
    ClientBlockType.CS_MONITOR: ("monitor", ClientMonitorData.decode),
    ClientBlockType.CS_MCS_MSGCHANNEL: ("message_channel", ClientMessageChannelData.decode),
    ClientBlockType.CS_MONITOR_EX: ("monitor_ex", ClientMonitorExtendedData.decode),
    ClientBlockType.CS_MULTITRANSPORT: ("multitransport", ClientMultitransportChannelData.decode),
}


def _decode_blocks(
    data: bytes, pdu: str, decoders: dict[int, tuple[str, Callable[[bytes], object]]]
) -> tuple[dict[str, object], tuple[UnknownBlock, ...]]:
    known: dict[str, object] = {}
    unknown: list[UnknownBlock] = []
    seen: set[int] = set()
    for kind, block in split_blocks(data, pdu):
        if kind in seen:
            raise Reader(block, pdu).error("header.type", f"duplicate block 0x{kind:04x}")
        seen.add(kind)
        entry = decoders.get(kind)
        if entry is None:
            unknown.append(UnknownBlock(kind, block[USER_DATA_HEADER_SIZE:]))
        else:
            known[entry[0]] = entry[1](block)
    return known, tuple(unknown)


def _join(blocks: Iterable[object | None]) -> bytes:
    out = Writer()
    for block in blocks:
        if block is not None:
            out.raw(block.encode())  # type: ignore[attr-defined]
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class ClientGccData:
    """Every client settings block of a Conference Create Request (MS-RDPBCGR 2.2.1.3).

    Blocks of unknown types are kept in ``unknown``. ``encode()`` writes the
    blocks in the order Windows and FreeRDP clients use (core, cluster,
    security, network, then the rest).
    """

    core: ClientCoreData
    security: ClientSecurityData | None = None
    net: ClientNetworkData | None = None
    cluster: ClientClusterData | None = None
    monitor: ClientMonitorData | None = None
    message_channel: ClientMessageChannelData | None = None
    monitor_ex: ClientMonitorExtendedData | None = None
    multitransport: ClientMultitransportChannelData | None = None
    unknown: tuple[UnknownBlock, ...] = ()

    def encode(self) -> bytes:
        """The concatenated blocks (the Conference Create Request user data)."""
        return _join(
            (
                self.core,
                self.cluster,
                self.security,
                self.net,
                self.monitor,
                self.message_channel,
                self.multitransport,
                self.monitor_ex,
                *self.unknown,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse concatenated client blocks; TS_UD_CS_CORE is mandatory."""
        known, unknown = _decode_blocks(data, "Client GCC data", _CLIENT_DECODERS)
        if "core" not in known:
            raise Reader(data, "Client GCC data").error("CS_CORE", "missing client core data")
        return cls(unknown=unknown, **known)  # type: ignore[arg-type]


_SERVER_DECODERS: Final[dict[int, tuple[str, Callable[[bytes], object]]]] = {
    ServerBlockType.SC_CORE: ("core", ServerCoreData.decode),
    ServerBlockType.SC_SECURITY: ("security", ServerSecurityData.decode),
    ServerBlockType.SC_NET: ("net", ServerNetworkData.decode),
    ServerBlockType.SC_MCS_MSGCHANNEL: ("message_channel", ServerMessageChannelData.decode),
    ServerBlockType.SC_MULTITRANSPORT: ("multitransport", ServerMultitransportChannelData.decode),
}


@dataclass(frozen=True, slots=True)
class ServerGccData:
    """Every server settings block of a Conference Create Response (MS-RDPBCGR 2.2.1.4).

    ``encode()`` writes them in the order of MS-RDPBCGR 4.1.4: core, network,
    security, then the message channel and multitransport blocks.
    """

    core: ServerCoreData
    security: ServerSecurityData
    net: ServerNetworkData
    message_channel: ServerMessageChannelData | None = None
    multitransport: ServerMultitransportChannelData | None = None
    unknown: tuple[UnknownBlock, ...] = ()

    def encode(self) -> bytes:
        """The concatenated blocks (the Conference Create Response user data)."""
        return _join(
            (
                self.core,
                self.net,
                self.security,
                self.message_channel,
                self.multitransport,
                *self.unknown,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Parse concatenated server blocks; core, security and network are mandatory."""
        known, unknown = _decode_blocks(data, "Server GCC data", _SERVER_DECODERS)
        for name in ("core", "security", "net"):
            if name not in known:
                raise Reader(data, "Server GCC data").error(name, "missing mandatory block")
        return cls(unknown=unknown, **known)  # type: ignore[arg-type]


def decode_client_data(user_data: bytes) -> ClientGccData:
    """The client settings from the userData of an MCS Connect-Initial."""
    return ClientGccData.decode(ConferenceCreateRequest.decode(user_data).user_data)


def server_data_response(
    *,
    requested_protocols: int,
    io_channel_id: int = IO_CHANNEL_ID,
    channel_ids: Iterable[int] = (),
    early_capability_flags: int = 0,
    version: int = RdpVersion.RDP_VERSION_5_PLUS,
    message_channel_id: int | None = None,
) -> bytes:
    """The userData of an MCS Connect-Response for a server secured by TLS.

    SC_CORE echoes ``requested_protocols`` (the client's RDP_NEG_REQ
    requestedProtocols), SC_SECURITY says no RDP encryption (TLS does the
    security), SC_NET lists ``channel_ids`` in the client's channel order.
    """
    blocks = ServerGccData(
        core=ServerCoreData(version, requested_protocols, early_capability_flags),
        security=ServerSecurityData(0, 0),
        net=ServerNetworkData(io_channel_id, tuple(channel_ids)),
        message_channel=(
            ServerMessageChannelData(message_channel_id) if message_channel_id is not None else None
        ),
    )
    return ConferenceCreateResponse(blocks.encode()).encode()
