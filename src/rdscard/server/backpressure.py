"""Bounded output per connection: a client that stops reading cannot fill the server's memory.

Every reply a client provokes (a channel message, a screen update, a
redirected smart card call) is queued in its transport until the client
reads it. :class:`OutputGuard` watches that queue after each write: past
``[server] output_pause`` bytes it stops reading the connection's input
(nothing more is provoked; TCP flow control then holds the client back),
and it reads again once the queue is down to half of that; past
``[server] output_limit`` bytes (output that needs no input, such as
desktop updates or smart card traffic from the session's programs) it
drops the connection.

Under TLS the queue is in two places: the TLS layer's (records not yet
handed to the socket) and the socket transport's; both are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

#: Seconds between looks at a paused connection's queue.
POLL_INTERVAL = 0.05


class OutputGuard:
    """Pauses reading, then drops, one connection whose queued output grows too large."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        raw_transport: asyncio.BaseTransport | None,
        *,
        pause_at: int,
        drop_at: int,
        on_drop: Callable[[int], None],
        on_pause: Callable[[int], None] | None = None,
    ) -> None:
        self.writer = writer
        self.raw_transport = raw_transport
        self.pause_at = pause_at
        self.resume_at = pause_at // 2
        self.drop_at = drop_at
        self.on_drop = on_drop
        self.on_pause = on_pause
        self.paused = False
        self.dropped = False
        #: The largest queue seen (bytes), for the log and the tests.
        self.peak = 0
        self._timer: asyncio.TimerHandle | None = None

    def buffered(self) -> int:
        """Bytes written and not yet taken by the socket."""
        transport = self.writer.transport
        size = _size(transport)
        raw = self.raw_transport
        if raw is not None and raw is not transport:
            size += _size(raw)
        return size

    def check(self) -> bool:
        """Look at the queue after a write; False once the connection is dropped."""
        if self.dropped:
            return False
        size = self.buffered()
        self.peak = max(self.peak, size)
        if size > self.drop_at:
            self._drop(size)
            return False
        if size > self.pause_at:
            if not self.paused and self.on_pause is not None:
                self.on_pause(size)
            self._pause()
        elif self.paused and size <= self.resume_at:
            self._resume()
        return True

    def stop(self) -> None:
        """The connection is over: no more polling."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _pause(self) -> None:
        # Again on every look: the stream reader resumes a transport it paused itself.
        _call(self.writer.transport, "pause_reading")
        if not self.paused:
            self.paused = True
            self._schedule()

    def _resume(self) -> None:
        self.paused = False
        self.stop()
        if not self.writer.transport.is_closing():
            _call(self.writer.transport, "resume_reading")

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(POLL_INTERVAL, self._poll)

    def _poll(self) -> None:
        self._timer = None
        if self.writer.transport.is_closing() and not self.buffered():
            self.paused = False
            return
        if self.check() and self.paused:
            self._pause()
            if self._timer is None:
                self._schedule()

    def _drop(self, size: int) -> None:
        self.dropped = True
        self.paused = False
        self.stop()
        self.writer.transport.abort()
        self.on_drop(size)


# Duck typing: uvloop's transports are not registered as asyncio's transport classes.
def _size(transport: asyncio.BaseTransport) -> int:
    get = getattr(transport, "get_write_buffer_size", None)
    if get is None:
        return 0
    try:
        return int(get())
    except (RuntimeError, NotImplementedError):
        return 0


def _call(transport: asyncio.BaseTransport, name: str) -> None:
    method = getattr(transport, name, None)
    if method is not None:
        with contextlib.suppress(RuntimeError):  # a transport closing meanwhile
            method()


__all__ = ["POLL_INTERVAL", "OutputGuard"]
