"""The server side of the RDP connection sequence as a sans-IO state machine.

MS-RDPBCGR 1.3.1.1 (connection sequence) and 3.3.5 (server processing):
connection initiation with TLS negotiation, basic settings exchange (MCS
Connect with GCC), channel connection (Erect Domain, Attach User, Channel
Joins), the Client Info PDU, licensing skipped with the valid-client error,
capabilities exchange (Demand Active / Confirm Active), finalisation, then
the active session with input, static virtual channels and graphics.

Feed received bytes to :meth:`RdpAcceptor.receive`; collect bytes to send
with :meth:`data_to_send` and what happened with :meth:`events`. Two
transitions need the adapter's help. The TLS upgrade: after a
:class:`StartTls` event, send the pending bytes, upgrade the transport,
then call :meth:`tls_established`. Network Level Authentication
(MS-RDPBCGR 5.4.5.2, when HYBRID or HYBRID_EX was selected): each whole
TSRequest comes out as a :class:`CredSspReceived` event, and nothing more
is read until the adapter answers with :meth:`credssp_send`,
:meth:`credssp_finished` or :meth:`credssp_refused` (the CredSSP exchange
itself is :class:`rdscard.protocol.credssp.CredSspServer`, run by the
logon service).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rdscard.errors import ProtocolError
from rdscard.pdu import client_info as ci
from rdscard.pdu import gcc, mcs, share, tpkt, x224
from rdscard.pdu.capabilities import CapabilitySet
from rdscard.pdu.channel import ChannelReassembler, chunk_channel_data
from rdscard.pdu.credssp import ts_request_length
from rdscard.pdu.input import decode_fastpath_input, decode_slowpath_input
from rdscard.pdu.licensing import license_error_valid_client
from rdscard.pdu.secure import (
    BasicSecurityHeader,
    SecurityFlag,
    unwrap_basic_security,
    wrap_basic_security,
)
from rdscard.pdu.send_data import encode_send_data_indication, parse_send_data_request
from rdscard.protocol import capabilities_policy as policy
from rdscard.protocol.events import (
    AcceptorEvent,
    ChannelData,
    ClientConnected,
    ClientInfoReceived,
    ClientShutdown,
    CredSspReceived,
    InputReceived,
    NegotiationRefused,
    Phase,
    RefreshRequested,
    SessionActivated,
    StartTls,
)
from rdscard.secret import SecretBuffer

IO_CHANNEL_ID = 1003
USER_CHANNEL_ID = 1002
FINALIZATION_NEEDED = frozenset({"synchronize", "cooperate", "request_control", "font_list"})
HYBRIDS = x224.Protocol.HYBRID | x224.Protocol.HYBRID_EX
#: Early User Authorization Result PDU (MS-RDPBCGR 2.2.10.2).
AUTHZ_SUCCESS = 0x00000000
AUTHZ_ACCESS_DENIED = 0x00000005
#: Up to the Client Info PDU, received bytes may hold the PIN: they stay in a SecretBuffer.
_GUARDED_PHASES = frozenset({
    Phase.CONNECTION_REQUEST, Phase.TLS_HANDSHAKE, Phase.CREDSSP, Phase.CREDSSP_WAIT,
    Phase.BASIC_SETTINGS, Phase.CHANNEL_CONNECTION, Phase.SECURE_SETTINGS,
})


@dataclass(frozen=True)
class AcceptorSettings:
    """What the server decides (MS-RDPBCGR 3.3.1)."""

    default_width: int = 1024
    default_height: int = 768
    share_id: int = 0x000103EA
    session_id: int = 0
    #: Offer Network Level Authentication (select HYBRID_EX or HYBRID when offered).
    nla: bool = False
    #: Refuse clients that do not offer NLA (HYBRID_REQUIRED_BY_SERVER).
    require_nla: bool = False


class RdpAcceptor:
    """One connection's server-side protocol state."""

    def __init__(self, settings: AcceptorSettings | None = None) -> None:
        self.settings = settings or AcceptorSettings()
        self.phase = Phase.CONNECTION_REQUEST
        self._inbox = bytearray()
        #: Received bytes until the Client Info PDU is decoded (None afterwards).
        self._guarded: SecretBuffer | None = SecretBuffer()
        self._outbox = bytearray()
        self._events: list[AcceptorEvent] = []
        self._requested_protocols = 0
        #: The protocol the server selected (PROTOCOL_SSL, HYBRID or HYBRID_EX).
        self.selected_protocol = 0
        self._channel_names: dict[int, str] = {}
        self._channel_ids: dict[str, int] = {}
        self._pending_joins: set[int] = set()
        self._reassemblers: dict[int, ChannelReassembler] = {}
        self._chunk_size = policy.DEFAULT_CHUNK_SIZE
        self.fastpath_max_request: int | None = None
        self._finalization_seen: set[str] = set()
        self.desktop_width = self.settings.default_width
        self.desktop_height = self.settings.default_height
        self.color_depth = 32
        #: The client's capability sets from its Confirm Active PDU.
        self.client_capabilities: tuple[CapabilitySet, ...] = ()
        self._handlers: dict[Phase, Callable[[bytes], None]] = {
            Phase.CONNECTION_REQUEST: self._on_connection_request,
            Phase.BASIC_SETTINGS: self._on_connect_initial,
            Phase.CHANNEL_CONNECTION: self._on_domain_pdu,
            Phase.SECURE_SETTINGS: self._on_domain_pdu,
            Phase.CAPABILITIES: self._on_domain_pdu,
            Phase.FINALIZATION: self._on_domain_pdu,
            Phase.ACTIVE: self._on_domain_pdu,
        }

    # -- adapter interface -------------------------------------------------
    def receive(self, data: bytes | memoryview) -> None:
        """Feed bytes from the transport; raises ProtocolError on malformed input.

        Until the Client Info PDU is decoded (:attr:`guarding`) the bytes are
        copied into a wipeable buffer and ``data`` may be a view of the
        adapter's own, which it zeroes afterwards.
        """
        if self._guarded is not None:
            self._receive_guarded(data)
            return
        if self.phase is Phase.CLOSED:
            return
        if self._inbox:
            self._inbox += data
            buf = bytes(self._inbox)
            self._inbox.clear()
        else:
            buf = data if isinstance(data, bytes) else bytes(data)
        offset = 0
        try:
            while self.phase not in (Phase.CLOSED, Phase.TLS_HANDSHAKE):
                length = tpkt.next_frame_length(buf[offset : offset + 4])
                if length is None or len(buf) - offset < length:
                    return
                frame = buf[offset : offset + length]
                offset += length
                if self.phase is Phase.ACTIVE and self._on_channel_frame(frame):
                    continue
                if tpkt.is_fastpath(frame):
                    self._on_fastpath(frame)
                else:
                    self._handlers[self.phase](tpkt.unwrap(frame))
        finally:
            if offset < len(buf):
                self._inbox += buf[offset:]

    @property
    def guarding(self) -> bool:
        """True until the Client Info PDU, which may carry the PIN, has been decoded.

        Meanwhile received bytes live in a :class:`SecretBuffer`, parsed
        through views; the Client Info's password goes straight into a
        :class:`Secret` (MS-RDPBCGR 2.2.1.11.1.1).
        """
        return self._guarded is not None

    def _receive_guarded(self, data: bytes | memoryview) -> None:
        if self.phase is Phase.CLOSED:
            return
        if self.phase is Phase.TLS_HANDSHAKE:
            if data:
                raise ProtocolError("TLS", "handshake", "data received before the TLS upgrade")
            return
        assert self._guarded is not None
        self._guarded.append(data)
        self._drain_guarded()

    def _drain_guarded(self) -> None:
        """Handle the whole frames (or the next TSRequest) waiting in the guarded buffer."""
        while (inbox := self._guarded) is not None and len(inbox):
            phase = self.phase
            if phase in (Phase.CLOSED, Phase.TLS_HANDSHAKE, Phase.CREDSSP_WAIT):
                return
            view = inbox.view()
            if phase is Phase.CREDSSP:
                # One TSRequest at a time: the server answers each before the next.
                length = ts_request_length(view[:5])
                if length is None or len(view) < length:
                    return
                message = bytes(view[:length])  # GSS-sealed: no secret in the clear
                view.release()
                inbox.consume(length)
                self.phase = Phase.CREDSSP_WAIT
                self._events.append(CredSspReceived(message))
                return
            length = tpkt.next_frame_length(view[:4])
            if length is None or len(view) < length:
                return
            try:
                self._on_guarded_frame(view[:length])
            finally:
                view.release()
                inbox.consume(length)
            if self.phase not in _GUARDED_PHASES:
                self._end_guard()

    def _on_guarded_frame(self, frame: memoryview) -> None:
        if self.phase in (Phase.CHANNEL_CONNECTION, Phase.SECURE_SETTINGS):
            parsed = parse_send_data_request(frame)
            if parsed is not None and parsed[0] == IO_CHANNEL_ID:
                self._on_io_channel(parsed[1])  # the Client Info PDU, read through a view
                return
        data = bytes(frame)
        if tpkt.is_fastpath(data):
            self._on_fastpath(data)
        else:
            self._handlers[self.phase](tpkt.unwrap(data))

    def _end_guard(self) -> None:
        """The Client Info is decoded: what follows is read the ordinary (faster) way."""
        guarded, self._guarded = self._guarded, None
        if guarded is not None and len(guarded):
            rest = bytes(guarded.view())
            guarded.wipe()
            self.receive(rest)

    def tls_established(self) -> None:
        """The adapter finished the TLS handshake."""
        if self.phase is not Phase.TLS_HANDSHAKE:
            raise RuntimeError("tls_established() outside the security upgrade")
        self.phase = Phase.CREDSSP if self.selected_protocol & HYBRIDS else \
            Phase.BASIC_SETTINGS
        self._drain_guarded()

    # -- Network Level Authentication (MS-RDPBCGR 5.4.5.2, MS-CSSP) ----------------------
    def _credssp_turn(self) -> None:
        if self.phase is not Phase.CREDSSP_WAIT:
            raise RuntimeError("no TSRequest is waiting for the server's answer")

    def credssp_send(self, reply: bytes) -> None:
        """Send the CredSSP server's answer; the exchange goes on."""
        self._credssp_turn()
        self._outbox += reply
        self.phase = Phase.CREDSSP
        self._drain_guarded()

    def credssp_finished(self) -> None:
        """The client authenticated and delegated its credentials: on to MCS.

        With HYBRID_EX the client first gets the Early User Authorization
        Result (MS-RDPBCGR 2.2.10.2) saying so.
        """
        self._credssp_turn()
        if self.selected_protocol == x224.Protocol.HYBRID_EX:
            self._outbox += AUTHZ_SUCCESS.to_bytes(4, "little")
        self.phase = Phase.BASIC_SETTINGS
        self._drain_guarded()

    def credssp_refused(self, reply: bytes, *, after_credentials: bool = False) -> None:
        """The exchange failed: send ``reply`` (an errorCode TSRequest, or nothing), close.

        A refusal that came after the credentials is told to a HYBRID_EX
        client as ACCESS_DENIED in the Early User Authorization Result.
        """
        self._credssp_turn()
        if after_credentials and self.selected_protocol == x224.Protocol.HYBRID_EX:
            self._outbox += AUTHZ_ACCESS_DENIED.to_bytes(4, "little")
        else:
            self._outbox += reply
        if self._guarded is not None:
            self._guarded.wipe()
        self.phase = Phase.CLOSED

    def data_to_send(self) -> bytes:
        """Bytes the adapter must write now."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def events(self) -> list[AcceptorEvent]:
        """Events since the last call."""
        out = self._events
        self._events = []
        return out

    @property
    def channels(self) -> tuple[str, ...]:
        """Names of the joined static virtual channels, in the client's order."""
        return tuple(self._channel_ids)

    # -- server-initiated output ----------------------------------------------
    def send_channel_data(self, channel_name: str, data: bytes) -> None:
        """Send a static virtual channel message, chunked (MS-RDPBCGR 3.1.5.2.1)."""
        self._outbox += self.encode_channel_data(channel_name, data)

    def encode_channel_data(self, channel_name: str, data: bytes) -> bytes:
        """The frames of a static virtual channel message, for the adapter to write itself.

        :meth:`send_channel_data` without the outbox: the adapter writes
        them after whatever :meth:`data_to_send` still holds.
        """
        if self.phase is not Phase.ACTIVE:
            raise RuntimeError("channel data may be sent only in the active session")
        channel_id = self._channel_ids[channel_name]
        return b"".join(
            encode_send_data_indication(USER_CHANNEL_ID, channel_id, chunk)
            for chunk in chunk_channel_data(data, self._chunk_size)
        )

    def disconnect(self, error_info: int) -> None:
        """End the session from the server side with a reason the client shows."""
        if self.phase in (Phase.CLOSED, Phase.CONNECTION_REQUEST, Phase.TLS_HANDSHAKE,
                          Phase.CREDSSP, Phase.CREDSSP_WAIT):
            self.phase = Phase.CLOSED
            return
        if self.phase in (Phase.CAPABILITIES, Phase.FINALIZATION, Phase.ACTIVE):
            self._send_share_data(share.SetErrorInfo(error_info))
        self._send_x224(mcs.DisconnectProviderUltimatum(mcs.DisconnectReason.RN_PROVIDER_INITIATED))
        self.phase = Phase.CLOSED

    # -- connection initiation (MS-RDPBCGR 3.3.5.3.1, 3.3.5.3.2) -----------------
    def _on_connection_request(self, payload: bytes) -> None:
        request = x224.ConnectionRequest.decode(payload)
        requested = request.requested_protocols
        self._requested_protocols = requested
        settings = self.settings
        selected: x224.Protocol | None = None
        if request.negotiation is not None:
            if settings.nla and requested & x224.Protocol.HYBRID_EX:
                selected = x224.Protocol.HYBRID_EX
            elif settings.nla and requested & x224.Protocol.HYBRID:
                selected = x224.Protocol.HYBRID
            elif requested & x224.Protocol.SSL and not (settings.nla and settings.require_nla):
                selected = x224.Protocol.SSL
        if selected is not None:
            self.selected_protocol = selected
            self._outbox += tpkt.wrap(x224.ConnectionConfirm.selecting(selected).encode())
            self.phase = Phase.TLS_HANDSHAKE
            self._events.append(StartTls(requested, request.cookie or "", selected))
            return
        if settings.nla and settings.require_nla:
            failure = x224.FailureCode.HYBRID_REQUIRED_BY_SERVER
            reason = "the client does not offer CredSSP (NLA), which the server requires"
        else:
            failure = x224.FailureCode.SSL_REQUIRED_BY_SERVER
            reason = "the client does not offer TLS"
        self._outbox += tpkt.wrap(x224.ConnectionConfirm.failing(failure).encode())
        self.phase = Phase.CLOSED
        self._events.append(NegotiationRefused(requested, failure, reason))

    # -- basic settings exchange (3.3.5.3.3, 3.3.5.3.4) -------------------------
    def _on_connect_initial(self, payload: bytes) -> None:
        initial = mcs.ConnectInitial.decode(x224.unwrap_data(payload))
        client = gcc.decode_client_data(initial.user_data)
        core = client.core
        self.desktop_width, self.desktop_height = policy.desktop_size(
            core.desktop_width, core.desktop_height, self.settings
        )
        self.color_depth = policy.color_depth(core)
        names = [c.name for c in (client.net.channel_def_array if client.net else ())]
        if len(set(names)) != len(names):
            # Channels are known by name from here on (events, handlers, sends).
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ProtocolError("Client Network Data", "channelDefArray",
                                f"channel {', '.join(repeated)} announced twice")
        ids = []
        for index, name in enumerate(names):
            channel_id = IO_CHANNEL_ID + 1 + index
            self._channel_names[channel_id] = name
            self._channel_ids[name] = channel_id
            ids.append(channel_id)
        response = gcc.server_data_response(
            requested_protocols=self._requested_protocols,
            io_channel_id=IO_CHANNEL_ID,
            channel_ids=ids,
        )
        self._send_x224(mcs.ConnectResponse.for_user_data(response))
        self._pending_joins = {USER_CHANNEL_ID, IO_CHANNEL_ID, *ids}
        self.phase = Phase.CHANNEL_CONNECTION
        self._events.append(
            ClientConnected(
                client_name=core.client_name,
                client_build=core.client_build,
                desktop_width=self.desktop_width,
                desktop_height=self.desktop_height,
                color_depth=self.color_depth,
                keyboard_layout=core.keyboard_layout,
                channels=tuple(names),
                requested_protocols=self._requested_protocols,
            )
        )

    # -- everything inside MCS domain PDUs ---------------------------------------
    def _on_domain_pdu(self, payload: bytes) -> None:
        pdu = mcs.decode_domain_pdu(x224.unwrap_data(payload))
        if isinstance(pdu, mcs.ErectDomainRequest):
            return
        if isinstance(pdu, mcs.AttachUserRequest):
            self._send_x224(mcs.AttachUserConfirm(result=0, initiator=USER_CHANNEL_ID))
            return
        if isinstance(pdu, mcs.ChannelJoinRequest):
            self._on_channel_join(pdu)
            return
        if isinstance(pdu, mcs.DisconnectProviderUltimatum):
            self.phase = Phase.CLOSED
            self._events.append(ClientShutdown("the client disconnected"))
            return
        if isinstance(pdu, mcs.SendDataRequest):
            if pdu.channel_id == IO_CHANNEL_ID:
                self._on_io_channel(pdu.user_data)
            elif pdu.channel_id in self._channel_names:
                self._on_static_channel(pdu.channel_id, pdu.user_data)
            else:
                raise ProtocolError("MCS Send Data Request", "channelId",
                                    f"unknown channel {pdu.channel_id}")
            return
        raise ProtocolError("MCS", "choice", f"unexpected {type(pdu).__name__} in {self.phase}")

    def _on_channel_join(self, pdu: mcs.ChannelJoinRequest) -> None:
        if self.phase is not Phase.CHANNEL_CONNECTION:
            raise ProtocolError("MCS Channel Join Request", "channelId", "join after connection")
        known = pdu.channel_id in self._pending_joins
        self._pending_joins.discard(pdu.channel_id)
        self._send_x224(
            mcs.ChannelJoinConfirm(
                result=0 if known else mcs.McsResult.RT_NO_SUCH_CHANNEL,
                initiator=pdu.initiator,
                requested=pdu.channel_id,
                channel_id=pdu.channel_id if known else None,
            )
        )
        if not self._pending_joins:
            self.phase = Phase.SECURE_SETTINGS

    def _on_io_channel(self, data: bytes | memoryview) -> None:
        if self.phase is Phase.SECURE_SETTINGS:
            self._on_client_info(data)
            return
        if self.phase is Phase.CHANNEL_CONNECTION:
            # Some clients (aardwolf) skip joins they do not need; Windows servers
            # accept the Client Info once the I/O channel itself is joined.
            if IO_CHANNEL_ID in self._pending_joins:
                raise ProtocolError("Client Info PDU", "channel", "sent before joining I/O")
            for channel_id in self._pending_joins - {USER_CHANNEL_ID}:
                name = self._channel_names.pop(channel_id)
                del self._channel_ids[name]
            self._pending_joins.clear()
            self._on_client_info(data)
            return
        for pdu in share.decode_share_pdus(bytes(data)):
            self._on_share_pdu(pdu)

    # -- secure settings exchange and licensing (3.3.5.3.11, 3.3.5.3.12) ----------
    def _on_client_info(self, data: bytes | memoryview) -> None:
        # The header alone is copied: the rest, with the password, is decoded through a view.
        flags, _ = unwrap_basic_security(bytes(data[:BasicSecurityHeader.SIZE]))
        if not flags & SecurityFlag.SEC_INFO_PKT:
            raise ProtocolError("Client Info PDU", "securityHeader.flags", "SEC_INFO_PKT not set")
        info = ci.ClientInfo.decode(data[BasicSecurityHeader.SIZE:])
        self._events.append(ClientInfoReceived(info))
        self._send_mcs(
            IO_CHANNEL_ID, wrap_basic_security(SecurityFlag.SEC_LICENSE_PKT,
                                               license_error_valid_client())
        )
        demand = policy.demand_active(
            share_id=self.settings.share_id,
            session_id=self.settings.session_id,
            width=self.desktop_width,
            height=self.desktop_height,
            color_depth=self.color_depth,
        )
        self._send_mcs(IO_CHANNEL_ID, demand.encode())
        self.phase = Phase.CAPABILITIES

    # -- capabilities, finalisation, active session (3.3.5.3.13 - 3.3.5.3.22) -------
    def _on_share_pdu(self, pdu: share.SharePdu) -> None:
        if isinstance(pdu, share.ConfirmActive):
            self._on_confirm_active(pdu)
            return
        if self.phase is Phase.CAPABILITIES:
            raise ProtocolError("Confirm Active PDU", "pduType",
                                f"expected Confirm Active, got {type(pdu).__name__}")
        if isinstance(pdu, share.ShareData):
            self._on_share_data(pdu)

    def _on_confirm_active(self, pdu: share.ConfirmActive) -> None:
        if self.phase not in (Phase.CAPABILITIES, Phase.ACTIVE, Phase.FINALIZATION):
            raise ProtocolError(
                "Confirm Active PDU", "pduType", "unexpected in " + self.phase.value
            )
        self.fastpath_max_request = policy.multifragment_max(pdu.capability_sets)
        self.client_capabilities = tuple(pdu.capability_sets)
        self._finalization_seen.clear()
        self.phase = Phase.FINALIZATION
        # The server Synchronize goes first: some clients (aardwolf) wait for it
        # before sending their own finalisation PDUs; xfreerdp takes any order.
        self._send_share_data(policy.server_synchronize(USER_CHANNEL_ID))

    def _on_share_data(self, pdu: share.ShareData) -> None:
        body = pdu.body
        if self.phase is Phase.FINALIZATION:
            step = policy.finalization_step(body)
            if step is not None:
                reply = policy.finalization_reply(step, USER_CHANNEL_ID)
                if reply is not None and step not in self._finalization_seen:
                    self._send_share_data(reply)
                self._finalization_seen.add(step)
                if self._finalization_seen >= FINALIZATION_NEEDED:
                    self.phase = Phase.ACTIVE
                    self._events.append(
                        SessionActivated(self.desktop_width, self.desktop_height, self.color_depth)
                    )
                return
        if isinstance(body, share.InputPdu):
            self._events.append(InputReceived(tuple(decode_slowpath_input(body.payload))))
        elif isinstance(body, share.ShutdownRequest):
            self._send_share_data(share.ShutdownDenied())
            self._events.append(ClientShutdown("the user ended the session"))
        elif (
            isinstance(body, share.RefreshRect | share.SuppressOutput)
            and self.phase is Phase.ACTIVE
            and policy.wants_refresh(body)
        ):
            self._events.append(RefreshRequested())

    def _on_channel_frame(self, frame: bytes) -> bool:
        """The hot path of the active session: a frame that is one static channel chunk.

        False when ``frame`` is anything else; the layered decoders take it.
        """
        parsed = parse_send_data_request(frame)
        if parsed is None or parsed[0] not in self._channel_names:
            return False
        self._on_static_channel(*parsed)
        return True

    def _on_static_channel(self, channel_id: int, data: bytes) -> None:
        if self.phase is not Phase.ACTIVE:
            return  # MS-RDPBCGR 3.3.5.2.2: ignored before activation
        reassembler = self._reassemblers.get(channel_id)
        if reassembler is None:
            reassembler = self._reassemblers[channel_id] = ChannelReassembler()
        message = reassembler.add(data)
        if message is not None:
            self._events.append(ChannelData(self._channel_names[channel_id], message))

    def _on_fastpath(self, frame: bytes) -> None:
        if self.phase is not Phase.ACTIVE:
            return
        self._events.append(InputReceived(tuple(decode_fastpath_input(frame))))

    # -- output helpers -----------------------------------------------------
    def _send_x224(self, pdu: mcs.McsPdu) -> None:
        self._outbox += tpkt.wrap(x224.wrap_data(pdu.encode()))

    def _send_mcs(self, channel_id: int, data: bytes) -> None:
        self._send_x224(
            mcs.SendDataIndication(initiator=USER_CHANNEL_ID, channel_id=channel_id, user_data=data)
        )

    def _send_share_data(self, body: share.ShareDataBody) -> None:
        pdu = share.wrap_share_data(body, share_id=self.settings.share_id)
        self._send_mcs(IO_CHANNEL_ID, pdu)
