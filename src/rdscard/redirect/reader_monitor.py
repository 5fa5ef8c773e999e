"""The pcsc-lite reader table of a session's redirected cards, kept current over MS-RDPESC.

:class:`ReaderMonitor` is :class:`~rdscard.redirect.esc_backend.EscBackend`'s
reader table: a GetStatusChange loop (MS-RDPESC 3.1.4.18, 3.1.4.25) on a
context of its own (3.1.4.1, SYSTEM scope), with the client's reader list
(ListReaders, 3.1.4.8) and ``\\\\?PnP?\\Notification`` among its readers, so
blocking waits never share a context with the session's other calls:
FreeRDP serialises the calls of one context. Each reader's Windows state
(2.2.1.5 ReaderState_Common_Call) becomes pcsc-lite's (see
:mod:`~rdscard.redirect.translate`), with an event counter bumped at every
change, as pcscd's readerfactory.c bumps it.

The table's readerSharing is pcscd's count wherever the session has card
handles of its own (the backend records their share modes in
:attr:`ReaderMonitor.shares`): the client's count includes them, and its
pcscd does not report sharing changes to waiters. The monitor sends its
calls through its backend and learns from it whether the backend is closed
and whom to tell when a reader goes away (its lingering transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.constants import PNP_NOTIFICATION, ScardIoctl, ScardReaderState, ScardReturn
from rdscard.pdu.esc.context import ListReadersCall, ListReadersReturn
from rdscard.pdu.esc.status_change import (
    GetStatusChangeReturn,
    GetStatusChangeWCall,
    ReaderStateReturn,
    ReaderStateW,
)
from rdscard.pdu.ndr import RedirScardContext
from rdscard.redirect import translate
from rdscard.redirect.backend import ReaderInfo, ScardError
from rdscard.redirect.esc_ioctl import EscCall

log = logging.getLogger("rdscard.redirect")

INFINITE = 0xFFFFFFFF
MAX_READERS = 16
SHARE_EXCLUSIVE = 1
#: Seconds before the reader monitor starts again after the client failed it, doubling up to
#: MONITOR_RETRY_MAX while it keeps failing.
MONITOR_RETRY = 0.5
MONITOR_RETRY_MAX = 10.0


def multi_string(raw: bytes | None) -> list[str]:
    """The names of an MS-RDPESC multi-string (UTF-16, each ended by a NUL)."""
    if not raw:
        return []
    try:
        text = raw.decode("utf-16-le")
    except UnicodeDecodeError:
        raise ProtocolError("ListReaders_Return", "mszReaderNames", "invalid UTF-16") from None
    return [name for name in text.split("\0") if name]


class ReaderMonitor:
    """One client's readers as pcsc-lite's reader table, and the loop that keeps it current."""

    def __init__(
        self,
        call: EscCall,
        *,
        establish: Callable[[int], Awaitable[bytes]],
        release: Callable[[bytes], Awaitable[None]],
        closed: Callable[[], bool],
        forget_reader: Callable[[str], None],
    ) -> None:
        self._call = call
        self._establish = establish
        self._release = release
        self._closed = closed
        self._forget_reader = forget_reader
        #: The table: each reader's name and its pcsc-lite state.
        self.readers: dict[str, ReaderInfo] = {}
        #: The share mode of each of the session's card handles (token -> reader, mode):
        #: pcscd's readerSharing comes from these (the client's pcscd does not report
        #: sharing changes to waiters).
        self.shares: dict[bytes, tuple[str, int]] = {}
        self._windows_states: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._counter = 0
        self._task: asyncio.Task[None] | None = None
        self._context: RedirScardContext | None = None

    def start(self) -> None:
        """Start keeping the table current (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch_readers())

    async def stop(self) -> None:
        """Stop the loop and wait for it; the table is left as it is."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def wait_for_change(self) -> None:
        """Return at the next change of the table (at once once the backend is closed)."""
        if self._closed():
            return
        event = self._changed
        await event.wait()

    def table(self) -> list[ReaderInfo]:
        """The current pcsc-lite reader table.

        readerSharing is pcscd's count for the session's own card handles
        (-1 when one is exclusive, else how many there are), and what the
        client last reported when the session has none on that reader.
        """
        if not self.shares:
            return list(self.readers.values())
        return [replace(info, sharing=sharing) if (sharing := self._local_sharing(name))
                is not None else info for name, info in self.readers.items()]

    def _local_sharing(self, reader: str) -> int | None:
        """pcscd's readerSharing for the session's handles on ``reader``; None: no handles."""
        modes = [mode for name, mode in self.shares.values() if name == reader]
        if not modes:
            return None
        return -1 if SHARE_EXCLUSIVE in modes else len(modes)

    def notify(self) -> None:
        """Wake everyone waiting for a change of the table."""
        self._changed.set()
        self._changed = asyncio.Event()

    def card_present(self, reader: str) -> bool:
        """Whether the table has a card in ``reader``."""
        info = self.readers.get(reader)
        return info is not None and bool(info.state & translate.PCSC_PRESENT)

    def set_protocol(self, reader: str, protocol: int) -> None:
        """The protocol of the card a handle connected to in ``reader``."""
        info = self.readers.get(reader)
        if info is not None and info.protocol != protocol:
            self.readers[reader] = replace(info, protocol=protocol)

    def _next_counter(self) -> int:
        self._counter = (self._counter + 1) & 0xFFFF
        return self._counter

    async def _watch_readers(self) -> None:
        """Keep the reader table current, on a context of its own.

        When the client fails that context (its pcscd restarted: xfreerdp then
        answers SCARD_F_COMM_ERROR), the table empties and the monitor starts
        again on a fresh context after a pause, as programs on the client's
        computer find the readers again with a fresh context.
        """
        delay = MONITOR_RETRY
        while not self._closed():
            context: RedirScardContext | None = None
            try:
                context = RedirScardContext(await self._establish(2))  # SYSTEM
                self._context = context
                while not self._closed():
                    names = await self._list_readers(context)
                    self._sync_reader_names(names)
                    await self._wait_for_status_change(context, names)
                    delay = MONITOR_RETRY
            except asyncio.CancelledError:
                raise
            except ScardError as exc:
                log.info("smart card reader monitor: %s; again in %.1f s", exc, delay)
            except ProtocolError as error:  # a name of its own: compiled, a name has one type
                log.warning("smart card reader monitor: protocol error: %s; again in %.1f s",
                            error, delay)
            finally:
                self._forget_readers()
            if self._closed():
                return
            if context is not None:  # the client answered on it, so it still knows it
                await self._release(context.pb_context)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MONITOR_RETRY_MAX)

    def _forget_readers(self) -> None:
        if self.readers:
            for name in self.readers:
                self._forget_reader(name)
            self.readers.clear()
            self._windows_states.clear()
            self.notify()

    async def _list_readers(self, context: RedirScardContext) -> list[str]:
        call = ListReadersCall(context, 0, None, 0, INFINITE)
        try:
            reply = await self._call(ScardIoctl.SCARD_IOCTL_LISTREADERSW, call, ListReadersReturn)
        except ScardError as exc:
            if exc.code == ScardReturn.SCARD_E_NO_READERS_AVAILABLE:
                return []
            raise
        return multi_string(reply.msz)[:MAX_READERS]

    def _sync_reader_names(self, names: list[str]) -> None:
        changed = False
        for gone in set(self.readers) - set(names):
            del self.readers[gone]
            self._windows_states.pop(gone, None)
            self._forget_reader(gone)
            changed = True
        for name in names:
            if name not in self.readers:
                self.readers[name] = ReaderInfo(name, self._next_counter(), translate.PCSC_UNKNOWN)
                self._windows_states[name] = 0
                changed = True
        if changed:
            self.notify()

    async def _wait_for_status_change(self, context: RedirScardContext, names: list[str]) -> None:
        states = [ReaderStateW(PNP_NOTIFICATION, ReaderStateReturn(len(names) << 16, 0, 0))]
        states += [
            ReaderStateW(name, ReaderStateReturn(self._windows_states.get(name, 0), 0, 0))
            for name in names
        ]
        call = GetStatusChangeWCall(context, INFINITE, tuple(states))
        try:
            reply = await self._call(
                ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW, call, GetStatusChangeReturn, timeout=None
            )
        except ScardError as exc:
            if exc.code in (ScardReturn.SCARD_E_TIMEOUT, ScardReturn.SCARD_E_CANCELLED):
                return
            raise
        for name, state in zip(names, reply.rg_reader_states[1:], strict=False):
            self._update_reader(name, state)

    def _update_reader(self, name: str, state: ReaderStateReturn) -> None:
        if state.dw_event_state & ScardReaderState.SCARD_STATE_UNAVAILABLE:
            return
        self._windows_states[name] = state.dw_event_state & ~ScardReaderState.SCARD_STATE_CHANGED
        bits, sharing = translate.reader_state_from_windows(state.dw_event_state)
        old = self.readers.get(name)
        if old is None:
            return
        atr = state.rgb_atr[: state.cb_atr] if bits & translate.PCSC_PRESENT else b""
        protocol = old.protocol if atr and atr == old.atr else 0
        if self._local_sharing(name) is not None:
            sharing = old.sharing  # the client counts the session's own handles too
        new = ReaderInfo(name, old.event_counter, bits, sharing, atr, protocol)
        if new != old:
            self.readers[name] = replace(new, event_counter=self._next_counter())
            self.notify()


__all__ = [
    "INFINITE",
    "MAX_READERS",
    "MONITOR_RETRY",
    "MONITOR_RETRY_MAX",
    "ReaderMonitor",
    "multi_string",
]
