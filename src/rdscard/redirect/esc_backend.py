"""The session's cards as the RDP client has them: MS-RDPESC calls over rdpdr.

:class:`EscBackend` is the production :class:`SmartCardBackend`: every call
of a program in the session becomes an MS-RDPESC IOCTL (3.1.4) sent to
that session's client through the rdpdr channel (:mod:`~rdscard.redirect.esc_ioctl`).
Its pcsc-lite reader table is a GetStatusChange loop on a context of its
own (:mod:`~rdscard.redirect.reader_monitor`), so blocking waits never
share a context with other calls: FreeRDP serialises the calls of one
context. Contexts and card handles stay opaque: the client's bytes are
echoed exactly. The calls whose pcscd answer is known without the client
are answered here: see :mod:`~rdscard.redirect.lingering` (transactions),
:mod:`~rdscard.redirect.contexts` (contexts) and :meth:`EscBackend.disconnect`;
the client's own calls then follow in order (:mod:`~rdscard.redirect.behind`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Callable, Sequence

from rdscard.pdu.esc.base import NdrMessage
from rdscard.pdu.esc.card import (
    ConnectReturn,
    ConnectWCall,
    HCardAndDispositionCall,
    ReconnectCall,
    ReconnectReturn,
    StatusCall,
    StatusReturn,
)
from rdscard.pdu.esc.constants import ScardIoctl, ScardReturn
from rdscard.pdu.esc.context import (
    ContextCall,
    EstablishContextCall,
    EstablishContextReturn,
    LongReturn,
)
from rdscard.pdu.esc.io import (
    ControlCall,
    ControlReturn,
    GetAttribCall,
    GetAttribReturn,
    SetAttribCall,
    TransmitReturn,
)
from rdscard.pdu.esc.transmit_wire import encode_transmit_call, parse_transmit_return
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle
from rdscard.redirect import translate
from rdscard.redirect.backend import CardStatus, ReaderInfo, ScardError, TransmitOutcome
from rdscard.redirect.behind import Behind
from rdscard.redirect.contexts import POOL_SIZE, STALE_CONTEXT, ClientContexts
from rdscard.redirect.esc_ioctl import (
    IoctlChannel,
    IoctlOutcome,
    Reply,
    decode_reply,
    transmit_result,
)
from rdscard.redirect.lingering import LINGER, CardLocks, is_reader_attribute
from rdscard.redirect.reader_monitor import INFINITE, ReaderMonitor, multi_string

log = logging.getLogger("rdscard.redirect")

LEAVE_CARD = 0  # SCARD_LEAVE_CARD
#: SCARD_ATTR_DEVICE_FRIENDLY_NAME_A and SCARD_ATTR_DEVICE_SYSTEM_NAME_A: pcscd answers these
#: itself with the reader's name (winscard.c SCardGetAttrib), and so does this backend.
READER_NAME_ATTRIBUTES = frozenset({0x7FFF0003, 0x7FFF0004})
MAX_RECEIVE = 66560  # FreeRDP caps Transmit's receive length here

class EscBackend:
    """A :class:`SmartCardBackend` over one client's MS-RDPESC device."""

    def __init__(
        self,
        channel: IoctlChannel,
        *,
        call_timeout: float = 30.0,
        linger: float = LINGER,
        context_pool: int = POOL_SIZE,
        quick_disconnect: bool = True,
    ) -> None:
        self._channel = channel
        self._call_timeout = call_timeout
        self._handles: dict[bytes, tuple[RedirScardHandle, str]] = {}
        self._contexts = ClientContexts(context_pool)
        self._handle_contexts: dict[bytes, bytes] = {}  # card handle -> its context token
        self._quick_disconnect = quick_disconnect
        self._behind = Behind()  # calls answered already, sent to the client in order
        self._handle_ids = itertools.count(1)
        self._closed = False
        # Transactions as the client holds them, and what a held one lets the host answer.
        self._locks = CardLocks(linger, self._end_lingering)
        # The reader table, kept current on a client context of its own.
        self._monitor = ReaderMonitor(
            self._call,
            establish=self._establish_on_client,
            release=self._release_on_client,
            closed=lambda: self._closed,
            forget_reader=self._locks.forget_reader,
        )
        self._background: set[asyncio.Task[None]] = set()
        #: Calls answered here that pcscd would have answered the same (see lingering.py).
        self.local_answers = 0

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        """Start keeping the reader table current."""
        self._monitor.start()

    async def close(self) -> None:
        """The client is gone: no readers, wake every waiter, stop the monitor."""
        await self.release_pool()
        self._closed = True
        await self._behind.close()
        await self._monitor.stop()
        self._monitor.readers.clear()
        self._handles.clear()
        self._handle_contexts.clear()
        self._contexts.clear()
        self._monitor.shares.clear()
        self._locks.clear()
        self._monitor.notify()

    async def settled(self) -> None:
        """Return once every client call sent behind its answer has completed."""
        await self._behind.settled()

    async def release_pool(self) -> None:
        """Release the pooled client contexts on the client (no program will take them)."""
        await self._behind.settled()
        for client in self._contexts.drain():
            await self._release_on_client(client)

    # -- the reader table ----------------------------------------------------------
    def readers(self) -> Sequence[ReaderInfo]:
        """The current pcsc-lite reader table (see :meth:`ReaderMonitor.table`)."""
        return self._monitor.table()

    async def wait_for_reader_change(self) -> None:
        """Return at the next change of the reader table."""
        await self._monitor.wait_for_change()

    # -- calls -------------------------------------------------------------------
    async def _call(
        self,
        code: int,
        call: NdrMessage | bytes,
        reply_type: type[Reply],
        *,
        timeout: float | None = -1.0,
    ) -> Reply:
        """One IOCTL: ``call`` (a message, or one already encoded) and its decoded return."""
        if self._closed:
            raise ScardError(ScardReturn.SCARD_E_NO_SERVICE, "the client's smart card is gone")
        limit = self._call_timeout if timeout == -1.0 else timeout
        payload = call if isinstance(call, bytes) else call.encode()
        return decode_reply(reply_type, await self._channel.ioctl(code, payload, timeout=limit))

    # -- lingering transactions (lingering.py) -------------------------------------------
    def _card_present(self, reader: str) -> bool:
        return self._monitor.card_present(reader)

    def _holds(self, handle: bytes, reader: str) -> bool:
        """The client holds ``handle``'s lock, with no card event: a local answer is exact."""
        return self._locks.holds(handle) and self._card_present(reader)

    async def _settle(self, keep: bytes | None, reader: str | None = None) -> None:
        """Wait for the calls sent behind their answers (``reader``: those on that reader),
        then end every lingering transaction but ``keep``'s on the client, and wait for that.

        A call of handle ``keep`` waits only for the background calls on its reader.
        """
        if reader is None and keep is not None and keep in self._handles:
            reader = self._handles[keep][1]
        await self._behind.settled(reader)
        for other in self._locks.others_lingering(keep):
            if self._locks.stop_lingering(other):
                await self._send_end(other)

    async def _send_end(self, handle: bytes) -> None:
        entry = self._handles.get(handle)
        if entry is not None:
            await self._send_end_card(entry[0])

    async def _send_end_card(self, h_card: RedirScardHandle) -> None:
        try:
            await self._call(
                ScardIoctl.SCARD_IOCTL_ENDTRANSACTION, HCardAndDispositionCall(h_card, 0),
                LongReturn,
            )
        except ScardError as exc:  # the program was told already; pcscd would say the same
            log.debug("ending a lingering transaction: %s", exc)

    def _end_lingering(self, handle: bytes) -> None:
        if self._locks.stop_lingering(handle) and not self._closed:
            task = asyncio.get_running_loop().create_task(self._send_end(handle))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _noted(self, handle: bytes, exc: ScardError) -> ScardError:
        self._locks.card_event(handle, exc.code)
        return exc

    def _handle(self, handle: bytes) -> tuple[RedirScardHandle, str]:
        try:
            return self._handles[handle]
        except KeyError:
            raise ScardError(ScardReturn.SCARD_E_INVALID_HANDLE) from None

    async def establish_context(self, scope: int) -> bytes:
        """SCardEstablishContext: a pooled client context, else one established on the client.

        The caller has checked the scope (pcscd's only check). A pooled context
        answers every scope: pcsc-lite ignores the scope, and Windows uses it only
        for the reader database, which the session never asks a program's context.
        """
        if self._closed:
            raise ScardError(ScardReturn.SCARD_E_NO_SERVICE, "the client's smart card is gone")
        await self._behind.settled()  # a context on its way back to the pool lands first
        client = self._contexts.take_pooled()
        if client is not None:
            self.local_answers += 1
            return self._contexts.add(client, scope, reused=True)
        return self._contexts.add(await self._establish_on_client(scope), scope, reused=False)

    async def _establish_on_client(self, scope: int) -> bytes:
        reply = await self._call(
            ScardIoctl.SCARD_IOCTL_ESTABLISHCONTEXT, EstablishContextCall(scope),
            EstablishContextReturn,
        )
        return reply.context.pb_context

    async def _release_on_client(self, client: bytes) -> None:
        try:
            await self._call(
                ScardIoctl.SCARD_IOCTL_RELEASECONTEXT, ContextCall(RedirScardContext(client)),
                LongReturn,
            )
        except ScardError as exc:
            log.debug("releasing a client context: %s", exc)

    async def release_context(self, context: bytes) -> None:
        """SCardReleaseContext: answered at once when the client context goes to the pool.

        pcscd answers success for every valid context (winscard.c). The caller
        has disconnected the context's card handles; the context joins the pool
        once their disconnects have reached the client.
        """
        client, poolable = self._contexts.release(context)
        if poolable and self._contexts.size and not self._closed:
            self.local_answers += 1
            self._behind.run(functools.partial(self._return_context, client))
            return
        await self._settle(None)
        await self._call(
            ScardIoctl.SCARD_IOCTL_RELEASECONTEXT, ContextCall(RedirScardContext(client)),
            LongReturn,
        )

    async def _return_context(self, client: bytes) -> None:
        if self._closed or not self._contexts.give_back(client):
            await self._release_on_client(client)

    async def _fresh_context(self, context: bytes) -> bytes:
        """A pooled client context proved invalid: ``context`` gets a fresh one."""
        fresh = await self._establish_on_client(self._contexts.scope(context))
        stale = self._contexts.replace(context, fresh)
        log.info("a pooled smart card context was no longer valid on the client; replaced")
        # The client answered a call on the stale one, so it still knows it: let it go.
        self._behind.run(functools.partial(self._release_on_client, stale))
        return fresh

    async def cancel(self, context: bytes) -> None:
        """SCardCancel on the client."""
        client = self._contexts.client(context)
        await self._call(
            ScardIoctl.SCARD_IOCTL_CANCEL, ContextCall(RedirScardContext(client)), LongReturn
        )

    async def connect(
        self, context: bytes, reader: str, share_mode: int, preferred_protocols: int
    ) -> tuple[bytes, int]:
        """SCardConnect on the client; returns (our handle token, pcsc-lite protocol).

        On a context taken from the pool that the client no longer knows, the
        connect is made once more on a fresh context (see contexts.py).
        """
        client = self._contexts.client(context)
        await self._settle(None, reader)
        windows_protocols = translate.protocols_to_windows(preferred_protocols)
        call = ConnectWCall(reader, RedirScardContext(client), share_mode, windows_protocols)
        try:
            reply = await self._call(ScardIoctl.SCARD_IOCTL_CONNECTW, call, ConnectReturn)
        except ScardError as exc:
            if not (exc.code in STALE_CONTEXT and self._contexts.reused(context)):
                self._contexts.proved(context)
                raise
            client = await self._fresh_context(context)
            call = ConnectWCall(reader, RedirScardContext(client), share_mode, windows_protocols)
            reply = await self._call(ScardIoctl.SCARD_IOCTL_CONNECTW, call, ConnectReturn)
        self._contexts.proved(context)
        protocol = translate.protocols_from_windows(reply.dw_active_protocol)
        h_card = reply.h_card
        if not h_card.context.pb_context:
            # rdesktop 1.9 returns hCard with an empty Context (MS-RDPESC 2.2.1.2 has the
            # context the card was connected in) and reads later calls at fixed offsets
            # that assume the 4-byte context it issued: send that one.
            h_card = RedirScardHandle(RedirScardContext(client), h_card.pb_handle)
        token = next(self._handle_ids).to_bytes(4, "little")
        self._handles[token] = (h_card, reader)
        self._handle_contexts[token] = context
        self._monitor.shares[token] = (reader, share_mode)
        self._monitor.set_protocol(reader, protocol)
        return token, protocol

    async def reconnect(
        self, handle: bytes, share_mode: int, preferred_protocols: int, initialization: int
    ) -> int:
        """SCardReconnect on the client."""
        h_card, reader = self._handle(handle)
        await self._settle(None)
        call = ReconnectCall(
            h_card, share_mode, translate.protocols_to_windows(preferred_protocols),
            initialization,
        )
        try:
            reply = await self._call(ScardIoctl.SCARD_IOCTL_RECONNECT, call, ReconnectReturn)
        except ScardError as exc:
            raise self._noted(handle, exc) from None
        self._taint_if_transacted(handle)
        self._locks.reconnected(handle)
        if handle in self._monitor.shares:
            self._monitor.shares[handle] = (reader, share_mode)
        protocol = translate.protocols_from_windows(reply.dw_active_protocol)
        self._monitor.set_protocol(reader, protocol)
        return protocol

    async def disconnect(self, handle: bytes, disposition: int) -> None:
        """SCardDisconnect; SCARD_LEAVE_CARD answered at once, the client's call sent behind.

        pcscd answers success to SCardDisconnect(SCARD_LEAVE_CARD) of every
        handle it gave (winscard.c: a removed reader is ignored and a lock held
        by another handle does not stop it), so the program is answered here;
        the client's disconnect follows (the handle's lingering end first), and
        every later call of the session on that reader waits for it before it
        goes to the client. Other dispositions change the card: the client
        answers them.
        """
        h_card, reader = self._handle(handle)
        if disposition == LEAVE_CARD and self._quick_disconnect and not self._closed:
            end_first = self._locks.stop_lingering(handle)
            self._forget_handle(handle)
            self.local_answers += 1
            self._behind.run(functools.partial(self._disconnect_on_client, h_card, end_first),
                             reader)
            return
        await self._settle(None)
        h_card, _ = self._handle(handle)
        self._forget_handle(handle)
        await self._call(
            ScardIoctl.SCARD_IOCTL_DISCONNECT, HCardAndDispositionCall(h_card, disposition),
            LongReturn,
        )

    def _forget_handle(self, handle: bytes) -> None:
        self._taint_if_transacted(handle)
        del self._handles[handle]
        self._handle_contexts.pop(handle, None)
        self._monitor.shares.pop(handle, None)
        self._locks.disconnected(handle)

    def _taint_if_transacted(self, handle: bytes) -> None:
        """A handle leaving a transaction without its end keeps its client context from the
        pool: FreeRDP's client would still count the transaction on it (see contexts.py)."""
        context = self._handle_contexts.get(handle)
        if context is not None and self._locks.nested(handle):
            self._contexts.taint(context)

    async def _disconnect_on_client(self, h_card: RedirScardHandle, end_first: bool) -> None:
        if end_first:
            await self._send_end_card(h_card)
        try:
            await self._call(
                ScardIoctl.SCARD_IOCTL_DISCONNECT, HCardAndDispositionCall(h_card, LEAVE_CARD),
                LongReturn,
            )
        except ScardError as exc:  # the program was answered as pcscd answers
            log.debug("disconnecting a card handle on the client: %s", exc)

    async def begin_transaction(self, handle: bytes) -> None:
        """SCardBeginTransaction: answered here when the client still holds the lock.

        A nested begin is counted here too (pcsc-lite RFLockSharing counts it):
        FreeRDP's client would pass it on as a no-op and release the card at the
        first end (winpr PCSC_SCardBeginTransaction, isTransactionLocked).
        """
        _, reader = self._handle(handle)
        if self._locks.nested(handle) and self._holds(handle, reader):
            self._locks.began(handle)
            self.local_answers += 1
            return
        lingered = handle in self._locks.lingering
        if self._locks.resume(handle):
            if self._card_present(reader):
                self.local_answers += 1
                return
            self._locks.ended(handle)
        if lingered:
            await self._send_end(handle)  # the card went: the client decides, as pcscd would
        await self._settle(handle)
        h_card, _ = self._handle(handle)
        try:
            await self._call(
                ScardIoctl.SCARD_IOCTL_BEGINTRANSACTION, HCardAndDispositionCall(h_card, 0),
                LongReturn,
            )
        except ScardError as exc:
            # FreeRDP's client counts the failed begin as a transaction of the context
            # (isTransactionLocked) and would make the next begin a no-op: end it there.
            await self._send_end(handle)
            raise self._noted(handle, exc) from None
        self._locks.began(handle)

    async def end_transaction(self, handle: bytes, disposition: int) -> None:
        """SCardEndTransaction: the outermost SCARD_LEAVE_CARD one lingers (lingering.py)."""
        _, reader = self._handle(handle)
        if self._locks.nested(handle, inner=True) and self._holds(handle, reader):
            self._locks.ended(handle)  # an inner end: pcscd only counts it down
            self.local_answers += 1
            return
        if (disposition == 0 and self._locks.can_linger(handle)
                and self._card_present(reader)):
            self._locks.linger(handle)
            self.local_answers += 1
            return
        await self._settle(handle)
        h_card, _ = self._handle(handle)
        try:
            await self._call(
                ScardIoctl.SCARD_IOCTL_ENDTRANSACTION,
                HCardAndDispositionCall(h_card, disposition), LongReturn,
            )
        except ScardError as exc:
            raise self._noted(handle, exc) from None
        self._locks.ended(handle)

    async def transmit(
        self, handle: bytes, protocol: int, apdu: bytes, max_response: int
    ) -> tuple[int, bytes]:
        """SCardTransmit on the client; returns (pcsc-lite receive protocol, response)."""
        await self._settle(handle)
        call = self._transmit_call(handle, protocol, apdu, max_response)
        try:
            reply = await self._call(ScardIoctl.SCARD_IOCTL_TRANSMIT, call, TransmitReturn)
        except ScardError as exc:
            raise self._noted(handle, exc) from None
        return transmit_result(reply, protocol)

    def start_transmit(
        self,
        handle: bytes,
        protocol: int,
        apdu: bytes,
        max_response: int,
        done: Callable[[TransmitOutcome], None],
    ) -> None:
        """:meth:`transmit` without a task: ``done`` gets its result or error, once."""
        if self._closed:
            raise ScardError(ScardReturn.SCARD_E_NO_SERVICE, "the client's smart card is gone")
        if (self._behind.busy and self._behind.pending(self._handle(handle)[1])) or (
                self._locks.lingering and self._locks.others_lingering(handle)):
            # A call sent behind its answer is still on its way, or another handle's
            # transaction lingers: wait for it, or end it on the client first (a task).
            task = asyncio.get_running_loop().create_task(
                self._transmit_after_settling(handle, protocol, apdu, max_response, done))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        call = self._transmit_call(handle, protocol, apdu, max_response)

        def finish(output: IoctlOutcome) -> None:
            if isinstance(output, ScardError):
                done(self._noted(handle, output))
                return
            usual = parse_transmit_return(output)
            if usual is not None and usual[0] == ScardReturn.SCARD_S_SUCCESS:
                # The usual success in one step: what transmit_result gives without a
                # receive PCI, with no TransmitReturn between.
                done((translate.driver_protocol(protocol), usual[2] or b""))
                return
            try:
                reply = decode_reply(TransmitReturn, output)
            except ScardError as exc:
                done(self._noted(handle, exc))
                return
            done(transmit_result(reply, protocol))

        self._channel.start_ioctl(
            ScardIoctl.SCARD_IOCTL_TRANSMIT, call, timeout=self._call_timeout, done=finish
        )

    async def _transmit_after_settling(
        self, handle: bytes, protocol: int, apdu: bytes, max_response: int,
        done: Callable[[TransmitOutcome], None],
    ) -> None:
        try:
            await self._settle(handle)
            self.start_transmit(handle, protocol, apdu, max_response, done)
        except ScardError as exc:
            done(exc)

    def _transmit_call(self, handle: bytes, protocol: int, apdu: bytes, max_response: int) -> bytes:
        h_card, _ = self._handle(handle)
        return encode_transmit_call(
            h_card.context.pb_context,
            h_card.pb_handle,
            translate.protocols_to_windows(protocol),
            apdu,
            min(max_response, MAX_RECEIVE),
        )

    async def control(
        self, handle: bytes, control_code: int, data: bytes, max_response: int
    ) -> bytes:
        """SCardControl on the client (control code translated to Windows form)."""
        self._handle(handle)
        await self._settle(handle)
        h_card, _ = self._handle(handle)
        call = ControlCall(
            h_card, translate.control_code_to_windows(control_code), len(data), data or None,
            0, max_response,
        )
        try:
            reply = await self._call(ScardIoctl.SCARD_IOCTL_CONTROL, call, ControlReturn)
        except ScardError as exc:
            raise self._noted(handle, exc) from None
        return reply.pv_out_buffer or b""

    async def status(self, handle: bytes) -> CardStatus:
        """SCardStatus; from the table while the handle holds the client's lock (lingering.py)."""
        _, reader = self._handle(handle)
        if self._holds(handle, reader):
            info = self._monitor.readers[reader]
            self.local_answers += 1
            return CardStatus(reader, info.state, info.protocol, info.atr)
        await self._settle(handle)
        h_card, reader = self._handle(handle)
        call = StatusCall(h_card, 0, INFINITE, 32)
        try:
            reply = await self._call(ScardIoctl.SCARD_IOCTL_STATUSW, call, StatusReturn)
        except ScardError as exc:
            raise self._noted(handle, exc) from None
        names = multi_string(reply.msz_reader_names)
        return CardStatus(
            names[0] if names else reader,
            translate.card_state_from_windows(reply.dw_state),
            translate.protocols_from_windows(reply.dw_protocol),
            reply.pb_atr[: reply.cb_atr_len],
        )

    async def get_attrib(self, handle: bytes, attribute: int, max_length: int) -> bytes:
        """SCardGetAttrib on the client; the reader's names answered here, as pcscd does."""
        h_card, reader = self._handle(handle)
        if attribute in READER_NAME_ATTRIBUTES:
            # pcscd's own answer; FreeRDP's client gives SCARD_E_UNSUPPORTED_FEATURE for a
            # short buffer. The caller compares the length with the program's buffer.
            return reader.encode("utf-8") + b"\0"
        if self._holds(handle, reader):
            kept = self._locks.attribute(reader, attribute)
            if kept is not None:
                self.local_answers += 1
                return kept
        await self._settle(handle)
        h_card, reader = self._handle(handle)
        call = GetAttribCall(h_card, attribute, 0, max_length)
        try:
            reply = await self._call(ScardIoctl.SCARD_IOCTL_GETATTRIB, call, GetAttribReturn)
        except ScardError as exc:
            raise self._noted(handle, exc) from None
        value = reply.pb_attr or b""
        if is_reader_attribute(attribute):
            self._locks.keep_attribute(reader, attribute, value)
        return value

    async def set_attrib(self, handle: bytes, attribute: int, value: bytes) -> None:
        """SCardSetAttrib on the client."""
        self._handle(handle)
        await self._settle(handle)
        h_card, _ = self._handle(handle)
        call = SetAttribCall(h_card, attribute, len(value), value)
        await self._call(ScardIoctl.SCARD_IOCTL_SETATTRIB, call, LongReturn)
