"""A session's pcsc-lite service: what pcscd is to the programs of one session.

Unmodified PC/SC programs link ``libpcsclite.so.1``, which speaks pcsc-lite's
client wire protocol (versions 4.4 to 4.6, :mod:`rdscard.pdu.pcsclite`) to
the UNIX socket named by ``PCSCLITE_CSOCK_NAME``. :class:`PcscliteService`
serves that protocol for one session on top of a
:class:`~rdscard.redirect.backend.SmartCardBackend`; the socket adapter
(:mod:`rdscard.server.pcsc_socket`) feeds it bytes, one
:class:`~rdscard.redirect.pcsclite_connection.PcscliteConnection` per
accepted connection.

The service keeps pcscd's view of the session:

- 32-bit context and card handle ids (random, non-zero, unique in the
  session) mapped to the backend's opaque byte strings; a context belongs to
  the connection that established it, a card handle to its context;
- the reader state table, built from ``backend.readers()`` at each request
  (the client library computes SCardListReaders, SCardStatus and
  SCardGetStatusChange from it);
- the waiters of CMD_WAIT_READER_STATE_CHANGE, woken with one 8-byte
  message each when ``backend.wait_for_reader_change()`` reports a change,
  exactly as pcscd's event handler does (pcsc-lite eventhandler.c);
- the reader events counter of protocol 4.5, bumped when readers come or go;
- the session's limits: at most ``max_connections`` program connections and
  ``max_contexts`` contexts at once. Every context is one context on the
  client's own pcscd (through MS-RDPESC EstablishContext), and pcscd serves
  about 200 (PCSC_MAX_CONTEXT_THREADS): a session left unbounded could take
  them all and stop the card on the user's own computer. An
  SCardEstablishContext over the limit gets SCARD_E_NO_MEMORY here and is
  never forwarded; a context is given back when it is released, also when
  its program goes away. A backend that keeps released client contexts
  for later establishes (:mod:`rdscard.redirect.contexts`) stays within the
  same limit: its pool only grows by releases and it establishes a new
  client context only when the pool is empty.

Backend calls run in the task of the connection that asked, so a slow call
of one program never delays another program.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Final

from rdscard.pdu.pcsclite import (
    MAX_ATR_SIZE,
    MAX_READERNAME,
    PCSCLITE_MAX_READERS_CONTEXTS,
    ReaderState,
    encode_readers_state,
)
from rdscard.redirect.backend import ReaderInfo, SmartCardBackend
from rdscard.redirect.pcsclite_connection import PcscliteConnection, SendFunction

LOGGER_NAME: Final = "rdscard.redirect.pcsclite"
Logger = logging.Logger | logging.LoggerAdapter[Any]

#: Program connections one session may have open at once (pcscd's own limit is 200,
#: PCSC_MAX_CONTEXT_THREADS; libpcsclite opens one per context, SCardCancel one more).
MAX_CONNECTIONS: Final = 64
#: Contexts the programs of one session may hold at once, each one a context on the
#: client's pcscd: well under its 200 so the user's own computer keeps its card.
MAX_CONTEXTS: Final = 32
#: Pause after the backend reports a change that left the table as it was, doubling up to
#: MAX_IDLE_BACKOFF: a backend whose client is gone may return from every wait at once.
IDLE_BACKOFF: Final = 0.01
MAX_IDLE_BACKOFF: Final = 1.0
#: A wait that returns sooner than this without a change counts as spurious.
QUICK_RETURN: Final = 0.05
_ID_ATTEMPTS: Final = 64


def _random_id() -> int:
    # Positive int32 values: libpcsclite keeps ids in int32_t and in C longs.
    return secrets.randbits(31)


def reader_state(info: ReaderInfo) -> ReaderState:
    """One READER_STATE entry (pcsc-lite eventhandler.h) for ``info``."""
    return ReaderState(
        reader_name=info.name,
        event_counter=info.event_counter & 0xFFFFFFFF,
        reader_state=info.state & 0xFFFFFFFF,
        reader_sharing=max(-(2**31), min(info.sharing, 2**31 - 1)),
        card_atr=info.atr[:MAX_ATR_SIZE],
        card_protocol=info.protocol & 0xFFFFFFFF,
    )


def _fits(info: ReaderInfo) -> bool:
    """Whether ``info.name`` can be a readerName (NUL-terminated UTF-8 in 128 bytes)."""
    try:
        raw = info.name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(raw) < MAX_READERNAME and b"\0" not in raw


class PcscliteService:
    """The pcsc-lite service of one session, over ``backend``.

    ``random_id`` returns candidate ids for contexts and card handles (tests
    inject a deterministic one); zero and ids already in use are skipped.
    """

    def __init__(
        self,
        backend: SmartCardBackend,
        *,
        log: Logger | None = None,
        random_id: Callable[[], int] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_contexts: int = MAX_CONTEXTS,
    ) -> None:
        if max_connections < 1 or max_contexts < 1:
            raise ValueError("max_connections and max_contexts are at least 1")
        self.backend = backend
        self.log: Logger = log if log is not None else logging.getLogger(LOGGER_NAME)
        self.max_connections = max_connections
        self.max_contexts = max_contexts
        self._contexts = 0
        self._refused_contexts = 0
        self._random_id = random_id or _random_id
        self._connections: list[PcscliteConnection] = []
        self._ids: set[int] = set()
        self._waiters: list[PcscliteConnection] = []
        self._watcher: asyncio.Task[None] | None = None
        self._snapshot: tuple[ReaderInfo, ...] = ()
        self._reader_names: frozenset[str] = frozenset()
        self._reader_events = 1
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start following the backend's reader changes (idempotent; needs a running loop)."""
        if self._watcher is None and not self._closed:
            self._snapshot = tuple(self.backend.readers())
            self._reader_names = frozenset(r.name for r in self._snapshot)
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        """Stop following the backend and release what every connection still holds."""
        self._closed = True
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for connection in list(self._connections):
            await connection.release()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connections(self) -> tuple[PcscliteConnection, ...]:
        """The open connections, oldest first."""
        return tuple(self._connections)

    def connect(
        self, send: SendFunction, *, peer: str = "", on_end: Callable[[], None] | None = None
    ) -> PcscliteConnection:
        """A handler for a newly accepted connection; ``send`` writes bytes to its program.

        ``peer`` names the program in log lines (for example ``"uid 1000 pid 4242"``);
        ``on_end`` is called when the program broke the protocol and must be cut off.
        """
        if self._closed:
            raise RuntimeError("the pcsc-lite service is closed")
        self.start()
        connection = PcscliteConnection(self, send, peer=peer, on_end=on_end)
        self._connections.append(connection)
        return connection

    def forget(self, connection: PcscliteConnection) -> None:
        """Called by a connection once it has released everything."""
        self.unregister_waiter(connection)
        with contextlib.suppress(ValueError):
            self._connections.remove(connection)

    # -- ids -----------------------------------------------------------------------------
    def new_id(self) -> int:
        """A fresh non-zero 32-bit id, unique among this session's contexts and handles."""
        for _ in range(_ID_ATTEMPTS):
            value = self._random_id() & 0xFFFFFFFF
            if value and value not in self._ids:
                self._ids.add(value)
                return value
        raise RuntimeError("no free context or card handle id")

    def free_id(self, value: int) -> None:
        self._ids.discard(value)

    def find_context(self, h_context: int) -> PcscliteConnection | None:
        """The connection that owns context ``h_context``, across the whole session."""
        for connection in self._connections:
            if connection.owns_context(h_context):
                return connection
        return None

    # -- the context limit ---------------------------------------------------------------
    @property
    def context_count(self) -> int:
        """Contexts held (or being established) by the session's programs."""
        return self._contexts

    @property
    def refused_contexts(self) -> int:
        """SCardEstablishContext calls answered SCARD_E_NO_MEMORY for the limit so far."""
        return self._refused_contexts

    def take_context(self, peer: str) -> bool:
        """Reserve one context of the session's ``max_contexts``; False (logged) when full.

        The first refusal and every hundredth after it are warnings, the
        others debug lines: a program that retries in a loop does not flood
        the log.
        """
        if self._contexts < self.max_contexts:
            self._contexts += 1
            return True
        self._refused_contexts += 1
        self.log.log(
            logging.WARNING if self._refused_contexts % 100 == 1 else logging.DEBUG,
            "pcsc-lite: SCardEstablishContext from %s refused (SCARD_E_NO_MEMORY): the "
            "session's programs hold %d contexts, the limit ([redirection] max_contexts); "
            "%d refused so far",
            peer, self._contexts, self._refused_contexts,
        )
        return False

    def give_context(self) -> None:
        """A context reserved with :meth:`take_context` was released (or never made)."""
        if self._contexts > 0:
            self._contexts -= 1

    # -- the reader table ----------------------------------------------------------------
    def readers(self) -> list[ReaderInfo]:
        """The backend's readers that fit a READER_STATE entry, at most 16."""
        readers = [r for r in self.backend.readers() if _fits(r)]
        return readers[:PCSCLITE_MAX_READERS_CONTEXTS]

    def table(self) -> bytes:
        """The 16-entry READER_STATE table (2944 bytes), unused entries zeroed."""
        return encode_readers_state([reader_state(r) for r in self.readers()])

    @property
    def reader_events(self) -> int:
        """pcscd's ReaderEvents: starts at 1, bumped when a reader appears or goes away."""
        self._sync_reader_events()
        return self._reader_events

    def _sync_reader_events(self) -> None:
        names = frozenset(r.name for r in self.backend.readers())
        if names != self._reader_names:
            self._reader_names = names
            self._reader_events = self._reader_events + 1 if self._reader_events < 0x7FFF else 1

    # -- waiters (pcsc-lite eventhandler.c) ----------------------------------------------
    def register_waiter(self, connection: PcscliteConnection) -> None:
        if connection not in self._waiters:
            self._waiters.append(connection)

    def unregister_waiter(self, connection: PcscliteConnection) -> bool:
        """Remove ``connection`` from the waiters; False if it was not waiting (any more)."""
        try:
            self._waiters.remove(connection)
        except ValueError:
            return False
        return True

    def is_waiting(self, connection: PcscliteConnection) -> bool:
        return connection in self._waiters

    def signal_waiters(self) -> int:
        """Send {timeOut 0, rv 0} to every waiter once and forget them; the count woken."""
        waiters, self._waiters = self._waiters, []
        for connection in waiters:
            connection.signal(0)
        return len(waiters)

    async def _watch(self) -> None:
        backoff = IDLE_BACKOFF
        while True:
            # Compare before every wait: a change made while this task was not waiting
            # (during a pause below) is caught here rather than lost.
            current = tuple(self.backend.readers())
            if current != self._snapshot:
                backoff = IDLE_BACKOFF
                self._snapshot = current
                self._sync_reader_events()
                woken = self.signal_waiters()
                self.log.debug("reader table changed; woke %d waiting programs", woken)
            started = asyncio.get_running_loop().time()
            try:
                await self.backend.wait_for_reader_change()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing backend must not end the service
                self.log.warning("waiting for smart card reader changes failed: %s", exc)
                await asyncio.sleep(MAX_IDLE_BACKOFF)
                continue
            quick = asyncio.get_running_loop().time() - started < QUICK_RETURN
            if not quick:
                backoff = IDLE_BACKOFF
            elif tuple(self.backend.readers()) == self._snapshot:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_IDLE_BACKOFF)

    def describe(self) -> Sequence[str]:
        """One line per connection, for diagnostics."""
        return [c.describe() for c in self._connections]
