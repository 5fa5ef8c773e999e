"""A minimal client side of the RDP connection sequence, sans-IO.

MS-RDPBCGR 1.3.1.1 from the client's seat, enough to drive the server in
memory (unit tests) and to load it with many scripted clients (benchmarks):
TLS security only, static channels joined, Client Info sent (optionally
with a smart card PIN, INFO_PASSWORD_IS_SC_PIN), capabilities confirmed,
finalisation, then fast-path bitmap updates counted and channel data
reassembled. It is not a general RDP client: it never decodes graphics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from rdscard.errors import ProtocolError
from rdscard.pdu import gcc, mcs, share, tpkt, x224
from rdscard.pdu.capabilities import (
    CHANNEL_CHUNK_LENGTH,
    CHANNEL_CHUNK_MAX_LENGTH,
    BitmapCapabilitySet,
    GeneralCapabilitySet,
    InputCapabilitySet,
    VirtualChannelCapabilitySet,
)
from rdscard.pdu.channel import ChannelReassembler, chunk_channel_data
from rdscard.pdu.client_info import ClientInfo, InfoFlag
from rdscard.pdu.gcc_client import (
    ChannelDef,
    ClientCoreData,
    ClientNetworkData,
    ClientSecurityData,
    ColorDepth,
    EarlyCapabilityFlags,
    RdpVersion,
    SupportedColorDepths,
)
from rdscard.pdu.input import FastPathInputPdu, InputEvent
from rdscard.pdu.mcs_connect import ConnectInitial, DomainParameters
from rdscard.pdu.secure import SecurityFlag, wrap_basic_security
from rdscard.secret import Secret

IO_CHANNEL_ID = 1003
_TARGET = DomainParameters(34, 2, 0, 1, 0, 1, 0xFFFF, 2)
_MINIMUM = DomainParameters(1, 1, 1, 1, 0, 1, 0x420, 2)
_MAXIMUM = DomainParameters(0xFFFF, 0xFC17, 0xFFFF, 1, 0, 1, 0xFFFF, 2)


class ConnectorState(Enum):
    """Where the client stands."""

    NEGOTIATING = "negotiating"
    AWAIT_TLS = "await TLS"
    AWAIT_CONNECT_RESPONSE = "await connect response"
    AWAIT_ATTACH = "await attach user confirm"
    JOINING = "joining channels"
    AWAIT_DEMAND_ACTIVE = "await demand active"
    FINALIZING = "finalizing"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass
class ConnectorSettings:
    """What the scripted client announces."""

    width: int = 1024
    height: int = 768
    client_name: str = "rdscard-test"
    channels: Sequence[str] = ()
    user_name: str = ""
    domain: str = ""
    pin: bytes | None = field(default=None, repr=False)
    protocols: x224.Protocol = x224.Protocol.SSL


class RdpConnector:
    """The client's protocol state for one connection."""

    def __init__(self, settings: ConnectorSettings | None = None) -> None:
        self.settings = settings or ConnectorSettings()
        self.state = ConnectorState.NEGOTIATING
        self._inbox = bytearray()
        self._outbox = bytearray()
        self.user_id = 0
        self.share_id = 0
        self.channel_ids: dict[str, int] = {}
        #: The server's VCChunkSize: what this client cuts its channel data at, as FreeRDP does.
        self.chunk_size = CHANNEL_CHUNK_LENGTH
        self._joins: list[int] = []
        self._reassemblers: dict[int, ChannelReassembler] = {}
        self.channel_messages: list[tuple[str, bytes]] = []
        self.fastpath_frames = 0
        self.fastpath_bytes = 0
        self.error_info: int | None = None
        self.negotiation_failure: int | None = None
        request = x224.ConnectionRequest(
            cookie=self.settings.user_name or None,
            negotiation=x224.NegotiationRequest(self.settings.protocols),
        )
        self._outbox += tpkt.wrap(request.encode())

    # -- adapter interface -------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes to write now."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def tls_established(self) -> None:
        """The transport is now TLS: send the MCS Connect Initial."""
        if self.state is not ConnectorState.AWAIT_TLS:
            raise RuntimeError("tls_established() outside the security upgrade")
        self._send_x224(self._connect_initial())
        self.state = ConnectorState.AWAIT_CONNECT_RESPONSE

    def receive(self, data: bytes) -> None:
        """Feed bytes from the server."""
        self._inbox += data
        while self.state is not ConnectorState.CLOSED:
            length = tpkt.next_frame_length(bytes(self._inbox[:4]))
            if length is None or len(self._inbox) < length:
                return
            frame = bytes(self._inbox[:length])
            del self._inbox[:length]
            if tpkt.is_fastpath(frame):
                self.fastpath_frames += 1
                self.fastpath_bytes += len(frame)
            elif self.state is ConnectorState.NEGOTIATING:
                self._on_confirm(x224.ConnectionConfirm.decode(tpkt.unwrap(frame)))
            elif self.state is ConnectorState.AWAIT_CONNECT_RESPONSE:
                self._on_connect_response(tpkt.unwrap(frame))
            else:
                self._on_domain_pdu(mcs.decode_domain_pdu(x224.unwrap_data(tpkt.unwrap(frame))))

    def send_input(self, events: Sequence[InputEvent]) -> None:
        """Send fast-path input events."""
        self._outbox += FastPathInputPdu(tuple(events)).encode()

    def send_channel_data(self, name: str, data: bytes) -> None:
        """Send a static virtual channel message."""
        for chunk in chunk_channel_data(data, self.chunk_size):
            self._send_mcs(self.channel_ids[name], chunk)

    def send_share_data(self, body: share.ShareDataBody) -> None:
        """Send one share data PDU (a Refresh Rect, a Suppress Output...)."""
        self._send_share_data(body)

    def shutdown(self) -> None:
        """Ask the server to end the session (Shutdown Request PDU)."""
        self._send_share_data(share.ShutdownRequest())

    # -- the sequence ------------------------------------------------------------
    def _on_confirm(self, confirm: x224.ConnectionConfirm) -> None:
        negotiation = confirm.negotiation
        if isinstance(negotiation, x224.NegotiationResponse):
            self.state = ConnectorState.AWAIT_TLS
            return
        self.negotiation_failure = (
            int(negotiation.failure_code) if negotiation is not None else -1
        )
        self.state = ConnectorState.CLOSED

    def _connect_initial(self) -> ConnectInitial:
        s = self.settings
        core = ClientCoreData(
            version=RdpVersion.RDP_VERSION_5_PLUS,
            desktop_width=s.width,
            desktop_height=s.height,
            color_depth=ColorDepth.RNS_UD_COLOR_8BPP,
            sas_sequence=0xAA03,
            keyboard_layout=0x409,
            client_build=1,
            client_name=s.client_name[:15],
            keyboard_type=4,
            keyboard_sub_type=0,
            keyboard_function_key=12,
            ime_file_name="",
            post_beta2_color_depth=ColorDepth.RNS_UD_COLOR_8BPP,
            client_product_id=1,
            serial_number=0,
            high_color_depth=24,
            supported_color_depths=SupportedColorDepths.RNS_UD_32BPP_SUPPORT
            | SupportedColorDepths.RNS_UD_24BPP_SUPPORT
            | SupportedColorDepths.RNS_UD_16BPP_SUPPORT,
            early_capability_flags=EarlyCapabilityFlags.RNS_UD_CS_SUPPORT_ERRINFO_PDU
            | EarlyCapabilityFlags.RNS_UD_CS_WANT_32BPP_SESSION,
        )
        blocks = gcc.ClientGccData(
            core=core,
            security=ClientSecurityData(),
            net=ClientNetworkData(tuple(ChannelDef(name, 0x80000000) for name in s.channels)),
        )
        user_data = gcc.ConferenceCreateRequest(blocks.encode()).encode()
        return ConnectInitial(b"\x01", b"\x01", True, _TARGET, _MINIMUM, _MAXIMUM, user_data)

    def _on_connect_response(self, payload: bytes) -> None:
        response = mcs.ConnectResponse.decode(x224.unwrap_data(payload))
        server = gcc.ServerGccData.decode(
            gcc.ConferenceCreateResponse.decode(response.user_data).user_data
        )
        channel_ids = server.net.channel_id_array if server.net is not None else ()
        self.channel_ids = dict(zip(self.settings.channels, channel_ids, strict=True))
        self._send_x224(mcs.ErectDomainRequest())
        self._send_x224(mcs.AttachUserRequest())
        self.state = ConnectorState.AWAIT_ATTACH

    def _on_domain_pdu(self, pdu: mcs.DomainPdu) -> None:
        if isinstance(pdu, mcs.AttachUserConfirm):
            if pdu.initiator is None:
                raise ProtocolError("MCS Attach User Confirm", "initiator", "attach refused")
            self.user_id = pdu.initiator
            self._joins = [self.user_id, IO_CHANNEL_ID, *self.channel_ids.values()]
            self._send_join()
            self.state = ConnectorState.JOINING
        elif isinstance(pdu, mcs.ChannelJoinConfirm):
            self._joins.pop(0)
            if self._joins:
                self._send_join()
            else:
                self._send_client_info()
                self.state = ConnectorState.AWAIT_DEMAND_ACTIVE
        elif isinstance(pdu, mcs.DisconnectProviderUltimatum):
            self.state = ConnectorState.CLOSED
        elif isinstance(pdu, mcs.SendDataIndication):
            if pdu.channel_id == IO_CHANNEL_ID:
                self._on_io_data(pdu.user_data)
            else:
                self._on_channel_data(pdu.channel_id, pdu.user_data)

    def _send_join(self) -> None:
        self._send_x224(mcs.ChannelJoinRequest(self.user_id, self._joins[0]))

    def _send_client_info(self) -> None:
        s = self.settings
        flags = InfoFlag.INFO_MOUSE | InfoFlag.INFO_UNICODE | InfoFlag.INFO_LOGONERRORS
        password = Secret()
        if s.pin is not None:
            flags |= InfoFlag.INFO_AUTOLOGON | InfoFlag.INFO_PASSWORD_IS_SC_PIN
            password = Secret(s.pin)
        info = ClientInfo(
            flags=flags, domain=s.domain, user_name=s.user_name, password=password
        )
        self._send_mcs(IO_CHANNEL_ID, wrap_basic_security(SecurityFlag.SEC_INFO_PKT,
                                                          info.encode()))
        password.wipe()

    def _on_io_data(self, data: bytes) -> None:
        if self.state is ConnectorState.AWAIT_DEMAND_ACTIVE and data[:1] == b"\x80":
            return  # the licensing PDU (SEC_LICENSE_PKT): nothing to answer
        for pdu in share.decode_share_pdus(data):
            if isinstance(pdu, share.DemandActive):
                self.share_id = pdu.share_id
                self._confirm_active(pdu)
            elif isinstance(pdu, share.ShareData):
                body = pdu.body
                if isinstance(body, share.FontMap):
                    self.state = ConnectorState.ACTIVE
                elif isinstance(body, share.SetErrorInfo):
                    self.error_info = body.error_info

    def _confirm_active(self, demand: share.DemandActive) -> None:
        bitmap = next(
            (c for c in demand.capability_sets if isinstance(c, BitmapCapabilitySet)), None
        )
        channels = next((c for c in demand.capability_sets
                         if isinstance(c, VirtualChannelCapabilitySet)), None)
        if channels is not None:
            self.chunk_size = min(max(channels.chunk_size, CHANNEL_CHUNK_LENGTH),
                                  CHANNEL_CHUNK_MAX_LENGTH)
        sets = (
            GeneralCapabilitySet(),
            bitmap or BitmapCapabilitySet(),
            InputCapabilitySet(),
            VirtualChannelCapabilitySet(),
        )
        confirm = share.ConfirmActive(
            share_id=self.share_id, capability_sets=sets, pdu_source=self.user_id
        )
        self._send_mcs(IO_CHANNEL_ID, confirm.encode())
        self._send_share_data(share.Synchronize(target_user=IO_CHANNEL_ID))
        self._send_share_data(share.Control.cooperate())
        self._send_share_data(share.Control.request_control())
        self._send_share_data(share.FontList())
        self.state = ConnectorState.FINALIZING

    def _on_channel_data(self, channel_id: int, data: bytes) -> None:
        names = {v: k for k, v in self.channel_ids.items()}
        reassembler = self._reassemblers.setdefault(channel_id, ChannelReassembler())
        message = reassembler.add(data)
        if message is not None:
            self.channel_messages.append((names.get(channel_id, str(channel_id)), message))

    # -- output helpers -------------------------------------------------------
    def _send_x224(self, pdu: mcs.McsPdu) -> None:
        self._outbox += tpkt.wrap(x224.wrap_data(pdu.encode()))

    def _send_mcs(self, channel_id: int, data: bytes) -> None:
        self._send_x224(mcs.SendDataRequest(self.user_id, channel_id, data))

    def _send_share_data(self, body: share.ShareDataBody) -> None:
        self._send_mcs(
            IO_CHANNEL_ID,
            share.wrap_share_data(body, share_id=self.share_id, pdu_source=self.user_id),
        )
