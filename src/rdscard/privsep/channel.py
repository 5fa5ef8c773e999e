"""One end of the monitor IPC: datagrams with descriptors over a ``SOCK_SEQPACKET`` pair.

Either end sends requests (``await channel.request(message)``) and answers
the other's through its handler; replies carry the request's id. Datagrams
are read into one reusable buffer that is zeroed after each is decoded (a
PIN crosses this way once). A malformed datagram is dropped with a log line
and counted: the peer's bytes are untrusted. Descriptors arrive with
SCM_RIGHTS; any that come with a message nobody expects are closed.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from rdscard.errors import ProtocolError, RdscardError
from rdscard.privsep import ipc

log = logging.getLogger("rdscard.privsep")

MAX_FDS: Final = 4
#: Kinds at or above this are replies to a request of the receiving side.
FIRST_REPLY_KIND: Final = 40

Reply = tuple[ipc.Message, list[socket.socket]]
Handler = Callable[[ipc.Message, list[socket.socket]], Awaitable[Reply | None]]


class IpcClosedError(RdscardError):
    """The other process is gone."""


class IpcChannel:
    """Requests, replies and notifications over one end of a SEQPACKET pair."""

    def __init__(self, sock: socket.socket, handler: Handler, *, peer: str,
                 on_closed: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.handler = handler
        self.peer = peer
        self.on_closed = on_closed
        self.malformed = 0
        self.closed = False
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        # (datagram, descriptors, whether they are closed once sent)
        self._outbox: deque[tuple[bytearray, list[socket.socket], bool]] = deque()
        self._buffer = bytearray(ipc.MAX_MESSAGE + 1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start reading (call from the event loop that will own the channel)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    # -- sending --------------------------------------------------------------------
    async def request(self, message: ipc.Message,
                      fds: tuple[socket.socket, ...] = ()) -> Reply:
        """Send ``message`` and wait for its reply (a :class:`ipc.Failed` raises)."""
        if self.closed:
            raise IpcClosedError(f"the {self.peer} is gone")
        request_id = next(self._ids) & 0xFFFFFFFF or next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._send(message, request_id, list(fds), owned=False)
            reply = await future
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply[0], ipc.Failed):
            for sock in reply[1]:
                sock.close()
            raise RdscardError(reply[0].message)
        return reply

    def notify(self, message: ipc.Message) -> None:
        """Send ``message`` expecting no reply."""
        if not self.closed:
            self._send(message, 0, [], owned=False)

    def _send(self, message: ipc.Message, request_id: int, fds: list[socket.socket], *,
              owned: bool) -> None:
        data = ipc.encode(message, request_id)
        self._outbox.append((data, fds, owned))
        self._flush()

    def _flush(self) -> None:
        while self._outbox and not self.closed:
            data, fds, owned = self._outbox[0]
            numbers = array.array("i", [s.fileno() for s in fds])
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, numbers)] if fds else []
            try:
                self.sock.sendmsg([data], ancillary)
            except BlockingIOError:
                assert self._loop is not None
                self._loop.add_writer(self.sock.fileno(), self._writable)
                return
            except OSError as exc:
                self._close(f"cannot write: {exc}")
                return
            self._outbox.popleft()
            data[:] = bytes(len(data))  # a SignIn carries the PIN
            if owned:
                for sock in fds:
                    sock.close()

    def _writable(self) -> None:
        assert self._loop is not None
        self._loop.remove_writer(self.sock.fileno())
        self._flush()

    # -- receiving ------------------------------------------------------------------------
    def _readable(self) -> None:
        for _ in range(64):  # then let the loop run other work
            try:
                size, ancillary, flags, _addr = self.sock.recvmsg_into(
                    [self._buffer], socket.CMSG_SPACE(MAX_FDS * 4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._close(f"cannot read: {exc}")
                return
            fds = _received_fds(ancillary)
            if size == 0 and not fds:
                self._close("end of stream")
                return
            try:
                if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or size > ipc.MAX_MESSAGE:
                    raise ProtocolError(ipc.PDU, "length", "datagram or descriptors truncated")
                message, request_id = ipc.decode(memoryview(self._buffer)[:size])
            except ProtocolError as exc:
                for sock in fds:
                    sock.close()
                self.malformed += 1
                log.warning("dropped a malformed message from the %s (%d so far): %s",
                            self.peer, self.malformed, exc)
                continue
            finally:
                self._buffer[:size] = bytes(size)
            self._dispatch(message, request_id, fds)

    def _dispatch(self, message: ipc.Message, request_id: int,
                  fds: list[socket.socket]) -> None:
        if message.KIND >= FIRST_REPLY_KIND:
            future = self._pending.get(request_id)
            if future is None or future.done():
                for sock in fds:
                    sock.close()
                log.warning("dropped an unexpected %s from the %s", type(message).__name__,
                            self.peer)
                return
            future.set_result((message, fds))
            return
        task = asyncio.get_running_loop().create_task(self._answer(message, request_id, fds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: ipc.Message, request_id: int,
                      fds: list[socket.socket]) -> None:
        reply: Reply | None
        try:
            reply = await self.handler(message, fds)
        except RdscardError as exc:
            reply = ipc.Failed(str(exc)), []
        except Exception:
            log.exception("handling %s from the %s failed", type(message).__name__, self.peer)
            reply = ipc.Failed("internal error: see the server log"), []
        finally:
            for sock in fds:
                sock.close()
        if reply is None or request_id == 0 or self.closed:
            for sock in reply[1] if reply is not None else []:
                sock.close()
            return
        answer, out_fds = reply
        try:
            self._send(answer, request_id, out_fds, owned=True)
        except ValueError as exc:  # a field out of the codec's bounds
            log.error("cannot answer %s to the %s: %s", type(message).__name__, self.peer, exc)
            for sock in out_fds:
                sock.close()
            self._send(ipc.Failed(f"the answer does not fit the IPC: {exc}"), request_id, [],
                       owned=True)

    # -- the end ------------------------------------------------------------------------------
    def _close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.debug("the channel to the %s closed: %s", self.peer, why)
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock.fileno())
                self._loop.remove_writer(self.sock.fileno())
        for future in self._pending.values():
            if not future.done():
                future.set_exception(IpcClosedError(f"the {self.peer} is gone ({why})"))
        for data, fds, owned in self._outbox:
            data[:] = bytes(len(data))
            for sock in fds if owned else []:
                sock.close()
        self._outbox.clear()
        if self.on_closed is not None:
            self.on_closed()

    def close(self) -> None:
        """Stop and close the socket; pending requests fail with :class:`IpcClosedError`."""
        self._close("closed")
        for task in list(self._tasks):
            task.cancel()
        self.sock.close()


def _received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[socket.socket]:
    fds: list[socket.socket] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            numbers = array.array("i")
            numbers.frombytes(data[:len(data) - len(data) % numbers.itemsize])
            fds.extend(socket.socket(fileno=n) for n in numbers)
    return fds
