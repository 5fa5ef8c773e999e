"""The RDP connection's asyncio protocol: streams, plus a direct lane for the active session.

Until the session is active a connection is read as a stream (connection
sequence, TLS upgrade, timeouts). Once it is active, most traffic is small
static channel messages, each a redirected smart card reply a program is
waiting for; :class:`DirectStreamProtocol` then hands received bytes
straight to the connection's handler in the event loop step that read
them, instead of buffering them and waking the connection's task. Bytes
buffered before the switch are still read from the stream first (the task
that switches drains the buffer before it next waits), so order is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

ConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, "DirectStreamProtocol"], Awaitable[None]
]


class DirectStreamProtocol(asyncio.StreamReaderProtocol):
    """A stream protocol whose received bytes may go to ``direct`` instead of the reader."""

    def __init__(self, reader: asyncio.StreamReader, connected: ConnectedCallback) -> None:
        super().__init__(reader, lambda r, w: connected(r, w, self))
        #: Takes every received chunk while set; the stream's reader gets nothing meanwhile.
        self.direct: Callable[[bytes], None] | None = None
        #: The TCP transport (under TLS, the one beneath the TLS layer).
        self.raw_transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw_transport = transport
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        direct = self.direct
        if direct is not None:
            direct(data)
        else:
            super().data_received(data)


async def start_direct_server(
    connected: ConnectedCallback, host: str, port: int, *, limit: int
) -> asyncio.Server:
    """``asyncio.start_server`` with :class:`DirectStreamProtocol` connections."""
    loop = asyncio.get_running_loop()

    def factory() -> DirectStreamProtocol:
        return DirectStreamProtocol(asyncio.StreamReader(limit=limit), connected)

    return await loop.create_server(factory, host, port, reuse_address=True)


__all__ = ["DirectStreamProtocol", "start_direct_server"]
