"""The rdpdr channel of one session, serving its smart card to the session.

Glue between three pieces: the sans-IO rdpdr server machine
(:class:`rdscard.protocol.rdpdr.RdpdrServer`, MS-RDPEFS), the MS-RDPESC
backend (:class:`EscBackend`) that turns PC/SC calls into IOCTLs, and the
session's pcsc-lite socket (:class:`PcscSocketServer` serving a
:class:`PcscliteService`). When the client announces its smart card device
the socket appears and ``PCSCLITE_CSOCK_NAME`` joins the session's
environment; when the device, the channel or the connection goes away every
pending call fails at once and the socket is removed. A bad reply from the
client (MS-RDPEFS 2.2.1.5: an unknown CompletionId, an OutputBufferLength
that does not fit) is dropped with a log line and fails only its own call;
the channel ends past :data:`rdscard.protocol.rdpdr.MAX_BAD_COMPLETIONS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from rdscard.config import RedirectionConfig
from rdscard.errors import RdscardError
from rdscard.pdu.esc.constants import ScardReturn
from rdscard.protocol import rdpdr
from rdscard.redirect.backend import ScardError
from rdscard.redirect.esc_backend import EscBackend
from rdscard.redirect.esc_ioctl import IoctlOutcome
from rdscard.redirect.pcsclite_service import PcscliteService
from rdscard.server.channels import ChannelContext, ChannelFactory, ChannelHandler
from rdscard.server.pcsc_socket import PcscSocketServer, session_directory
from rdscard.server.sessions import SessionInfo, SessionLogger

CHANNEL_NAME = "rdpdr"


class SmartCardChannel:
    """One session's rdpdr channel with smart card redirection."""

    def __init__(self, context: ChannelContext, config: RedirectionConfig) -> None:
        self.context = context
        self.config = config
        self.log = context.log
        self.machine = rdpdr.RdpdrServer(
            client_id=context.session.session_id, default_timeout=config.call_timeout
        )
        self._pending: dict[int, Callable[[IoctlOutcome], None]] = {}
        self.device_id: int | None = None
        self.backend: EscBackend | None = None
        self.service: PcscliteService | None = None
        self.socket: PcscSocketServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.device_ready = asyncio.Event()  # set once the backend exists
        # Armed at the earliest finite IOCTL deadline only: an idle channel never wakes.
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = math.inf
        self._send(self.machine.start())

    # -- plumbing ----------------------------------------------------------------
    def _send(self, messages: list[bytes]) -> None:
        for message in messages:
            self.context.send(message)

    def _flush(self) -> None:
        self._send(self.machine.data_to_send())

    def _spawn(self, coroutine: object) -> None:
        assert asyncio.iscoroutine(coroutine)
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _arm_expiry(self, deadline: float | None) -> None:
        """Fail the IOCTLs still unanswered at ``deadline`` (monotonic seconds), then re-arm."""
        if deadline is None or self._closed:
            return
        if self._expiry is not None:
            if self._expiry_at <= deadline:
                return
            self._expiry.cancel()
        self._expiry_at = deadline
        delay = max(deadline - time.monotonic(), 0.0)
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        self._on_events(self.machine.expire(time.monotonic()))
        self._arm_expiry(self.machine.next_deadline())

    # -- the channel -----------------------------------------------------------------
    def on_data(self, data: bytes) -> None:
        """A complete rdpdr message from the client."""
        events = self.machine.receive(data, time.monotonic())
        self._flush()
        self._on_events(events)

    def _on_events(self, events: Sequence[rdpdr.RdpdrEvent]) -> None:
        for event in events:
            if isinstance(event, rdpdr.IoctlCompleted):
                if event.io_status != 0:
                    self._complete(event.completion_id, ScardError(
                        ScardReturn.SCARD_F_COMM_ERROR,
                        f"the client failed the smart card call (IoStatus "
                        f"0x{event.io_status:08X})",
                    ))
                else:
                    self._complete(event.completion_id, event.output)
            elif isinstance(event, rdpdr.IoctlFailed):
                code = (ScardReturn.SCARD_F_COMM_ERROR if event.malformed
                        else ScardReturn.SCARD_E_TIMEOUT)
                self._complete(event.completion_id, ScardError(code, event.reason))
            elif isinstance(event, rdpdr.CompletionDropped):
                self.log.warning(
                    "rdpdr: dropped a bad reply from the client (%d on this channel; the "
                    "channel closes after %d): %s",
                    event.count, rdpdr.MAX_BAD_COMPLETIONS, event.error,
                )
            elif isinstance(event, rdpdr.ClientIdentified):
                self.log.info("rdpdr: client %r", event.name)
            elif isinstance(event, rdpdr.SmartCardDeviceAnnounced):
                self._on_smart_card(event.device_id, event.dos_name)
            elif isinstance(event, rdpdr.DeviceRemoved) and event.device_id == self.device_id:
                self.log.info("rdpdr: the client removed its smart card device")
                self._spawn(self._stop_redirection())

    def _on_smart_card(self, device_id: int, name: str) -> None:
        if self.device_id is not None or self._closed:
            return
        if not self.config.enabled:
            self.log.info("rdpdr: smart card device %r ignored: redirection is disabled "
                          "([redirection] enabled = false)", name)
            return
        self.device_id = device_id
        self.backend = EscBackend(self, call_timeout=self.config.call_timeout,
                                  context_pool=self.config.context_pool,
                                  quick_disconnect=self.config.quick_disconnect)
        self.backend.start()
        self.device_ready.set()
        self.service = PcscliteService(
            self.backend, log=self.log, max_contexts=self.config.max_contexts,
            max_connections=self.config.max_program_connections,
        )
        self._spawn(self._start_socket())

    async def _start_socket(self) -> None:
        """Serve the session's card socket (made by the privileged side when there is one)."""
        session = self.context.session
        service = self.service
        if service is None:
            return
        try:
            socket = await self._open_socket(session, service)
            if self.service is not service or self._closed or self.socket is not None:
                await self._close_socket(socket, session.session_id)
                return
            self.socket = socket
            await socket.start()
        except (OSError, RdscardError) as exc:
            self.log.error("cannot create the session's smart card socket in %s: %s "
                           "(check [redirection] socket_dir)", self.config.socket_dir, exc)
            return
        session.env.update(socket.env)
        self.log.info("smart card redirected: programs in the session use %s",
                      socket.env["PCSCLITE_CSOCK_NAME"])

    async def _open_socket(self, session: SessionInfo,
                           service: PcscliteService) -> PcscSocketServer:
        gateway = self.context.gateway
        if gateway is None:
            self.config.socket_dir.mkdir(parents=True, exist_ok=True)
            Path(self.config.socket_dir).chmod(0o755)
            directory = session_directory(self.config.socket_dir, session.session_id)
            return PcscSocketServer(service, directory, session.uid, session.gid)
        listener, path = await gateway.open_card_socket(session.session_id)
        return PcscSocketServer(service, path.parent, session.uid, session.gid,
                                listener=listener)

    async def _close_socket(self, socket: PcscSocketServer, session_id: int) -> None:
        await socket.close()
        if self.context.gateway is not None:
            await self.context.gateway.close_card_socket(session_id)

    async def move_to(self, session: SessionInfo, log: SessionLogger) -> None:
        """Serve the card at ``session``'s socket path: a reconnect took that session over.

        The session's programs keep their ``PCSCLITE_CSOCK_NAME``; the socket
        of the short-lived logon session is removed first.
        """
        previous = self.context.session.session_id
        self.context = replace(self.context, session=session, log=log)
        self.log = log
        socket, self.socket = self.socket, None
        if socket is None:
            return
        await self._close_socket(socket, previous)
        await self._start_socket()

    async def release_socket(self) -> None:
        """Stop serving the session's socket now (another connection takes the session over)."""
        socket, self.socket = self.socket, None
        service, self.service = self.service, None
        if socket is not None:
            await self._close_socket(socket, self.context.session.session_id)
        if service is not None:
            await service.close()
        if self.backend is not None:  # no program of this connection will take them
            await self.backend.release_pool()

    def hand_over(self, uid: int, gid: int) -> None:
        """The session now belongs to account ``uid``: its socket follows (0700, owned)."""
        if self.socket is not None:
            self.socket.set_owner(uid, gid)

    # -- IoctlChannel ------------------------------------------------------------------
    async def ioctl(self, code: int, payload: bytes, *, timeout: float | None) -> bytes:
        """Send one MS-RDPESC IOCTL to the client's smart card device."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.start_ioctl(code, payload, timeout=timeout, done=functools.partial(_settle, future))
        return await future

    def start_ioctl(
        self,
        code: int,
        payload: bytes,
        *,
        timeout: float | None,
        done: Callable[[IoctlOutcome], None],
    ) -> None:
        """Send one IOCTL; ``done`` gets its output or its error when it ends."""
        if self._closed or self.device_id is None:
            raise ScardError(ScardReturn.SCARD_E_NO_SERVICE, "no smart card device")
        now = time.monotonic()
        try:
            completion_id = self.machine.device_control(
                self.device_id, code, payload, now=now,
                timeout=math.inf if timeout is None else timeout,
            )
        except rdpdr.RdpdrStateError as exc:
            raise ScardError(ScardReturn.SCARD_E_NO_SERVICE, str(exc)) from None
        self._pending[completion_id] = done
        sent = self.context.session.smart_card_calls
        sent[code] = sent.get(code, 0) + 1
        if timeout is not None:
            self._arm_expiry(now + timeout)
        self._flush()

    def _complete(self, completion_id: int, outcome: IoctlOutcome) -> None:
        done = self._pending.pop(completion_id, None)
        if done is None:
            return
        try:
            done(outcome)
        except Exception:  # a bug in one caller must not end the channel for every call
            self.log.exception("smart card call completion failed")

    # -- teardown -------------------------------------------------------------------------
    async def _stop_redirection(self) -> None:
        self.device_id = None
        self._fail_pending()
        backend, self.backend = self.backend, None
        socket, self.socket = self.socket, None
        service, self.service = self.service, None
        if backend is not None:
            await backend.close()
        if socket is not None:
            self.context.session.env.pop("PCSCLITE_CSOCK_NAME", None)
            await self._close_socket(socket, self.context.session.session_id)
        if service is not None:
            await service.close()

    def _fail_pending(self) -> None:
        for completion_id in list(self._pending):
            self._complete(
                completion_id, ScardError(ScardReturn.SCARD_E_NO_SERVICE, "the client went away")
            )

    async def close(self) -> None:
        """The channel or the connection is gone: end everything at once."""
        if self._closed:
            return
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        self._on_events(self.machine.close())
        await self._stop_redirection()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _settle(future: asyncio.Future[bytes], outcome: IoctlOutcome) -> None:
    if future.done():  # the caller gave up (cancelled)
        return
    if isinstance(outcome, ScardError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def smart_card_channel_factory(config: RedirectionConfig) -> ChannelFactory:
    """The :data:`ChannelFactory` of the rdpdr channel."""

    def factory(context: ChannelContext) -> ChannelHandler:
        return SmartCardChannel(context, config)

    return factory
