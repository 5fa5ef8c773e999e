"""One program's connection to a session's pcsc-lite service (pcsc-lite winscard_svc.c).

libpcsclite opens one connection per SCardEstablishContext and sends one
request at a time, reading the reply before the next; SCardCancel opens a
connection of its own and sends only CANCEL. :class:`PcscliteConnection`
answers those requests with pcscd's reply layouts (pcsc-lite
winscard_msg.h) and pcscd's rules:

- a context belongs to the connection that established it and a card
  handle to its context; a card handle this connection does not own, a
  wrong struct size, an unknown command or an oversized buffer ends the
  connection, as pcscd does;
- CMD_WAIT_READER_STATE_CHANGE registers the connection as a waiter; the
  program then gets exactly one 8-byte {timeOut, rv} per registration: the
  wake-up, the cancel, or the reply to its CMD_STOP_WAITING_READER_STATE_CHANGE;
- TRANSMIT and CONTROL replies carry data only when rv is 0; a reply larger
  than the program's buffer becomes SCARD_E_INSUFFICIENT_BUFFER with the
  length it needs;
- when the connection ends, every card handle it owns is disconnected (reset
  if it held a transaction, so a verified PIN does not outlive its program)
  and every context released.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from rdscard.pdu.pcsclite import (
    MAX_BUFFER_SIZE,
    MAX_BUFFER_SIZE_EXTENDED,
    PCSCLITE_MAX_READERS_CONTEXTS,
    PROTOCOL_VERSION_MAJOR,
    PROTOCOL_VERSION_MINORS,
    BeginTransaction,
    Cancel,
    Command,
    Connect,
    Control,
    Disconnect,
    Disposition,
    EndTransaction,
    EstablishContext,
    GetReaderEvents,
    GetSetAttrib,
    ReadersStateSize,
    Reconnect,
    ReleaseContext,
    ScardError,
    Status,
    Transmit,
    Version,
    WaitReaderStateChange,
)
from rdscard.pdu.pcsclite_framing import PcscRequest, RequestStruct
from rdscard.redirect.backend import ScardError as BackendError
from rdscard.redirect.backend import StartsTransmit, TransmitOutcome
from rdscard.redirect.pcsclite_requests import ConnectionClosingError, RequestSequencer
from rdscard.redirect.pcsclite_rules import (
    DEFAULT_MINOR,
    FROM_THE_TABLE,
    MAX_CONTEXTS_PER_CONNECTION,
    MAX_HANDLES_PER_CONNECTION,
    SCOPES,
    SUCCESS,
    ConnectionContext,
    ConnectionHandle,
    connect_arguments,
    connect_reply,
    control_reply,
    get_attrib_reply,
)

if TYPE_CHECKING:
    from rdscard.redirect.pcsclite_service import PcscliteService

SendFunction = Callable[[bytes], None]
T = TypeVar("T")

class PcscliteConnection(RequestSequencer):
    """pcscd's side of one connection; created by :meth:`PcscliteService.connect`.

    Requests arrive through :meth:`feed` (or :meth:`receive`) and are
    answered one at a time (:class:`RequestSequencer`). A TRANSMIT on a
    backend that can start one (:class:`StartsTransmit`) is answered from
    the backend's callback, with no task; every other request runs in a
    task of its own.
    """

    def __init__(
        self,
        service: PcscliteService,
        send: SendFunction,
        *,
        peer: str = "",
        on_end: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(service.log, peer, on_end)
        self._service = service
        self._backend = service.backend
        self._starter = service.backend if isinstance(service.backend, StartsTransmit) else None
        self._send = send
        self._releasing = False
        self._in_flight: object | None = None  # the started transmit's token
        self.minor: int | None = None
        self._contexts: dict[int, ConnectionContext] = {}
        self._handles: dict[int, ConnectionHandle] = {}
        # Protocol 4.6: CMD_WAIT_READER_STATE_CHANGE is followed by the table requests;
        # a wake-up is held back until that table is sent so it cannot land in their place.
        self._hold_signal = False
        self._held_signal: int | None = None

    # -- state ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def context_ids(self) -> tuple[int, ...]:
        return tuple(self._contexts)

    @property
    def handle_ids(self) -> tuple[int, ...]:
        return tuple(self._handles)

    def owns_context(self, h_context: int) -> bool:
        return h_context in self._contexts

    def context_opaque(self, h_context: int) -> bytes:
        return self._contexts[h_context].opaque

    @property
    def waiting(self) -> bool:
        return self._service.is_waiting(self)

    def describe(self) -> str:
        minor = self.minor if self.minor is not None else "-"
        wait = ", waiting" if self.waiting else ""
        return (
            f"{self.peer}: protocol 4.{minor}, {len(self._contexts)} contexts, "
            f"{len(self._handles)} card handles{wait}"
        )

    def signal(self, rv: int) -> None:
        """Send the one {timeOut 0, rv} a waiting program reads (wake-up or cancel)."""
        if self._closed:
            return
        if self._hold_signal:
            self._held_signal = rv
            return
        self._write(WaitReaderStateChange(0, rv).encode())

    async def release(self) -> None:
        """The connection ended: disconnect its card handles, release its contexts.

        A request in flight ends first (its reply goes nowhere), as with pcscd.
        """
        if self._releasing:
            return
        self._releasing = True
        await self._settled()
        self._closed = True
        self._service.unregister_waiter(self)
        handles, self._handles = self._handles, {}
        contexts, self._contexts = self._contexts, {}
        for h_card, handle in handles.items():
            disposition = (
                Disposition.SCARD_RESET_CARD
                if handle.in_transaction
                else Disposition.SCARD_LEAVE_CARD
            )
            await self._quietly(self._backend.disconnect(handle.opaque, disposition))
            self._service.free_id(h_card)
        for h_context, context in contexts.items():
            await self._quietly(self._backend.release_context(context.opaque))
            self._service.free_id(h_context)
            self._service.give_context()
        self._service.forget(self)
        if handles or contexts:
            self._service.log.debug(
                "pcsc-lite: %s gone; released %d contexts and %d card handles",
                self.peer, len(contexts), len(handles),
            )

    # -- output ------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if not self._closed:
            self._send(data)

    def _write_table(self) -> None:
        self._write(self._service.table())
        if self._hold_signal:
            self._hold_signal = False
            held, self._held_signal = self._held_signal, None
            if held is not None:
                self._write(WaitReaderStateChange(0, held).encode())

    # -- backend calls ----------------------------------------------------------------------
    async def _call(self, call: Awaitable[T]) -> tuple[int, T | None]:
        """(rv, result) of a backend call; the pcsc-lite code of a failure as rv."""
        try:
            result = await call
        except BackendError as exc:
            return exc.code, None
        except Exception:  # a backend bug: the program gets an error, the service stays up
            self._service.log.exception("pcsc-lite: smart card backend call failed")
            return ScardError.SCARD_F_INTERNAL_ERROR, None
        return SUCCESS, result

    async def _quietly(self, call: Awaitable[object]) -> None:
        rv, _ = await self._call(call)
        if rv != SUCCESS:
            self._service.log.debug("pcsc-lite: cleanup call for %s: rv 0x%08X", self.peer, rv)

    def _handle(self, h_card: int) -> ConnectionHandle:
        handle = self._handles.get(h_card)
        if handle is None:
            raise ConnectionClosingError(f"card handle 0x{h_card:08X} is not this program's")
        return handle

    # -- dispatch -----------------------------------------------------------------------------
    def _start_at_once(self, request: PcscRequest) -> bool:
        if self._starter is not None and isinstance(request.message, Transmit):
            self._start_transmit(self._starter, request.message, request.payload)
            return True
        if request.command in FROM_THE_TABLE:
            # Answered from the service's own state: no task (OpenSC's SCardGetStatusChange
            # with a timeout of 0 is a wait and a stop, dozens per operation).
            self._service.log.debug("pcsc-lite: %s from %s", request.command.name, self.peer)
            self._answer_from_table(request)
            self._request_done()
            return True
        return False

    def _answer_from_table(self, request: PcscRequest) -> None:
        command = request.command
        if command is Command.CMD_GET_READERS_STATE:
            self._write_table()
        elif command is Command.CMD_WAIT_READER_STATE_CHANGE:
            self._wait()
        elif command is Command.CMD_STOP_WAITING_READER_STATE_CHANGE:
            self._stop_waiting()
        elif command is Command.CMD_GET_READER_EVENTS:
            self._write(GetReaderEvents(self._service.reader_events, SUCCESS).encode())
        elif command is Command.CMD_GET_READERS_STATE_SIZE:
            self._write(ReadersStateSize(PCSCLITE_MAX_READERS_CONTEXTS).encode())
        elif command is Command.CMD_GET_READERS_STATE_ARRAY:
            self._write_table()
        elif isinstance(request.message, Version):
            self._version(request.message)

    # -- requests in tasks ------------------------------------------------------------------
    async def _dispatch(self, request: PcscRequest) -> None:
        command = request.command
        message = request.message
        self._service.log.debug("pcsc-lite: %s from %s", command.name, self.peer)
        if isinstance(message, Transmit):  # the most frequent call first
            await self._transmit(message, request.payload)
        elif command in FROM_THE_TABLE:
            self._answer_from_table(request)
        elif isinstance(message, EstablishContext):
            await self._establish(message)
        elif isinstance(message, ReleaseContext):
            await self._release_context(message)
        elif isinstance(message, Cancel):
            await self._cancel(message)
        elif isinstance(message, Connect):
            await self._connect(message)
        elif isinstance(message, GetSetAttrib):
            await self._attrib(command, message)
        else:
            await self._card_call(message, request.payload)

    async def _card_call(self, message: RequestStruct | None, payload: bytes) -> None:
        if isinstance(message, Reconnect):
            await self._reconnect(message)
        elif isinstance(message, Disconnect):
            await self._disconnect(message)
        elif isinstance(message, BeginTransaction):
            await self._begin(message)
        elif isinstance(message, EndTransaction):
            await self._end(message)
        elif isinstance(message, Control):
            await self._control(message, payload)
        elif isinstance(message, Status):
            await self._status(message)
        else:  # the request reader only lets known commands through
            raise ConnectionClosingError(f"unexpected request {message!r}")

    # -- versions and waiting ------------------------------------------------------------------
    def _version(self, message: Version) -> None:
        if message.major == PROTOCOL_VERSION_MAJOR and message.minor in PROTOCOL_VERSION_MINORS:
            # Answer with the client's own version: it then uses exactly the commands it knows.
            self.minor = message.minor
            reply = Version(PROTOCOL_VERSION_MAJOR, message.minor, SUCCESS)
        else:
            # pcscd's answer to a mismatch; clients of pcsc-lite 2.4.1 and later retry with
            # the minor version offered here.
            self._service.log.info(
                "pcsc-lite: %s speaks protocol %d.%d; offering 4.%d",
                self.peer, message.major, message.minor, PROTOCOL_VERSION_MINORS[-1],
            )
            reply = Version(
                PROTOCOL_VERSION_MAJOR,
                PROTOCOL_VERSION_MINORS[-1],
                ScardError.SCARD_E_SERVICE_STOPPED,
            )
        self._write(reply.encode())

    def _wait(self) -> None:
        self._service.register_waiter(self)
        minor = self.minor if self.minor is not None else DEFAULT_MINOR
        if minor <= 5:
            self._write_table()
        else:
            self._hold_signal = True

    def _stop_waiting(self) -> None:
        self._hold_signal = False
        held, self._held_signal = self._held_signal, None
        if self._service.unregister_waiter(self):
            self._write(WaitReaderStateChange(0, SUCCESS).encode())
        elif held is not None:
            self._write(WaitReaderStateChange(0, held).encode())
        # Otherwise the wake-up or cancel already sent is the one message the program
        # reads for its stop; pcscd sends nothing more either.

    # -- contexts ----------------------------------------------------------------------------
    async def _establish(self, message: EstablishContext) -> None:
        if message.dw_scope not in SCOPES:  # pcscd's check (winscard.c SCardEstablishContext)
            rv_scope = ScardError.SCARD_E_INVALID_VALUE
            self._write(EstablishContext(message.dw_scope, 0, rv_scope).encode())
            return
        # Over either limit the call is answered here and never reaches the client.
        if (len(self._contexts) >= MAX_CONTEXTS_PER_CONNECTION
                or not self._service.take_context(self.peer)):
            rv_full = ScardError.SCARD_E_NO_MEMORY
            self._write(EstablishContext(message.dw_scope, 0, rv_full).encode())
            return
        rv, opaque = await self._call(self._backend.establish_context(message.dw_scope))
        h_context = 0
        if opaque is None:
            self._service.give_context()
        elif self._closed:
            await self._quietly(self._backend.release_context(opaque))
            self._service.give_context()
            return
        else:
            h_context = self._service.new_id()
            self._contexts[h_context] = ConnectionContext(opaque)
        self._write(EstablishContext(message.dw_scope, h_context, rv).encode())

    async def _release_context(self, message: ReleaseContext) -> None:
        context = self._contexts.pop(message.h_context, None)
        rv: int
        if context is None:
            rv = (
                ScardError.SCARD_E_INVALID_VALUE
                if self._service.find_context(message.h_context) is not None
                else ScardError.SCARD_E_INVALID_HANDLE
            )
            self._write(ReleaseContext(message.h_context, rv).encode())
            return
        for h_card in sorted(context.handles):
            handle = self._handles.pop(h_card, None)
            if handle is not None:
                await self._quietly(
                    self._backend.disconnect(handle.opaque, Disposition.SCARD_LEAVE_CARD)
                )
                self._service.free_id(h_card)
        rv, _ = await self._call(self._backend.release_context(context.opaque))
        self._service.free_id(message.h_context)
        self._service.give_context()
        self._write(ReleaseContext(message.h_context, rv).encode())

    async def _cancel(self, message: Cancel) -> None:
        target = self._service.find_context(message.h_context)
        if target is None:
            self._write(Cancel(message.h_context, ScardError.SCARD_E_INVALID_HANDLE).encode())
            return
        opaque = target.context_opaque(message.h_context)
        if self._service.unregister_waiter(target):
            target.signal(ScardError.SCARD_E_CANCELLED)
        await self._quietly(self._backend.cancel(opaque))
        self._write(Cancel(message.h_context, SUCCESS).encode())

    # -- card handles --------------------------------------------------------------------------
    async def _connect(self, message: Connect) -> None:
        context = self._contexts.get(message.h_context)
        rv: int
        if context is None:
            rv = (
                ScardError.SCARD_E_INVALID_VALUE
                if self._service.find_context(message.h_context) is not None
                else ScardError.SCARD_E_INVALID_HANDLE
            )
        elif len(self._handles) >= MAX_HANDLES_PER_CONNECTION:
            rv = ScardError.SCARD_E_NO_MEMORY
        elif (rv := connect_arguments(message)) != SUCCESS:
            pass  # pcscd refuses these before looking at the reader; so does the client's
        else:
            rv, result = await self._call(
                self._backend.connect(
                    context.opaque,
                    message.sz_reader,
                    message.dw_share_mode,
                    message.dw_preferred_protocols,
                )
            )
            if result is not None:
                opaque, protocol = result
                if self._closed or message.h_context not in self._contexts:
                    await self._quietly(
                        self._backend.disconnect(opaque, Disposition.SCARD_LEAVE_CARD)
                    )
                    return
                h_card = self._service.new_id()
                self._handles[h_card] = ConnectionHandle(message.h_context, opaque)
                context.handles.add(h_card)
                self._write(connect_reply(message, h_card, protocol, SUCCESS))
                return
        # pcscd reports the card's protocol when an exclusive connect finds the card in use
        # (it has set the protocol up by then) and 0 with the other failures, a reader held
        # exclusively included; libpcsclite passes it on to the program.
        active = self._reader_protocol(message.sz_reader) if (
            rv == ScardError.SCARD_E_SHARING_VIOLATION) else 0
        self._write(connect_reply(message, 0, active, rv))

    def _reader_protocol(self, reader: str) -> int:
        for info in self._service.readers():
            if info.name == reader and info.sharing >= 0:
                return info.protocol & 0xFFFFFFFF
        return 0

    async def _reconnect(self, message: Reconnect) -> None:
        handle = self._handle(message.h_card)
        rv, protocol = await self._call(
            self._backend.reconnect(
                handle.opaque,
                message.dw_share_mode,
                message.dw_preferred_protocols,
                message.dw_initialization,
            )
        )
        if rv == SUCCESS:
            handle.transactions = 0
        reply = Reconnect(
            message.h_card,
            message.dw_share_mode,
            message.dw_preferred_protocols,
            message.dw_initialization,
            (protocol or 0) & 0xFFFFFFFF,
            rv,
        )
        self._write(reply.encode())

    async def _disconnect(self, message: Disconnect) -> None:
        handle = self._handle(message.h_card)
        rv, _ = await self._call(self._backend.disconnect(handle.opaque, message.dw_disposition))
        if rv in (SUCCESS, ScardError.SCARD_E_INVALID_HANDLE):
            self._forget_handle(message.h_card)
        self._write(Disconnect(message.h_card, message.dw_disposition, rv).encode())

    def _forget_handle(self, h_card: int) -> None:
        handle = self._handles.pop(h_card, None)
        if handle is not None:
            context = self._contexts.get(handle.context)
            if context is not None:
                context.handles.discard(h_card)
            self._service.free_id(h_card)

    async def _begin(self, message: BeginTransaction) -> None:
        handle = self._handle(message.h_card)
        rv, _ = await self._call(self._backend.begin_transaction(handle.opaque))
        if rv == SUCCESS:
            handle.transactions += 1
        self._write(BeginTransaction(message.h_card, rv).encode())

    async def _end(self, message: EndTransaction) -> None:
        handle = self._handle(message.h_card)
        if not handle.in_transaction:
            # pcscd: ending a transaction this handle does not hold (winscard.c, RFUnlockSharing)
            # is SCARD_E_NOT_TRANSACTED, unless the card was reset or removed for the handle or
            # another one holds the card (SCARD_E_SHARING_VIOLATION). FreeRDP's client answers
            # success here, so the call is not forwarded: SCardStatus, which pcscd checks the
            # same way, asks the client for those cases.
            rv_none, _ = await self._call(self._backend.status(handle.opaque))
            if rv_none == SUCCESS:
                rv_none = ScardError.SCARD_E_NOT_TRANSACTED
            self._write(EndTransaction(message.h_card, message.dw_disposition, rv_none).encode())
            return
        rv, _ = await self._call(
            self._backend.end_transaction(handle.opaque, message.dw_disposition)
        )
        if rv == SUCCESS:
            handle.transactions -= 1
        self._write(EndTransaction(message.h_card, message.dw_disposition, rv).encode())

    async def _status(self, message: Status) -> None:
        handle = self._handle(message.h_card)
        rv, _ = await self._call(self._backend.status(handle.opaque))
        self._write(Status(message.h_card, rv).encode())

    async def _transmit(self, message: Transmit, apdu: bytes) -> None:
        handle = self._handle(message.h_card)
        rv, result = await self._call(self._backend.transmit(
            handle.opaque, message.io_send_pci_protocol, apdu, MAX_BUFFER_SIZE_EXTENDED
        ))
        self._transmit_reply(message, rv, result)

    def _start_transmit(self, starter: StartsTransmit, message: Transmit, apdu: bytes) -> None:
        """The hot path: the reply is written from the backend's callback."""
        try:
            handle = self._handle(message.h_card)
        except ConnectionClosingError as exc:
            self._cut_off(str(exc))
            self._request_done()
            return
        token = self._in_flight = object()  # a buggy backend calling back twice is ignored
        done = functools.partial(self._transmit_finished, message, token)
        try:
            # The whole response is asked for, as pcscd asks its driver (winscard_svc.c): a
            # program's buffer that is too small then gets SCARD_E_INSUFFICIENT_BUFFER with
            # the length it needs and the receive protocol, as from pcscd.
            starter.start_transmit(
                handle.opaque, message.io_send_pci_protocol, apdu, MAX_BUFFER_SIZE_EXTENDED,
                done,
            )
        except BackendError as failure:  # a name of its own: compiled, a name has one type
            done(failure)
        except Exception:  # a backend bug: the program gets an error, the service stays up
            self._service.log.exception("pcsc-lite: smart card backend call failed")
            done(BackendError(ScardError.SCARD_F_INTERNAL_ERROR))

    def _transmit_finished(
        self, message: Transmit, token: object, outcome: TransmitOutcome
    ) -> None:
        if self._in_flight is not token:
            return
        self._in_flight = None
        if isinstance(outcome, BackendError):
            self._transmit_reply(message, outcome.code, None)
        else:
            self._transmit_reply(message, SUCCESS, outcome)
        self._request_done()

    def _transmit_reply(self, message: Transmit, rv: int, result: tuple[int, bytes] | None) -> None:
        protocol, response = result if result is not None else (message.io_recv_pci_protocol, b"")
        length = len(response)
        if rv == SUCCESS and length > message.pcb_recv_length:
            rv = ScardError.SCARD_E_INSUFFICIENT_BUFFER
        # The reply's transmit_struct, packed directly: this runs for every APDU.
        reply = Transmit.LAYOUT.pack(
            message.h_card,
            message.io_send_pci_protocol,
            message.io_send_pci_length,
            message.cb_send_length,
            protocol & 0xFFFFFFFF,
            message.io_recv_pci_length,
            length,
            rv & 0xFFFFFFFF,
        )
        self._write(reply + response if rv == SUCCESS else reply)

    async def _control(self, message: Control, data: bytes) -> None:
        handle = self._handle(message.h_card)
        limit = min(message.cb_recv_length, MAX_BUFFER_SIZE_EXTENDED)
        rv, result = await self._call(
            self._backend.control(handle.opaque, message.dw_control_code, data, limit)
        )
        self._write(control_reply(message, rv, result or b""))

    async def _attrib(self, command: Command, message: GetSetAttrib) -> None:
        handle = self._handle(message.h_card)
        if message.cb_attr_len > MAX_BUFFER_SIZE:
            raise ConnectionClosingError(f"cbAttrLen {message.cb_attr_len} over {MAX_BUFFER_SIZE}")
        if command is Command.SCARD_SET_ATTRIB:
            rv, _ = await self._call(
                self._backend.set_attrib(handle.opaque, message.dw_attr_id, message.pb_attr)
            )
            self._write(
                GetSetAttrib(
                    message.h_card, message.dw_attr_id, message.pb_attr, message.cb_attr_len, rv
                ).encode()
            )
            return
        rv, value = await self._call(
            self._backend.get_attrib(handle.opaque, message.dw_attr_id, message.cb_attr_len)
        )
        self._write(get_attrib_reply(message, rv, value or b""))


__all__ = ["ConnectionClosingError", "PcscliteConnection", "SendFunction"]

