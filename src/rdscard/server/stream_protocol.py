"""The RDP connection's asyncio protocol: a guarded inbox, streams, and a direct lane.

Three lanes for received bytes, one after the other:

- **Guarded**, from the accept until the Client Info PDU is decoded: bytes
  may hold the PIN (the Client Info password, in TLS plaintext). The
  protocol is an :class:`asyncio.BufferedProtocol`, so the transport (and
  under TLS the SSL layer, which decrypts straight into the buffer it is
  given) writes them into a :class:`~rdscard.secret.SecretBuffer`; no
  immutable ``bytes`` chunk ever holds them, and consumed bytes are zeroed.
  The connection reads them with :meth:`DirectStreamProtocol.guarded_data`.
- **Stream**, after :meth:`DirectStreamProtocol.end_guard`: the rest of the
  connection sequence is read from the :class:`asyncio.StreamReader`.
- **Direct**, once the session is active: most traffic is small static
  channel messages, each a redirected smart card reply a program is
  waiting for; received bytes go straight to ``direct`` in the event loop
  step that read them, instead of buffering them and waking the
  connection's task. Bytes buffered before the switch are still read from
  the stream first (the task that switches drains the buffer before it
  next waits), so order is kept.

uvloop and asyncio read into a buffered protocol only when it is not also
an :class:`asyncio.Protocol`, so the stream machinery
(:class:`asyncio.StreamReaderProtocol`) is held, not inherited.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from rdscard.secret import SecretBuffer

ConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, "DirectStreamProtocol"], Awaitable[None]
]
#: Bytes asked of the transport per read.
READ_SIZE = 65536
#: Guarded bytes waiting for the connection past which reading pauses.
GUARDED_HIGH_WATER = 1 << 20


class DirectStreamProtocol(asyncio.BufferedProtocol):
    """Received bytes go to the guarded inbox, the stream reader or ``direct``."""

    def __init__(self, reader: asyncio.StreamReader, connected: ConnectedCallback) -> None:
        self.reader = reader
        #: The stream side: it feeds ``reader`` and serves the StreamWriter.
        self.stream = asyncio.StreamReaderProtocol(reader, lambda r, w: connected(r, w, self))
        #: Takes every received chunk while set; the stream's reader gets nothing meanwhile.
        self.direct: Callable[[bytes], None] | None = None
        #: The TCP transport (under TLS, the one beneath the TLS layer).
        self.raw_transport: asyncio.BaseTransport | None = None
        #: The transport that delivers plaintext (the TLS one after the upgrade).
        self.transport: asyncio.BaseTransport | None = None
        #: Received bytes until :meth:`end_guard` (None afterwards).
        self.guarded: SecretBuffer | None = SecretBuffer(READ_SIZE)
        self.tls = False
        self._chunk = memoryview(bytearray(READ_SIZE))
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._lost = False
        self._lost_error: Exception | None = None
        self._paused = False

    # -- asyncio protocol interface ----------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw_transport = self.transport = transport
        self.stream.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost, self._lost_error = True, exc
        self._wake()
        self.stream.connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self.guarded is not None:
            self._eof = True  # told to the stream by end_guard, after the bytes before it
            self._wake()
        else:
            self.stream.eof_received()
        return not self.tls  # half-open TCP, as a stream; TLS closes

    def pause_writing(self) -> None:
        self.stream.pause_writing()

    def resume_writing(self) -> None:
        self.stream.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        guarded = self.guarded
        if guarded is not None:
            return guarded.free(min(max(sizehint, 4096), READ_SIZE))
        return self._chunk

    def buffer_updated(self, nbytes: int) -> None:
        guarded = self.guarded
        if guarded is not None:
            guarded.commit(nbytes)
            if len(guarded) >= GUARDED_HIGH_WATER and not self._paused:
                self._pause(True)
            self._wake()
            return
        data = bytes(self._chunk[:nbytes])
        direct = self.direct
        if direct is not None:
            direct(data)
        else:
            self.stream.data_received(data)

    # -- the connection's side -------------------------------------------------------
    def tls_started(self, transport: asyncio.BaseTransport) -> None:
        """The TLS upgrade is done: plaintext now comes from ``transport``."""
        self.transport = transport
        self.tls = True

    async def guarded_data(self) -> int:
        """Wait for guarded bytes: how many there are, 0 at the end of the stream.

        Raises the error that ended the connection, as a stream read would.
        """
        while True:
            guarded = self.guarded
            if guarded is None:
                raise RuntimeError("the guarded lane is over: read the stream")
            if len(guarded):
                return len(guarded)
            if self._lost_error is not None:
                raise self._lost_error
            if self._eof or self._lost:
                return 0
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def consumed(self) -> None:
        """The connection handed every guarded byte on: zero them."""
        if self.guarded is not None:
            self.guarded.consume(len(self.guarded))
        if self._paused:
            self._pause(False)

    def end_guard(self) -> None:
        """What follows goes to the stream (bytes still guarded are moved there first)."""
        guarded, self.guarded = self.guarded, None
        if guarded is None:
            return
        if len(guarded) and not self._lost:
            self.stream.data_received(bytes(guarded.view()))
        guarded.wipe()
        if self._paused:
            self._pause(False)
        if self._eof and not self._lost:
            self.stream.eof_received()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _pause(self, pause: bool) -> None:
        transport = self.transport
        if not isinstance(transport, asyncio.ReadTransport) or transport.is_closing():
            return
        self._paused = pause
        if pause:
            transport.pause_reading()
        else:
            transport.resume_reading()


async def start_tls(
    writer: asyncio.StreamWriter, protocol: DirectStreamProtocol, context: ssl.SSLContext,
    *, handshake_timeout: float,
) -> None:
    """:meth:`asyncio.StreamWriter.start_tls` with ``protocol`` as the TLS layer's reader.

    The stream writer would hand the TLS layer its own stream protocol,
    which reads into new ``bytes`` chunks; this hands it ``protocol``,
    which reads into its guarded buffer, then points the writer at the TLS
    transport the way ``StreamWriter.start_tls`` does.
    """
    await writer.drain()
    loop = asyncio.get_running_loop()
    transport = await loop.start_tls(writer.transport, protocol, context, server_side=True,
                                     ssl_handshake_timeout=handshake_timeout)
    if transport is None:
        raise ConnectionError("the connection closed during the TLS handshake")
    writer._transport = transport  # type: ignore[attr-defined]  # as StreamWriter.start_tls
    protocol.stream._replace_writer(writer)  # type: ignore[attr-defined]
    protocol.tls_started(transport)


async def start_direct_server(
    connected: ConnectedCallback, host: str, port: int, *, limit: int
) -> asyncio.Server:
    """``asyncio.start_server`` with :class:`DirectStreamProtocol` connections."""
    loop = asyncio.get_running_loop()

    def factory() -> DirectStreamProtocol:
        return DirectStreamProtocol(asyncio.StreamReader(limit=limit), connected)

    return await loop.create_server(factory, host, port, reuse_address=True)


__all__ = ["DirectStreamProtocol", "start_direct_server", "start_tls"]
