"""One program's pcsc-lite requests, answered one at a time and in order.

libpcsclite sends a request and reads its reply before the next one (a
waiting SCardGetStatusChange is answered later by a separate message, and
SCardCancel comes on a connection of its own), so a connection has at most
one request in flight. :class:`RequestSequencer` holds that discipline for
:class:`~rdscard.redirect.pcsclite_connection.PcscliteConnection`: bytes
are cut into requests, queued, and started one by one, either at once
without a task (the subclass's hot path, the redirected TRANSMIT, answered
from a callback) or in a task of their own. A protocol error, or a request
the subclass refuses, cuts the program off: no more requests, and the
socket adapter's ``on_end`` closes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from rdscard.errors import ProtocolError
from rdscard.pdu.pcsclite_framing import PcscRequest, PcscRequestReader

Logger = logging.Logger | logging.LoggerAdapter[Any]


class ConnectionClosingError(Exception):
    """The program broke the protocol; its connection ends (the reason goes to the log)."""


class RequestSequencer:
    """The request queue of one connection; subclasses answer the requests."""

    def __init__(self, log: Logger, peer: str, on_end: Callable[[], None] | None) -> None:
        self._log = log
        self.peer = peer or "a program"
        self._on_end = on_end
        self._requests = PcscRequestReader()
        self._queue: deque[PcscRequest] = deque()
        self._busy = False
        self._pumping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._idle_set = True
        self._tasks: set[asyncio.Task[None]] = set()
        self._ending = False
        self._closed = False

    # -- what subclasses provide ------------------------------------------------------
    def _start_at_once(self, request: PcscRequest) -> bool:
        """Start ``request`` without a task, calling :meth:`_request_done` when it ends.

        False: the request runs in a task through :meth:`_dispatch` instead.
        """
        return False

    async def _dispatch(self, request: PcscRequest) -> None:
        """Answer one request; ConnectionClosingError cuts the program off."""
        raise NotImplementedError

    # -- input ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> bool:
        """Take ``data`` from the program; False when the connection must now end.

        Complete requests are answered in order, one at a time; a partial
        request waits for more data. When the program breaks the protocol,
        ``on_end`` is called.
        """
        if self._closed or self._ending:
            return False
        try:
            self._queue.extend(self._requests.feed(data))
        except ProtocolError as exc:
            self._cut_off(f"bad request: {exc}")
            return False
        self._pump()
        return not self._ending

    async def receive(self, data: bytes) -> bool:
        """:meth:`feed`, then wait until every complete request is answered."""
        if not self.feed(data):
            return False
        await self._idle.wait()
        return not (self._ending or self._closed)

    def abort(self) -> None:
        """The server is closing: stop the request in flight (a task) and take no more."""
        self._ending = True
        self._queue.clear()
        for task in list(self._tasks):
            task.cancel()

    async def _settled(self) -> None:
        """Take no more requests and wait for the one in flight (its reply goes nowhere)."""
        self._ending = True
        self._queue.clear()
        await self._idle.wait()

    # -- the queue --------------------------------------------------------------------------
    def _pump(self) -> None:
        if self._pumping:
            return  # a request that ended at once, inside the loop below
        self._pumping = True
        try:
            while self._queue and not self._busy:
                if self._closed or self._ending:
                    self._queue.clear()
                    break
                request = self._queue.popleft()
                self._busy = True
                if self._idle_set:  # the Event's own methods are interpreted: skipped if no change
                    self._idle_set = False
                    self._idle.clear()
                if not self._start_at_once(request):
                    task = asyncio.get_running_loop().create_task(self._run(request))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            self._pumping = False
        if not self._busy and not self._idle_set:
            self._idle_set = True
            self._idle.set()

    def _request_done(self) -> None:
        self._busy = False
        self._pump()

    async def _run(self, request: PcscRequest) -> None:
        try:
            await self._dispatch(request)
        except ConnectionClosingError as exc:
            self._cut_off(str(exc))
        except Exception:  # a bug: this program's connection ends, the service stays up
            self._log.exception("pcsc-lite: request from %s failed", self.peer)
            self._cut_off("internal error")
        finally:
            self._request_done()

    def _cut_off(self, reason: str) -> None:
        """The program broke the protocol: no more requests, and the adapter closes it."""
        if self._ending:
            return
        self._ending = True
        self._queue.clear()
        self._log.warning("pcsc-lite: closing the connection of %s: %s", self.peer, reason)
        if self._on_end is not None:
            self._on_end()


__all__ = ["ConnectionClosingError", "RequestSequencer"]
