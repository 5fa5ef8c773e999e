"""Server side of the rdpdr static channel, sans I/O (MS-RDPEFS 3.3).

:class:`RdpdrServer` takes complete channel messages (already reassembled
from CHANNEL_PDU_HEADER chunks) and the current time, returns events, and
keeps an outbox of messages to send (:meth:`RdpdrServer.data_to_send`).

The handshake runs in the order xfreerdp requires (MS-RDPEFS 3.1.3)::

    S: Server Announce Request
    C: Client Announce Reply, Client Name Request
    S: Server Core Capability Request, then Server Client ID Confirm
    C: Client Core Capability Response, Client Device List Announce
    S: Server Device Announce Response for every device
    S: (optional) Server User Logged On; the client announces again

Sending the Client ID Confirm before the capabilities, or a 40-byte general
capability set, makes FreeRDP abort the channel; both are avoided here.

Smart card devices are accepted with STATUS_SUCCESS; every other device
type is answered STATUS_NOT_SUPPORTED and never exposed. A second announce
of a known device id is answered again but reported once. Once a smart
card device exists, :meth:`RdpdrServer.device_control` sends IOCTLs
(IRP_MJ_DEVICE_CONTROL, FileId 0); replies are matched by CompletionId,
requests time out through :meth:`RdpdrServer.expire`, and
:meth:`RdpdrServer.close` fails everything still pending.

:meth:`RdpdrServer.restart` sends a second Server Announce: the client
resets its rdpdr state and releases every smart card context it holds, so
callers must treat all contexts and handles of this channel as gone.

A bad I/O completion (a CompletionId nothing waits for, a reply from the
wrong device, an OutputBufferLength that does not fit the message) is
dropped with a :class:`CompletionDropped` event instead of ending the
channel: one stray reply must not end redirection for the whole session.
When it still names a pending request, that request fails at once
(:class:`IoctlFailed` with ``malformed``). Only past ``max_bad_completions``
bad completions does :meth:`RdpdrServer.receive` raise
:class:`~rdscard.errors.ProtocolError`, and the adapter closes the channel.

Transitions live in one table, :data:`_TRANSITIONS`, keyed by phase and
PacketId.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, NamedTuple

from rdscard.errors import ProtocolError, RdscardError
from rdscard.pdu.buffer import Reader
from rdscard.pdu.rdpdr import (
    SMARTCARD_CAPABILITY,
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientDeviceListRemove,
    ClientNameRequest,
    Component,
    DeviceType,
    ExtendedPdu,
    GeneralCapabilitySet,
    NtStatus,
    PacketId,
    RdpdrHeader,
    ServerAnnounceRequest,
    ServerClientIdConfirm,
    ServerCoreCapabilityRequest,
    ServerDeviceAnnounceResponse,
    ServerUserLoggedOn,
)
from rdscard.pdu.rdpdr_io import DeviceControlResponse, read_io_completion_header
from rdscard.pdu.rdpdr_wire import (
    IOCOMPLETION_HEADER,
    encode_device_control_request,
    parse_device_control_response,
)

PDU: Final = "rdpdr channel"
#: Seconds an IOCTL may stay unanswered unless the caller gives its own timeout.
DEFAULT_IOCTL_TIMEOUT: Final = 30.0
#: Requests in flight at once on one channel.
MAX_PENDING_IOCTLS: Final = 4096
#: Smart card devices accepted from one client.
MAX_SMARTCARD_DEVICES: Final = 8
#: Devices a client may announce over a session's life (each one is answered): real
#: clients announce a handful; thousands are a flood of replies, and the channel goes.
MAX_ANNOUNCED_DEVICES: Final = 256
#: Completion ids remembered after a timeout, reset or removal, so a late reply is dropped.
RETIRED_COMPLETION_IDS: Final = 1024
#: Bad I/O completions dropped on one channel before the channel is given up.
MAX_BAD_COMPLETIONS: Final = 100


class RdpdrPhase(Enum):
    """Where the channel stands."""

    IDLE = "not started"
    WAIT_ANNOUNCE_REPLY = "waiting for Client Announce Reply"
    WAIT_CLIENT_NAME = "waiting for Client Name Request"
    WAIT_CLIENT_CAPABILITY = "waiting for Client Core Capability Response"
    READY = "ready"
    CLOSED = "closed"


class RdpdrStateError(RdscardError):
    """A local call the channel cannot honour now (not ready, unknown device, closed)."""


# -- events ----------------------------------------------------------------------


@dataclass(frozen=True)
class ClientIdentified:
    """The client answered the announce and named itself (MS-RDPEFS 2.2.2.3, 2.2.2.4)."""

    name: str
    client_id: int
    version_minor: int


@dataclass(frozen=True)
class SmartCardDeviceAnnounced:
    """A new smart card device (RDPDR_DTYP_SMARTCARD) was accepted."""

    device_id: int
    dos_name: str


@dataclass(frozen=True)
class ReadyForIoctls:
    """The channel has a smart card device again (none before): IOCTLs may flow."""

    device_id: int


@dataclass(frozen=True)
class DeviceRemoved:
    """A smart card device went away (Device List Remove, or a channel restart)."""

    device_id: int


@dataclass(frozen=True)
class IoctlCompleted:
    """The client answered the IOCTL sent with ``completion_id``."""

    completion_id: int
    device_id: int
    io_status: int
    output: bytes


@dataclass(frozen=True)
class IoctlFailed:
    """The IOCTL sent with ``completion_id`` will never be answered.

    ``malformed``: the client answered it, but with a reply that could not be
    decoded (rather than not at all).
    """

    completion_id: int
    device_id: int
    reason: str
    malformed: bool = False


@dataclass(frozen=True)
class CompletionDropped:
    """A bad Device I/O Response was dropped; the channel goes on (MS-RDPEFS 2.2.1.5).

    ``count`` is the number dropped on this channel so far, this one included;
    the adapter logs ``error`` (never the message's bytes).
    """

    error: ProtocolError
    count: int


RdpdrEvent = (
    ClientIdentified
    | SmartCardDeviceAnnounced
    | ReadyForIoctls
    | DeviceRemoved
    | IoctlCompleted
    | IoctlFailed
    | CompletionDropped
)


class _Pending(NamedTuple):
    device_id: int
    deadline: float


class RdpdrServer:
    """The rdpdr channel of one client connection, server side (MS-RDPEFS 3.3)."""

    def __init__(
        self,
        client_id: int,
        *,
        version_minor: int = 13,
        send_user_logged_on: bool = False,
        default_timeout: float = DEFAULT_IOCTL_TIMEOUT,
        special_type_device_cap: int = 1,
        max_bad_completions: int = MAX_BAD_COMPLETIONS,
    ) -> None:
        """``send_user_logged_on``: send User Logged On after the first smart card device.

        ``special_type_device_cap`` tells Windows clients how many smart card
        devices they may redirect before logon (needed for smart card sign-in).
        ``max_bad_completions``: bad I/O completions dropped before the
        channel is given up (the next one raises ProtocolError).
        """
        if not 0 <= client_id <= 0xFFFFFFFF:
            raise ValueError("client_id is a 32-bit unsigned value")
        if max_bad_completions < 0:
            raise ValueError("max_bad_completions is not negative")
        self._client_id = client_id
        self._announced = 0
        self._version_minor = version_minor
        self._send_user_logged_on = send_user_logged_on
        self._default_timeout = default_timeout
        self._special = special_type_device_cap
        self._phase = RdpdrPhase.IDLE
        self._outbox: list[bytes] = []
        self._client_name: str | None = None
        self._reply: ClientAnnounceReply | None = None
        self._client_caps: ClientCoreCapabilityResponse | None = None
        self._devices: dict[int, str] = {}
        self._pending: dict[int, _Pending] = {}
        self._retired: OrderedDict[int, None] = OrderedDict()
        self._next_completion = 1
        self._logged_on_sent = False
        self._max_bad = max_bad_completions
        self._bad_completions = 0

    # -- state -----------------------------------------------------------------
    @property
    def phase(self) -> RdpdrPhase:
        return self._phase

    @property
    def client_name(self) -> str | None:
        """The ComputerName of the Client Name Request."""
        return self._client_name

    @property
    def client_capabilities(self) -> ClientCoreCapabilityResponse | None:
        return self._client_caps

    @property
    def smart_card_devices(self) -> dict[int, str]:
        """Accepted smart card devices: DeviceId -> PreferredDosName."""
        return dict(self._devices)

    @property
    def bad_completions(self) -> int:
        """Bad I/O completions dropped on this channel so far."""
        return self._bad_completions

    @property
    def pending_count(self) -> int:
        """IOCTLs sent and not yet answered, expired or failed."""
        return len(self._pending)

    def data_to_send(self) -> list[bytes]:
        """Messages to send on the channel, in order; the outbox is emptied."""
        out, self._outbox = self._outbox, []
        return out

    # -- local calls -----------------------------------------------------------
    def start(self) -> list[bytes]:
        """Send the Server Announce Request; returns the outbox."""
        if self._phase != RdpdrPhase.IDLE:
            raise RdpdrStateError("the rdpdr channel was already started; use restart()")
        self._announce()
        return self.data_to_send()

    def restart(self, client_id: int | None = None) -> list[RdpdrEvent]:
        """Send a second Server Announce: the client resets rdpdr.

        The client releases every smart card context it holds, so every
        pending IOCTL fails and every device is reported removed.
        """
        if self._phase == RdpdrPhase.CLOSED:
            raise RdpdrStateError("the rdpdr channel is closed")
        events: list[RdpdrEvent] = list(self._fail_all("rdpdr channel restarted"))
        events += [DeviceRemoved(device_id) for device_id in self._devices]
        self._devices.clear()
        self._client_caps = None
        self._logged_on_sent = False
        if client_id is not None:
            self._client_id = client_id
        self._announce()
        return events

    def close(self) -> list[IoctlFailed]:
        """The channel or the connection went away: fail every pending IOCTL."""
        failed = self._fail_all("rdpdr channel closed")
        self._phase = RdpdrPhase.CLOSED
        self._devices.clear()
        self._outbox.clear()
        return failed

    def device_control(
        self,
        device_id: int,
        ioctl_code: int,
        input_buffer: bytes,
        output_buffer_length: int = 2048,
        *,
        now: float,
        timeout: float | None = None,
    ) -> int:
        """Queue a Device Control Request (MS-RDPEFS 2.2.1.4.5); returns its CompletionId.

        ``timeout`` (seconds, default the channel's) may be ``math.inf`` for
        calls that block on purpose, such as GetStatusChange without timeout.
        """
        if self._phase != RdpdrPhase.READY:
            raise RdpdrStateError(f"rdpdr channel is {self._phase.value}")
        if device_id not in self._devices:
            raise RdpdrStateError(f"no smart card device {device_id} on this channel")
        if len(self._pending) >= MAX_PENDING_IOCTLS:
            raise RdpdrStateError(f"{MAX_PENDING_IOCTLS} IOCTLs already in flight")
        completion_id = self._allocate_completion_id()
        limit = self._default_timeout if timeout is None else timeout
        self._pending[completion_id] = _Pending(device_id, now + limit)
        self._outbox.append(encode_device_control_request(
            device_id, completion_id, ioctl_code, input_buffer, output_buffer_length
        ))
        return completion_id

    def expire(self, now: float) -> list[IoctlFailed]:
        """Fail the IOCTLs whose deadline has passed."""
        late = [cid for cid, p in self._pending.items() if p.deadline <= now]
        return [self._fail(cid, "no answer from the client before the timeout") for cid in late]

    def next_deadline(self) -> float | None:
        """The earliest deadline of a pending IOCTL, for the adapter's timer."""
        deadlines = [p.deadline for p in self._pending.values() if math.isfinite(p.deadline)]
        return min(deadlines, default=None)

    def user_logged_on(self) -> None:
        """Send Server User Logged On (MS-RDPEFS 2.2.2.5) if the client supports it."""
        if self._phase != RdpdrPhase.READY:
            raise RdpdrStateError(f"rdpdr channel is {self._phase.value}")
        self._queue_logged_on()

    # -- input -------------------------------------------------------------------
    def receive(self, message: bytes, now: float) -> list[RdpdrEvent]:
        """Process one complete channel message from the client."""
        del now  # deadlines are set when sending; kept for a uniform adapter API
        if message[:4] == IOCOMPLETION_HEADER and self._phase is RdpdrPhase.READY:
            return self._on_io_completion(message)  # the hot path: an IOCTL answered
        if self._phase == RdpdrPhase.CLOSED:
            return []
        header = RdpdrHeader.read(Reader(message, PDU))
        if header.component != Component.RDPDR_CTYP_CORE:
            # Printer-component messages only follow a printer we refused.
            return []
        handler = _TRANSITIONS.get((self._phase, header.packet_id))
        if handler is None:
            raise ProtocolError(
                PDU, "PacketId", f"{header.packet_id.name} while {self._phase.value}"
            )
        return handler(self, message)

    # -- transitions -------------------------------------------------------------
    def _on_announce_reply(self, message: bytes) -> list[RdpdrEvent]:
        reply = ClientAnnounceReply.decode(message)
        if reply.version_major != 1:
            raise ProtocolError(
                ClientAnnounceReply.PDU, "VersionMajor", f"{reply.version_major} is not 1"
            )
        self._reply = reply
        self._phase = RdpdrPhase.WAIT_CLIENT_NAME
        return []

    def _on_client_name(self, message: bytes) -> list[RdpdrEvent]:
        name = ClientNameRequest.decode(message)
        reply = self._reply
        assert reply is not None  # set by the transition into WAIT_CLIENT_NAME
        self._client_name = name.computer_name
        general = GeneralCapabilitySet(
            protocol_minor_version=self._version_minor,
            extended_pdu=ExtendedPdu.RDPDR_DEVICE_REMOVE_PDUS | ExtendedPdu.RDPDR_USER_LOGGEDON_PDU,
            special_type_device_cap=self._special,
        )
        # Capabilities strictly before the Client ID Confirm (INTEROP 3).
        self._outbox.append(ServerCoreCapabilityRequest((general, SMARTCARD_CAPABILITY)).encode())
        self._outbox.append(
            ServerClientIdConfirm(
                client_id=reply.client_id,
                version_major=reply.version_major,
                version_minor=reply.version_minor,
            ).encode()
        )
        self._phase = RdpdrPhase.WAIT_CLIENT_CAPABILITY
        return [ClientIdentified(name.computer_name, reply.client_id, reply.version_minor)]

    def _on_client_capability(self, message: bytes) -> list[RdpdrEvent]:
        caps = ClientCoreCapabilityResponse.decode(message)
        if caps.general is None:
            raise ProtocolError(
                ClientCoreCapabilityResponse.PDU, "CapabilityMessage", "no general capability set"
            )
        self._client_caps = caps
        self._phase = RdpdrPhase.READY
        return []

    def _on_device_announce(self, message: bytes) -> list[RdpdrEvent]:
        announce = ClientDeviceListAnnounceRequest.decode(message)
        self._announced += len(announce.devices)
        if self._announced > MAX_ANNOUNCED_DEVICES:
            raise ProtocolError("Client Device List Announce", "DeviceCount",
                                f"more than {MAX_ANNOUNCED_DEVICES} devices announced "
                                "in one session")
        events: list[RdpdrEvent] = []
        first_device = False
        for device in announce.devices:
            accepted = device.device_type == DeviceType.RDPDR_DTYP_SMARTCARD and (
                device.device_id in self._devices or len(self._devices) < MAX_SMARTCARD_DEVICES
            )
            status = NtStatus.STATUS_SUCCESS if accepted else NtStatus.STATUS_NOT_SUPPORTED
            self._outbox.append(ServerDeviceAnnounceResponse(device.device_id, status).encode())
            if not accepted or device.device_id in self._devices:
                continue
            was_empty = not self._devices
            self._devices[device.device_id] = device.preferred_dos_name
            events.append(SmartCardDeviceAnnounced(device.device_id, device.preferred_dos_name))
            if was_empty:
                events.append(ReadyForIoctls(device.device_id))
                first_device = True
        if first_device and self._send_user_logged_on and not self._logged_on_sent:
            self._queue_logged_on()
        return events

    def _on_device_remove(self, message: bytes) -> list[RdpdrEvent]:
        remove = ClientDeviceListRemove.decode(message)
        events: list[RdpdrEvent] = []
        for device_id in remove.device_ids:
            if device_id not in self._devices:
                continue
            for cid in [c for c, p in self._pending.items() if p.device_id == device_id]:
                events.append(self._fail(cid, "smart card device removed by the client"))
            del self._devices[device_id]
            events.append(DeviceRemoved(device_id))
        return events

    def _on_io_completion(self, message: bytes) -> list[RdpdrEvent]:
        # Only Device Control Requests are ever sent, so every answer is a DR_CONTROL_RSP.
        usual = parse_device_control_response(message)
        if usual is None:  # an unusual shape (or malformed): the full decoder judges it
            try:
                response = DeviceControlResponse.decode(message)
            except ProtocolError as exc:
                return self._malformed_completion(message, exc)
            usual = (response.device_id, response.completion_id, response.io_status,
                     response.output_buffer)
        device_id, cid, io_status, output = usual
        pending = self._pending.get(cid)
        if pending is None:
            if cid in self._retired:
                del self._retired[cid]
                return []
            return self._drop(ProtocolError(
                DeviceControlResponse.PDU, "CompletionId", f"no request pending with id {cid}"
            ))
        if device_id != pending.device_id:
            return self._drop(ProtocolError(
                DeviceControlResponse.PDU,
                "DeviceId",
                f"reply from device {device_id} to request {cid} for device {pending.device_id}",
            ))
        del self._pending[cid]
        return [IoctlCompleted(cid, device_id, io_status, output)]

    def _malformed_completion(self, message: bytes, error: ProtocolError) -> list[RdpdrEvent]:
        """A DR_CONTROL_RSP that does not decode: dropped; its request, if known, fails now."""
        events = self._drop(error)
        try:
            header = read_io_completion_header(message)
        except ProtocolError:
            return events  # not even the header: nothing names a request
        pending = self._pending.get(header.completion_id)
        if pending is not None and pending.device_id == header.device_id:
            events.append(self._fail(
                header.completion_id, f"malformed reply from the client: {error.reason}",
                malformed=True,
            ))
        return events

    def _drop(self, error: ProtocolError) -> list[RdpdrEvent]:
        """Count a bad completion; past the limit the channel ends (ProtocolError)."""
        self._bad_completions += 1
        if self._bad_completions > self._max_bad:
            raise ProtocolError(
                error.pdu, error.field,
                f"{error.reason} ({self._bad_completions} bad I/O completions on this "
                f"channel, limit {self._max_bad})",
            )
        return [CompletionDropped(error, self._bad_completions)]

    def _on_stale_completion(self, message: bytes) -> list[RdpdrEvent]:
        # After restart() the client may still answer IOCTLs of the old session.
        try:
            header = read_io_completion_header(message)
        except ProtocolError as exc:
            return self._drop(exc)
        if header.completion_id in self._retired:
            del self._retired[header.completion_id]
            return []
        return self._drop(ProtocolError(
            DeviceControlResponse.PDU, "CompletionId",
            f"I/O completion {header.completion_id} before the handshake",
        ))

    # -- helpers -------------------------------------------------------------------
    def _announce(self) -> None:
        self._outbox.append(
            ServerAnnounceRequest(
                client_id=self._client_id, version_minor=self._version_minor
            ).encode()
        )
        self._phase = RdpdrPhase.WAIT_ANNOUNCE_REPLY

    def _queue_logged_on(self) -> None:
        general = self._client_caps.general if self._client_caps else None
        if general is None or not general.extended_pdu & ExtendedPdu.RDPDR_USER_LOGGEDON_PDU:
            return
        self._logged_on_sent = True
        self._outbox.append(ServerUserLoggedOn().encode())

    def _allocate_completion_id(self) -> int:
        while True:
            cid = self._next_completion
            self._next_completion = (cid + 1) & 0xFFFFFFFF
            if cid not in self._pending and cid not in self._retired:
                return cid

    def _fail(self, completion_id: int, reason: str, *, malformed: bool = False) -> IoctlFailed:
        pending = self._pending.pop(completion_id)
        if not malformed:  # a late reply may still come; a malformed one was the reply
            self._retired[completion_id] = None
            while len(self._retired) > RETIRED_COMPLETION_IDS:
                self._retired.popitem(last=False)
        return IoctlFailed(completion_id, pending.device_id, reason, malformed)

    def _fail_all(self, reason: str) -> list[IoctlFailed]:
        return [self._fail(cid, reason) for cid in list(self._pending)]


_Handler = Callable[[RdpdrServer, bytes], list[RdpdrEvent]]

#: (phase, PacketId) -> handler: every transition of the machine.
_TRANSITIONS: Final[dict[tuple[RdpdrPhase, PacketId], _Handler]] = {
    (RdpdrPhase.WAIT_ANNOUNCE_REPLY, PacketId.PAKID_CORE_CLIENTID_CONFIRM): (
        RdpdrServer._on_announce_reply
    ),
    **{
        (phase, PacketId.PAKID_CORE_DEVICE_IOCOMPLETION): RdpdrServer._on_stale_completion
        for phase in (
            RdpdrPhase.WAIT_ANNOUNCE_REPLY,
            RdpdrPhase.WAIT_CLIENT_NAME,
            RdpdrPhase.WAIT_CLIENT_CAPABILITY,
        )
    },
    (RdpdrPhase.WAIT_CLIENT_NAME, PacketId.PAKID_CORE_CLIENT_NAME): RdpdrServer._on_client_name,
    (RdpdrPhase.WAIT_CLIENT_CAPABILITY, PacketId.PAKID_CORE_CLIENT_CAPABILITY): (
        RdpdrServer._on_client_capability
    ),
    (RdpdrPhase.READY, PacketId.PAKID_CORE_DEVICELIST_ANNOUNCE): RdpdrServer._on_device_announce,
    (RdpdrPhase.READY, PacketId.PAKID_CORE_DEVICELIST_REMOVE): RdpdrServer._on_device_remove,
    (RdpdrPhase.READY, PacketId.PAKID_CORE_DEVICE_IOCOMPLETION): RdpdrServer._on_io_completion,
}
