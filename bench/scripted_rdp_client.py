"""A scripted RDP client that redirects one smart card reader and answers every IOCTL at once.

Two parts, for the redirection benchmarks:

- :class:`ScriptedSmartCard` is the client side of the rdpdr channel
  (MS-RDPEFS 3.2) with one RDPDR_DTYP_SMARTCARD device and the MS-RDPESC
  answers of a reader that always holds a card answering 90 00 (MS-RDPESC
  3.2.5), sans I/O: feed it the rdpdr messages the server sends, it returns
  the messages to send back.
- :func:`run_client` drives it over asyncio and TLS with the project's
  sans-IO connector (:mod:`rdscard.protocol.connector`), reading and
  discarding everything else the server sends (graphics).

The card's answers cost as little as possible: returns that do not depend
on the call (Transmit, the LONG returns) are encoded once, so the client
side of a redirected call is little more than framing.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from rdscard.pdu.esc.base import NdrMessage
from rdscard.pdu.esc.card import ConnectReturn, ConnectWCall, StatusReturn
from rdscard.pdu.esc.constants import (
    PNP_NOTIFICATION,
    ScardCardState,
    ScardIoctl,
    ScardProtocol,
    ScardReaderState,
    ScardReturn,
)
from rdscard.pdu.esc.context import EstablishContextReturn, ListReadersReturn, LongReturn
from rdscard.pdu.esc.dispatch import IOCTL_MESSAGES
from rdscard.pdu.esc.io import TransmitReturn
from rdscard.pdu.esc.status_change import (
    GetStatusChangeReturn,
    GetStatusChangeWCall,
    ReaderStateReturn,
)
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle
from rdscard.pdu.rdpdr import (
    SMARTCARD_CAPABILITY,
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientNameRequest,
    DeviceAnnounce,
    DeviceType,
    GeneralCapabilitySet,
    PacketId,
    RdpdrHeader,
    ServerAnnounceRequest,
)
from rdscard.pdu.rdpdr_io import DeviceControlRequest, DeviceControlResponse
from rdscard.protocol.connector import ConnectorSettings, ConnectorState, RdpConnector

CHANNEL: Final = "rdpdr"
DEVICE_ID: Final = 1
READER: Final = "Bench Reader 00 00"
#: A T=1 ATR (the one of a YubiKey), as a real card would show.
ATR: Final = bytes.fromhex("3bf81300008131fe15597562696b65793404")
PRESENT: Final = int(ScardReaderState.SCARD_STATE_PRESENT)
CHANGED: Final = int(ScardReaderState.SCARD_STATE_CHANGED)

_LONG_OK: Final = LongReturn(ScardReturn.SCARD_S_SUCCESS).encode()
_TRANSMIT_OK: Final = TransmitReturn(ScardReturn.SCARD_S_SUCCESS, None, 2, b"\x90\x00").encode()
_READERS: Final = (READER + "\0\0").encode("utf-16-le")
_LIST_READERS: Final = ListReadersReturn(ScardReturn.SCARD_S_SUCCESS, len(_READERS),
                                         _READERS).encode()
_STATUS: Final = StatusReturn(ScardReturn.SCARD_S_SUCCESS, len(_READERS), _READERS,
                              ScardCardState.SCARD_SPECIFIC, ScardProtocol.SCARD_PROTOCOL_T1,
                              ATR, len(ATR)).encode()
_LONG_IOCTLS: Final = frozenset({
    ScardIoctl.SCARD_IOCTL_RELEASECONTEXT, ScardIoctl.SCARD_IOCTL_ISVALIDCONTEXT,
    ScardIoctl.SCARD_IOCTL_DISCONNECT, ScardIoctl.SCARD_IOCTL_BEGINTRANSACTION,
    ScardIoctl.SCARD_IOCTL_ENDTRANSACTION, ScardIoctl.SCARD_IOCTL_ACCESSSTARTEDEVENT,
    ScardIoctl.SCARD_IOCTL_RELEASETARTEDEVENT,
})
_FIXED: Final[dict[int, bytes]] = {
    ScardIoctl.SCARD_IOCTL_TRANSMIT: _TRANSMIT_OK,
    ScardIoctl.SCARD_IOCTL_LISTREADERSW: _LIST_READERS,
    ScardIoctl.SCARD_IOCTL_STATUSW: _STATUS,
    **{code: _LONG_OK for code in _LONG_IOCTLS},
}


@dataclass
class ScriptedSmartCard:
    """The client side of rdpdr with one smart card device (MS-RDPEFS 3.2, MS-RDPESC 3.2).

    ``announce_device`` false holds the Client Device List Announce back
    until :meth:`announce` is called, so that a benchmark can measure a
    session before and after its reader is redirected.
    """

    announce_device: bool = True
    #: The Transmit_Return every transmit gets (``transmit_response`` sets another response).
    transmit_return: bytes = _TRANSMIT_OK
    ioctls: int = 0
    ready: bool = False
    _contexts: int = 0
    _held: list[DeviceControlRequest] = field(default_factory=list)
    _ready_for_device: bool = False
    _announced: bool = False

    def receive(self, message: bytes) -> list[bytes]:
        """One complete rdpdr message from the server; returns the messages to send."""
        packet = RdpdrHeader.decode(message).packet_id
        if packet is PacketId.PAKID_CORE_DEVICE_IOREQUEST:
            return self._ioctl(DeviceControlRequest.decode(message))
        if packet is PacketId.PAKID_CORE_SERVER_ANNOUNCE:
            request = ServerAnnounceRequest.decode(message)
            return [ClientAnnounceReply(request.client_id).encode(),
                    ClientNameRequest("bench").encode()]
        if packet is PacketId.PAKID_CORE_SERVER_CAPABILITY:
            general = GeneralCapabilitySet(special_type_device_cap=1)
            return [ClientCoreCapabilityResponse((general, SMARTCARD_CAPABILITY)).encode()]
        if packet is PacketId.PAKID_CORE_CLIENTID_CONFIRM:
            self._ready_for_device = True
            return self.announce() if self.announce_device else []
        if packet is PacketId.PAKID_CORE_DEVICE_REPLY:
            self.ready = True
        return []

    def transmit_response(self, response: bytes) -> None:
        """Answer every transmit with ``response`` from now on."""
        self.transmit_return = TransmitReturn(
            ScardReturn.SCARD_S_SUCCESS, None, len(response), response).encode()

    def announce(self) -> list[bytes]:
        """The Client Device List Announce with the smart card device (once)."""
        self.announce_device = True
        if not self._ready_for_device or self._announced:
            return []
        self._announced = True
        device = DeviceAnnounce(DeviceType.RDPDR_DTYP_SMARTCARD, DEVICE_ID, "SCARD")
        return [ClientDeviceListAnnounceRequest((device,)).encode()]

    def _reply(self, request: DeviceControlRequest, output: bytes) -> bytes:
        return DeviceControlResponse(request.device_id, request.completion_id, 0,
                                     output).encode()

    def _ioctl(self, request: DeviceControlRequest) -> list[bytes]:
        self.ioctls += 1
        code = request.io_control_code
        if code == ScardIoctl.SCARD_IOCTL_TRANSMIT:
            return [self._reply(request, self.transmit_return)]
        fixed = _FIXED.get(code)
        if fixed is not None:
            return [self._reply(request, fixed)]
        if code == ScardIoctl.SCARD_IOCTL_ESTABLISHCONTEXT:
            self._contexts += 1
            context = RedirScardContext(self._contexts.to_bytes(4, "little"))
            return [self._reply(request, EstablishContextReturn(0, context).encode())]
        if code == ScardIoctl.SCARD_IOCTL_CONNECTW:
            call = ConnectWCall.decode(request.input_buffer)
            handle = RedirScardHandle(call.context, b"\x01\x00\x00\x00")
            answer = ConnectReturn(0, handle, ScardProtocol.SCARD_PROTOCOL_T1)
            return [self._reply(request, answer.encode())]
        if code == ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW:
            return self._status_change(request)
        if code == ScardIoctl.SCARD_IOCTL_CANCEL:
            # the waits held on that context end cancelled, as on a real client
            held, self._held = self._held, []
            cancelled = GetStatusChangeReturn.failure(ScardReturn.SCARD_E_CANCELLED).encode()
            return [self._reply(r, cancelled) for r in held] + [self._reply(request, _LONG_OK)]
        return [self._reply(request, self._unsupported(code))]

    def _status_change(self, request: DeviceControlRequest) -> list[bytes]:
        """Answer at once when the caller does not know the card is there; else hold."""
        call = GetStatusChangeWCall.decode(request.input_buffer)
        states: list[ReaderStateReturn] = []
        changed = False
        for state in call.rg_reader_states:
            current = state.common.dw_current_state
            if state.sz_reader == PNP_NOTIFICATION:
                states.append(ReaderStateReturn(current, current & ~CHANGED, 0))
            elif state.sz_reader == READER:
                if current & ~CHANGED & 0xFFFF != PRESENT:
                    changed = True
                event = PRESENT | (CHANGED if changed else 0)
                states.append(ReaderStateReturn(current, event, len(ATR), ATR))
            else:
                changed = True
                unknown = int(ScardReaderState.SCARD_STATE_UNKNOWN) | CHANGED
                states.append(ReaderStateReturn(current, unknown, 0))
        if not changed:
            self._held.append(request)
            return []
        answer = GetStatusChangeReturn(ScardReturn.SCARD_S_SUCCESS, tuple(states))
        return [self._reply(request, answer.encode())]

    @staticmethod
    def _unsupported(code: int) -> bytes:
        try:
            reply_type: type[NdrMessage] = IOCTL_MESSAGES[ScardIoctl(code)][1]
        except (ValueError, KeyError):
            reply_type = LongReturn
        try:
            return reply_type.failure(ScardReturn.SCARD_E_UNSUPPORTED_FEATURE).encode()
        except NotImplementedError:
            return LongReturn(ScardReturn.SCARD_E_UNSUPPORTED_FEATURE).encode()


def tls_client_context() -> ssl.SSLContext:
    """TLS without certificate checks (the server's certificate is self-signed)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class ClientConnection:
    """One connected scripted client: its protocol objects and its socket writer."""

    connector: RdpConnector
    card: ScriptedSmartCard
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader

    def flush(self) -> None:
        out = self.connector.data_to_send()
        if out:
            self.writer.write(out)

    def announce(self) -> None:
        """Send the held-back device announce now."""
        for message in self.card.announce():
            self.connector.send_channel_data(CHANNEL, message)
        self.flush()


async def connect_client(
    host: str, port: int, *, width: int = 200, height: int = 200,
    announce_device: bool = True, on_ready: Callable[[ClientConnection], None] | None = None,
) -> tuple[ClientConnection, asyncio.Task[None]]:
    """Connect, reach the active session, and keep serving the channel in a task.

    Returns when the connection is active; ``on_ready`` is called (in the
    serving task) when the server has answered the device announce.
    """
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    connector = RdpConnector(ConnectorSettings(width=width, height=height,
                                               client_name="bench", channels=(CHANNEL,)))
    writer.write(connector.data_to_send())
    while connector.state is not ConnectorState.AWAIT_TLS:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("the server closed the connection during negotiation")
        connector.receive(data)
    await writer.start_tls(tls_client_context())
    connector.tls_established()
    client = ClientConnection(connector, ScriptedSmartCard(announce_device), writer, reader)
    client.flush()
    while not _active(connector):
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("the server closed the connection before the session")
        _feed(client, data, None)
    task = asyncio.get_running_loop().create_task(_serve(client, on_ready))
    return client, task


def _active(connector: RdpConnector) -> bool:
    return connector.state is ConnectorState.ACTIVE


def _feed(client: ClientConnection, data: bytes,
          on_ready: Callable[[ClientConnection], None] | None) -> None:
    connector, card = client.connector, client.card
    was_ready = card.ready
    connector.receive(data)
    if connector.channel_messages:
        messages, connector.channel_messages = connector.channel_messages, []
        for _name, message in messages:
            for answer in card.receive(message):
                connector.send_channel_data(CHANNEL, answer)
    client.flush()
    if on_ready is not None and card.ready and not was_ready:
        on_ready(client)


async def _serve(client: ClientConnection,
                 on_ready: Callable[[ClientConnection], None] | None) -> None:
    if on_ready is not None and client.card.ready:
        on_ready(client)
    while True:
        data = await client.reader.read(1 << 18)
        if not data:
            return
        _feed(client, data, on_ready)
