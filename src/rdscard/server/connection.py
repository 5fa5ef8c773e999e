"""One RDP connection: the asyncio adapter around :class:`RdpAcceptor`.

Reads bytes, feeds the acceptor, writes what it returns, performs the TLS
upgrade it asks for, and drives the session's screen from its events. A
protocol error or any other failure ends this connection only, with a log
line naming the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from rdscard.errors import ProtocolError
from rdscard.pdu.share import ErrorInfo
from rdscard.pdu.x224 import FailureCode
from rdscard.protocol.acceptor import AcceptorSettings, RdpAcceptor
from rdscard.protocol.events import (
    AcceptorEvent,
    ChannelData,
    ClientConnected,
    ClientInfoReceived,
    ClientShutdown,
    CredSspReceived,
    InputReceived,
    NegotiationRefused,
    Phase,
    RefreshRequested,
    SessionActivated,
    StartTls,
)
from rdscard.screen import LogonScreenController
from rdscard.server.backpressure import OutputGuard
from rdscard.server.channels import ChannelContext, ChannelHandler
from rdscard.server.desktop_link import DesktopLink
from rdscard.server.sessions import SessionInfo, SessionLogger, SessionState
from rdscard.server.sign_in import SignIn
from rdscard.server.stream_protocol import DirectStreamProtocol, start_tls

if TYPE_CHECKING:
    from rdscard.server.listener import ServerContext

READ_SIZE = 65536
GRAPHICS_BATCH = 64 * 1024
#: Seconds a closing connection may take to send its last words before it is cut.
CLOSE_GRACE = 5.0
#: Bytes a client may send before any sign-in: the connection sequence, the rdpdr
#: handshake, the card's replies during the sign-in and keystrokes are far below it.
ANONYMOUS_INPUT_LIMIT = 8 << 20
PROTOCOL_NAMES = {0: "RDP", 1: "TLS", 2: "CredSSP", 4: "RDSTLS", 8: "CredSSP-EX", 16: "RDSAAD"}


def describe_protocols(mask: int) -> str:
    """``TLS+CredSSP`` style names of a requestedProtocols mask."""
    names = [name for bit, name in PROTOCOL_NAMES.items() if bit and mask & bit]
    return "+".join(names) if names else "RDP"


class Connection:
    """The state of one client connection."""

    def __init__(
        self,
        context: ServerContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: SessionInfo,
        protocol: DirectStreamProtocol | None = None,
        address: str = "",
    ) -> None:
        self.context = context
        #: The client's address as the limits count it (see ``admission.address_key``).
        self.address = address
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.info = info
        self.log = SessionLogger(logging.getLogger("rdscard.session"),
                                 {"session_id": info.session_id})
        display = context.config.display
        self.acceptor = RdpAcceptor(
            AcceptorSettings(
                default_width=display.width,
                default_height=display.height,
                session_id=info.session_id,
                nla=context.config.nla_active(),
                require_nla=context.config.nla_active() and context.config.nla.require,
            )
        )
        self.display: LogonScreenController | None = None
        self.channels: dict[str, ChannelHandler] = {}
        self.keyboard_layout = 0x409
        self.desktop = DesktopLink(self)
        self.sign_in = SignIn(self)
        self._background: set[asyncio.Task[None]] = set()
        #: While a received chunk is handled: the channel messages it provoked, written once.
        self._batch: list[bytes] | None = None
        #: Bytes received before a sign-in (-1 once signed in: no longer counted).
        self._anonymous_input = 0
        self._input_dropped = False
        self._screen_push: asyncio.Task[None] | None = None
        self._push_again = False
        self.accepted_at = time.perf_counter()
        server = context.config.server
        self.guard = OutputGuard(
            writer, protocol.raw_transport if protocol is not None else None,
            pause_at=server.output_pause, drop_at=server.output_limit, on_drop=self._dropped,
            on_pause=self._paused,
        )
        if server.logon_timeout > 0:
            self.sign_in.start_timer(server.logon_timeout)

    def write(self, data: bytes) -> None:
        """Queue bytes to the client; the output guard bounds what may wait (backpressure)."""
        # The transport itself: StreamWriter.write only calls it (one interpreted call less).
        self.writer.transport.write(data)
        self.guard.check()

    def _paused(self, size: int) -> None:
        self.context.warnings.info(
            f"output-pause {self.address}",
            "reading paused: %d bytes of output wait for the client (server.output_pause %d)",
            size, self.guard.pause_at, logger=self.log,
        )

    def _dropped(self, size: int) -> None:
        self.context.warnings.warning(
            f"output-limit {self.address}",
            "dropped the connection: %d bytes of output waited for a client that does not "
            "read (server.output_limit %d)", size, self.guard.drop_at, logger=self.log,
        )

    def signed_in_once(self) -> bool:
        """True once a sign-in on this connection has succeeded."""
        return self.sign_in.signed_in_once()

    def stop_timers(self) -> None:
        """The connection is over: no logon timeout, no output polling."""
        self.sign_in.stop_timer()
        self.guard.stop()

    async def run(self) -> None:
        """Serve the connection until either side ends it.

        Everything up to the active session (reads, the TLS handshake, the
        server's replies) must fit in ``server.connect_timeout`` from the
        accept.
        """
        server = self.context.config.server
        timeout, setting = server.connect_timeout, "server.connect_timeout"
        if 0 < server.logon_timeout < timeout:
            timeout, setting = server.logon_timeout, "server.logon_timeout"
        deadline = asyncio.get_running_loop().time() + timeout
        while self.acceptor.phase is not Phase.CLOSED:
            connecting = self.acceptor.phase is not Phase.ACTIVE
            try:
                async with asyncio.timeout_at(deadline if connecting else None):
                    if self._guarded():
                        more = await self._receive_guarded()
                    else:
                        data = await self.reader.read(READ_SIZE)
                        more = bool(data)
                        if data and self._over_input_limit(len(data)):
                            return
                        if data:
                            self.acceptor.receive(data)
                            await self.process_events()
                            await self.flush()
            except TimeoutError:
                if not connecting:
                    raise
                self.log.warning(
                    "closing: the client did not finish connecting within %.0f s "
                    "(stuck in %s; %s)", timeout, self.acceptor.phase.value, setting,
                )
                self.acceptor.disconnect(ErrorInfo.ERRINFO_LOGON_TIMEOUT)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await self.flush()
                return
            if not more:
                if self.guard.dropped or self._input_dropped:
                    return
                if not self._session_ended():  # else: ended in on_active_data
                    self.log.info("the client closed the connection (%s)",
                                  self.acceptor.phase.value)
                return
            if self.acceptor.phase is Phase.ACTIVE and self.protocol is not None:
                # From now on received bytes go to on_active_data as they arrive; anything
                # already buffered is read by this loop first.
                self.protocol.direct = self.on_active_data

    def _guarded(self) -> bool:
        """Received bytes still go to the guarded inbox (until the Client Info is decoded)."""
        protocol = self.protocol
        if protocol is None or protocol.guarded is None:
            return False
        if self.acceptor.guarding:
            return True
        protocol.end_guard()
        return False

    async def _receive_guarded(self) -> bool:
        """Hand the guarded bytes to the acceptor, zero them, react; False at the end."""
        assert self.protocol is not None
        size = await self.protocol.guarded_data()
        if not size:
            return False
        if self._over_input_limit(size):
            self.protocol.consumed()
            return False
        assert self.protocol.guarded is not None
        view = self.protocol.guarded.view()
        try:
            self.acceptor.receive(view)
        finally:
            view.release()
            self.protocol.consumed()
        await self.process_events()
        await self.flush()
        return True

    async def flush(self) -> None:
        """Write whatever the acceptor has queued."""
        out = self.acceptor.data_to_send()
        if out:
            self.write(out)
            await self.writer.drain()

    async def process_events(self) -> None:
        """React to what the acceptor reported."""
        screen_touched = False
        while events := self.acceptor.events():
            for event in events:
                if isinstance(event, StartTls):
                    await self.start_tls(event)
                elif isinstance(event, CredSspReceived):
                    await self.sign_in.on_credssp(event)
                else:
                    screen_touched |= self.on_event(event)
        # Only input, a refresh or the activation change the screen here (the
        # sign-in flow pushes its own changes): smart card traffic skips this.
        if screen_touched:
            await self.flush()
            await self.push_screen()

    def on_event(self, event: AcceptorEvent) -> bool:
        """React to one event (all but StartTls); True when the screen may have changed."""
        if isinstance(event, ChannelData):  # the most frequent event first
            self.on_channel_data(event)
            return False
        if isinstance(event, NegotiationRefused):
            self.log.warning(
                "refused: the client offers only %s security: %s (sent %s)",
                describe_protocols(event.requested_protocols), event.reason,
                FailureCode(event.failure_code).name)
        elif isinstance(event, ClientConnected):
            self.on_client_connected(event)
        elif isinstance(event, ClientInfoReceived):
            self.sign_in.on_client_info(event)
        elif isinstance(event, SessionActivated):
            self.on_activated(event)
            return True
        elif isinstance(event, InputReceived):
            if self.desktop.on_input(event.events):
                return False
            if self.display is not None:
                self.sign_in.on_screen_actions(self.display.on_inputs(event.events))
            return True
        elif isinstance(event, RefreshRequested):
            if self.desktop.refresh():
                return False
            if self.display is not None:
                self.display.refresh()
            return True
        elif isinstance(event, ClientShutdown):
            self.log.info("session ending: %s", event.reason)
            self.acceptor.disconnect(ErrorInfo.ERRINFO_LOGOFF_BY_USER)
        return False

    def on_active_data(self, data: bytes) -> None:
        """Bytes of the active session, handled in the event loop step that read them.

        What the run loop does with a chunk, without waking its task: the
        acceptor, the events, the reply. A failure is handed to the run loop
        (as the stream's exception), which ends the connection as usual.
        """
        try:
            if self._over_input_limit(len(data)):
                return
            self.acceptor.receive(data)
            screen_touched = False
            # Channel replies to this chunk go out in one write (a chunk may hold
            # hundreds of messages: one TLS record each would cost more than they do).
            self._batch = []
            try:
                for event in self.acceptor.events():
                    screen_touched |= self.on_event(event)  # no StartTls after the upgrade
            finally:
                batch, self._batch = self._batch, None
            out = self.acceptor.data_to_send()
            if batch:
                out = b"".join([*batch, out])
            if out and not self.writer.transport.is_closing():
                self.write(out)
            if screen_touched:
                self._schedule_screen_push()
            if self.acceptor.phase is not Phase.ACTIVE:
                # Ended (the run loop then returns) or re-activating (it reads again).
                self._leave_direct_lane()
                if self._session_ended():
                    self.reader.feed_eof()
        except Exception as exc:
            self._leave_direct_lane()
            self.reader.set_exception(exc)

    def _over_input_limit(self, size: int) -> bool:
        """Before a sign-in a client has little to say: past :data:`ANONYMOUS_INPUT_LIMIT`
        bytes it is flooding (each byte costs decryption and decoding), and is dropped."""
        if self._anonymous_input < 0:
            return False
        self._anonymous_input += size
        if self._anonymous_input <= ANONYMOUS_INPUT_LIMIT:
            return False
        if self.signed_in_once():
            self._anonymous_input = -1  # signed in: the account answers for what it sends
            return False
        self.context.warnings.warning(
            f"input-limit {self.address}", "dropped the connection: %d bytes received "
            "before any sign-in (the limit is %d)", self._anonymous_input,
            ANONYMOUS_INPUT_LIMIT, logger=self.log)
        self._input_dropped = True
        self._leave_direct_lane()
        self.writer.transport.abort()
        self.reader.feed_eof()
        return True

    def _session_ended(self) -> bool:
        return self.acceptor.phase is Phase.CLOSED

    def _leave_direct_lane(self) -> None:
        if self.protocol is not None:
            self.protocol.direct = None

    def _schedule_screen_push(self) -> None:
        """Push the screen from a task (it waits for the client); one push at a time."""
        if self._screen_push is not None:
            self._push_again = True
            return
        self._screen_push = self.run_in_background(self._push_screen_soon())

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in a task of the connection's own (see :meth:`stop_background`)."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _push_screen_soon(self) -> None:
        try:
            while True:
                self._push_again = False
                await self.push_screen()
                if not self._push_again:
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            self._screen_push = None

    async def send_graphics(self, pdus: list[bytes]) -> None:
        """Write fast-path updates in batches, waiting for the client between them.

        The PDUs usually come from the server's shared frame cache; writing
        them batch by batch keeps each connection's buffers small however
        large the screen is.
        """
        batch: list[bytes] = []
        size = 0
        for pdu in pdus:
            batch.append(pdu)
            size += len(pdu)
            if size >= GRAPHICS_BATCH:
                self.write(b"".join(batch))
                await self.writer.drain()
                batch, size = [], 0
        if batch:
            self.write(b"".join(batch))
            await self.writer.drain()

    async def start_tls(self, event: StartTls) -> None:
        """Send the Connection Confirm, then upgrade to TLS (MS-RDPBCGR 5.4.5.1)."""
        self.info.phase = Phase.TLS_HANDSHAKE.value
        self.log.info(
            "client offers %s%s; selected %s",
            describe_protocols(event.requested_protocols),
            f", cookie {event.cookie!r}" if event.cookie else "",
            describe_protocols(event.selected),
        )
        await self.flush()
        # The handshake is bounded by connect_timeout (asyncio's own default is 60 s); the
        # run loop's deadline, counted from the accept, usually ends it sooner.
        if self.protocol is not None:
            await start_tls(self.writer, self.protocol, self.context.ssl_context,
                            handshake_timeout=self.context.config.server.connect_timeout)
        else:
            await self.writer.start_tls(
                self.context.ssl_context,
                ssl_handshake_timeout=self.context.config.server.connect_timeout,
            )
        ssl_object = self.writer.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object is not None else "?"
        self.log.info("TLS established (%s)", version)
        self.acceptor.tls_established()
        self.info.phase = self.acceptor.phase.value

    def on_client_connected(self, event: ClientConnected) -> None:
        """Log and record what the client said about itself."""
        self.info.client_name = event.client_name
        self.info.client_build = event.client_build
        self.info.channels = event.channels
        self.info.desktop = f"{event.desktop_width}x{event.desktop_height}x{event.color_depth}"
        self.keyboard_layout = event.keyboard_layout
        self.info.phase = Phase.CHANNEL_CONNECTION.value
        self.log.info(
            "client %r build %d, desktop %s, channels requested: %s",
            event.client_name, event.client_build, self.info.desktop,
            ", ".join(event.channels) or "none",
        )

    def on_activated(self, event: SessionActivated) -> None:
        """The session is active: show the logon screen."""
        elapsed = (time.perf_counter() - self.accepted_at) * 1000
        self.info.phase = "active"
        self.info.state = SessionState.LOGON_SCREEN.value
        self.log.info("session active after %.0f ms (%dx%d, %d bpp)", elapsed,
                      event.desktop_width, event.desktop_height, event.color_depth)
        self.display = LogonScreenController(
            event.desktop_width, event.desktop_height, host_name=self.context.host_name,
            frames=self.context.frames,
        )
        self.open_channels()
        self.sign_in.start()

    def disconnect(self, why: str) -> None:
        """End the connection from the server side; a desktop goes on, disconnected."""
        self.close_with(ErrorInfo.ERRINFO_RPC_INITIATED_DISCONNECT, why)

    def close_with(self, error_info: ErrorInfo, why: str) -> None:
        """Tell the client why (Set Error Info PDU), then close the connection."""
        if self.writer.is_closing():
            return
        self.log.info("disconnecting the client: %s", why)
        self.acceptor.disconnect(error_info)
        self.write(self.acceptor.data_to_send())
        if self.guard.dropped:
            return
        self.writer.close()
        # A client that does not read would keep the transport open until its queue drains.
        transport = self.writer.transport
        asyncio.get_running_loop().call_later(CLOSE_GRACE, transport.abort)

    async def push_screen(self) -> None:
        """Send what changed on the screen now (called by background work)."""
        if self.display is None or self.acceptor.phase is not Phase.ACTIVE:
            return
        if self.desktop.showing:
            return
        if self.writer.is_closing():
            return
        await self.send_graphics(
            self.display.updates(
                self.acceptor.color_depth, max_request_size=self.acceptor.fastpath_max_request
            )
        )

    def open_channels(self) -> None:
        """Create the handlers of the joined channels this server serves."""
        for name, factory in self.context.channel_factories.items():
            if name in self.acceptor.channels:
                send = functools.partial(self.send_channel_message, name)
                self.channels[name] = factory(ChannelContext(self.info, self.log, send,
                                                             self.context.gateway))
                self.log.info("channel %s open", name)

    def send_channel_message(self, name: str, data: bytes) -> None:
        """Queue a channel message to the client (callable from any task of this session)."""
        if self.acceptor.phase is not Phase.ACTIVE or self.writer.transport.is_closing():
            return
        frames = self.acceptor.encode_channel_data(name, data)
        queued = self.acceptor.data_to_send()
        if self._batch is not None:
            self._batch.append(queued + frames if queued else frames)
            return
        self.write(queued + frames if queued else frames)

    def on_channel_data(self, event: ChannelData) -> None:
        """Hand a channel message to its handler; a failing handler closes only itself."""
        handler = self.channels.get(event.channel_name)
        if handler is None:
            self.log.debug("channel %s: %d bytes (no handler)", event.channel_name,
                           len(event.data))
            return
        try:
            handler.on_data(event.data)
        except ProtocolError as exc:
            self.log.warning("channel %s closed: protocol error from the client: %s",
                             event.channel_name, exc)
            del self.channels[event.channel_name]
            self.run_in_background(handler.close())

    async def close_channels(self) -> None:
        """Close every channel handler."""
        channels, self.channels = self.channels, {}
        for name, handler in channels.items():
            try:
                await handler.close()
            except Exception:
                self.log.exception("channel %s failed to close", name)

    async def stop_background(self) -> None:
        """Cancel the connection's own tasks (the sign-in flow, screen pushes) and wait for them.

        A sign-in must not outlive its connection: it would wait for a
        device that cannot come and log about a session that is gone.
        """
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Close the transport."""
        self.stop_timers()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        if not self.writer.transport.is_closing() or self.guard.buffered():
            self.writer.transport.abort()  # what is left is never going to be read


async def run_connection(
    context: ServerContext,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    protocol: DirectStreamProtocol | None = None,
    address: str = "",
) -> None:
    """Serve one accepted TCP connection as one session."""
    peer = writer.get_extra_info("peername")
    peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
    info = context.sessions.open(peer_text)
    connection = Connection(context, reader, writer, info, protocol, address or peer_text)
    context.connections.add(connection)
    context.sessions.attach_connection(info.session_id, connection.disconnect)
    connection.log.info("connection from %s", peer_text)
    try:
        await connection.run()
    except asyncio.CancelledError:
        connection.log.info("server shutting down: disconnecting the client")
        connection.acceptor.disconnect(ErrorInfo.ERRINFO_RPC_INITIATED_DISCONNECT)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await connection.flush()
        raise
    except ProtocolError as exc:
        context.warnings.log(logging.WARNING, f"protocol-error {connection.address}",
                             "closing: protocol error: %s", exc, logger=connection.log)
    except (ConnectionError, OSError) as exc:
        connection.log.info("connection lost: %s", exc)
    finally:
        context.connections.discard(connection)
        connection.stop_timers()
        if connection.sign_in.client_pin is not None:
            connection.sign_in.client_pin.wipe()
        await connection.stop_background()
        await connection.sign_in.close()
        await connection.desktop.connection_closed()
        await connection.close_channels()
        info = connection.info  # a reconnect may have taken an older session over
        context.sessions.detach_connection(info.session_id, connection.disconnect)
        if not info.has_desktop or info.state == SessionState.ENDED:
            context.sessions.close(info.session_id)
        await connection.close()
        connection.log.info("closed")
