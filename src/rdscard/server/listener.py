"""The RDP listener: one asyncio server for every connection.

Each accepted connection runs in its own task with its own session object;
an exception in one never reaches another (it is logged with the session id
and that connection alone is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from rdscard.config import Config
from rdscard.logon.audit import AuditLog
from rdscard.privsep.gateway import Gateway, LocalGateway
from rdscard.screen.cache import FrameCache
from rdscard.server.channels import ChannelFactory
from rdscard.server.connection import run_connection
from rdscard.server.control import ControlServer
from rdscard.server.desktop import DesktopManager
from rdscard.server.sessions import SessionTable
from rdscard.server.smartcard_channel import CHANNEL_NAME, smart_card_channel_factory
from rdscard.server.stream_protocol import DirectStreamProtocol, start_direct_server
from rdscard.server.tls import ensure_server_certificate, server_ssl_context

log = logging.getLogger("rdscard.server")
AUDIT_LOG_NAME = "audit.jsonl"


@dataclass
class ServerContext:
    """What every connection shares: configuration, TLS, the session table, the way to
    the privileged side."""

    config: Config
    ssl_context: ssl.SSLContext
    host_name: str
    gateway: Gateway
    sessions: SessionTable = field(default_factory=SessionTable)
    frames: FrameCache = field(default_factory=FrameCache)
    channel_factories: dict[str, ChannelFactory] = field(default_factory=dict)
    desktops: DesktopManager = field(init=False)

    def __post_init__(self) -> None:
        self.sessions.on_closed = self.gateway.session_ended
        self.desktops = DesktopManager(self.config, self.sessions, self.gateway)


class RdpServer:
    """The listening RD Session Host."""

    def __init__(self, config: Config, gateway: Gateway | None = None, *,
                 control_socket: bool = True) -> None:
        """``gateway``: the monitor's, with privilege separation; else the work is local.

        ``control_socket`` false: the monitor serves the control socket and
        passes requests on to :attr:`control`.
        """
        self.config = config
        self.gateway = gateway
        self.control_socket = control_socket
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.context: ServerContext | None = None
        self._control: ControlServer | None = None

    async def start(self) -> None:
        """Prepare TLS and start listening."""
        cfg = self.config.server
        cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        host_name = cfg.host_name or socket.gethostname()
        cert = ensure_server_certificate(cfg.state_dir, cfg.certificate, cfg.private_key, host_name)
        if cert.generated:
            log.info("generated a self-signed TLS certificate %s", cert.cert_path)
        log.info("TLS certificate %s, SHA-256 fingerprint %s", cert.cert_path,
                 cert.fingerprint_sha256)
        gateway = self.gateway or LocalGateway.create(
            self.config, AuditLog(cfg.state_dir / AUDIT_LOG_NAME))
        self.context = ServerContext(self.config, server_ssl_context(cert), host_name, gateway)
        if self.config.redirection.enabled:
            self.context.channel_factories[CHANNEL_NAME] = smart_card_channel_factory(
                self.config.redirection
            )
        if self.config.sessions.enabled:
            check_session_setup(self.config)
        self._control = ControlServer(self.context.sessions, cfg.state_dir,
                                      self.context.desktops)
        if self.control_socket:
            await self._control.start()
        self._server = await start_direct_server(
            self._accept, cfg.listen.host, cfg.listen.port, limit=1 << 20
        )
        log.info("listening on %s", ", ".join(self.addresses))

    @property
    def control(self) -> ControlServer:
        """The answers to the control socket's requests."""
        assert self._control is not None
        return self._control

    @property
    def addresses(self) -> list[str]:
        """The bound addresses as ``HOST:PORT`` strings."""
        if self._server is None:
            return []
        return [f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in self._server.sockets]

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: DirectStreamProtocol,
    ) -> None:
        assert self.context is not None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.context.sessions) >= self.config.server.max_connections:
            log.warning("refusing a connection from %s: server.max_connections reached",
                        writer.get_extra_info("peername"))
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await run_connection(self.context, reader, writer, protocol)
        except Exception:  # a broken session must never take down another
            log.exception("connection handler failed")
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening and end every connection."""
        if self._control is not None:
            await self._control.close()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.context is not None:
            await self.context.desktops.close_all()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


def check_session_setup(config: Config) -> None:
    """Warn at start-up about what would make every desktop fail to start."""
    service = config.sessions.pam_service
    if not (Path("/etc/pam.d") / service).exists():
        log.warning(
            "the PAM service %r is missing: desktops will not start until it is installed "
            "(rdscard session install-pam, or set [sessions] pam_service)", service)
    x_server = config.sessions.x_server[0]
    if shutil.which(x_server) is None:
        log.warning("the X server %r is not installed: desktops will not start "
                    "(install xvfb, or set [sessions] x_server)", x_server)
