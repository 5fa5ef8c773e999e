"""Events the RDP acceptor reports to the session (MS-RDPBCGR 1.3.1.1 phases)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from rdscard.pdu.client_info import ClientInfo
from rdscard.pdu.input import InputEvent


class Phase(Enum):
    """Where the connection sequence stands (MS-RDPBCGR 1.3.1.1)."""

    CONNECTION_REQUEST = "connection request"
    TLS_HANDSHAKE = "security upgrade"
    CREDSSP = "network level authentication"
    CREDSSP_WAIT = "network level authentication (server's turn)"
    BASIC_SETTINGS = "basic settings exchange"
    CHANNEL_CONNECTION = "channel connection"
    SECURE_SETTINGS = "secure settings exchange"
    CAPABILITIES = "capabilities exchange"
    FINALIZATION = "connection finalization"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(frozen=True)
class StartTls:
    """The negotiation selected TLS: upgrade the transport before feeding more bytes."""

    requested_protocols: int
    cookie: str
    #: The protocol selected (MS-RDPBCGR 2.2.1.2.1): PROTOCOL_SSL, HYBRID or HYBRID_EX.
    selected: int = 1


@dataclass(frozen=True)
class CredSspReceived:
    """One whole TSRequest from the client (MS-CSSP 2.2.1), still as its bytes.

    The adapter hands it to the CredSSP server (the logon service), then
    calls :meth:`RdpAcceptor.credssp_send`, :meth:`~RdpAcceptor.credssp_finished`
    or :meth:`~RdpAcceptor.credssp_refused`.
    """

    data: bytes = field(repr=False)


@dataclass(frozen=True)
class NegotiationRefused:
    """The client offered nothing acceptable; the failure was sent, close after flushing."""

    requested_protocols: int
    failure_code: int
    reason: str


@dataclass(frozen=True)
class ClientConnected:
    """Basic settings exchange done: what the client said about itself (MS-RDPBCGR 2.2.1.3)."""

    client_name: str
    client_build: int
    desktop_width: int
    desktop_height: int
    color_depth: int
    keyboard_layout: int
    channels: tuple[str, ...]
    requested_protocols: int


@dataclass(frozen=True)
class ClientInfoReceived:
    """The Client Info PDU (MS-RDPBCGR 2.2.1.11); its password is a Secret."""

    info: ClientInfo = field(repr=False)


@dataclass(frozen=True)
class SessionActivated:
    """Finalisation done: the session is active and may receive graphics and channel data."""

    desktop_width: int
    desktop_height: int
    color_depth: int


@dataclass(frozen=True)
class InputReceived:
    """Keyboard or mouse input (slow-path or fast-path)."""

    events: tuple[InputEvent, ...]


@dataclass(frozen=True)
class ChannelData:
    """A complete, reassembled static virtual channel message (MS-RDPBCGR 3.1.5.2.2)."""

    channel_name: str
    data: bytes


@dataclass(frozen=True)
class RefreshRequested:
    """The client asked for the screen again (Refresh Rect or Suppress Output off)."""


@dataclass(frozen=True)
class ClientShutdown:
    """The client asked to end the session (Shutdown Request, 2.2.2.2) or said goodbye."""

    reason: str


AcceptorEvent = (
    StartTls
    | CredSspReceived
    | NegotiationRefused
    | ClientConnected
    | ClientInfoReceived
    | SessionActivated
    | InputReceived
    | ChannelData
    | RefreshRequested
    | ClientShutdown
)
