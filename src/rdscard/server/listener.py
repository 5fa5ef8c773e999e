"""The RDP listener: one asyncio server for every connection.

Each accepted connection runs in its own task with its own session object;
an exception in one never reaches another (it is logged with the session id
and that connection alone is closed). Before that, :mod:`admission` decides
whether the client may connect at all (per-address and server-wide limits);
a refused client is answered with an RDP_NEG_FAILURE when it sends its
Connection Request quickly, and the refusals are logged at a bounded rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import shutil
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from rdscard.config import Config
from rdscard.errors import ProtocolError
from rdscard.logon.audit import AuditLog
from rdscard.pdu import tpkt
from rdscard.pdu.share import ErrorInfo
from rdscard.private_files import make_private_dir, tighten
from rdscard.privsep.gateway import Gateway, LocalGateway
from rdscard.screen.cache import FrameCache
from rdscard.server.admission import Admission, address_key, refusal_confirm
from rdscard.server.channels import ChannelFactory
from rdscard.server.connection import Connection, run_connection
from rdscard.server.control import ControlServer
from rdscard.server.desktop import DesktopManager
from rdscard.server.log_limits import RateLimitedLog
from rdscard.server.sessions import SessionTable
from rdscard.server.smartcard_channel import CHANNEL_NAME, smart_card_channel_factory
from rdscard.server.stream_protocol import DirectStreamProtocol, start_direct_server
from rdscard.server.tls import ensure_server_certificate, server_ssl_context

log = logging.getLogger("rdscard.server")
AUDIT_LOG_NAME = "audit.jsonl"
#: Seconds a refused client has to send its Connection Request to be told why.
REFUSAL_READ_TIMEOUT = 1.0
#: Refused clients being answered at once; beyond, a refused connection is just closed.
MAX_PENDING_REFUSALS = 64
#: Seconds after which a connection that never signed in may be ended for a newcomer
#: when the server is full (a real client reaches the logon screen well within it).
EVICTABLE_AFTER = 2.0
#: TCP keepalive on accepted sockets: a peer that vanished is noticed after
#: KEEPIDLE + KEEPCNT * KEEPINTVL seconds (2 minutes) instead of never.
KEEPALIVE_IDLE = 60
KEEPALIVE_INTERVAL = 10
KEEPALIVE_COUNT = 6
#: File descriptors one connection may need (its socket, its session's
#: smart card socket and programs' connections to it, a desktop's pipes).
FDS_PER_CONNECTION = 4


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
    #: Every live connection (the server ends the oldest anonymous one when full).
    connections: set[Connection] = field(default_factory=set)
    desktops: DesktopManager = field(init=False)
    #: Warnings about clients (refusals, protocol errors), rate-limited per address.
    warnings: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(log))

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
        self.admission = Admission(config.server)
        self._refusals = 0

    async def start(self) -> None:
        """Prepare TLS and start listening."""
        cfg = self.config.server
        raise_fd_limit(cfg.max_connections * FDS_PER_CONNECTION)
        make_private_dir(cfg.state_dir)
        tighten(cfg.state_dir)
        host_name = cfg.host_name or socket.gethostname()
        cert = ensure_server_certificate(cfg.state_dir, cfg.certificate, cfg.private_key,
                                         host_name, cfg.certificate_type)
        if cert.generated:
            log.info("generated a self-signed TLS certificate %s", cert.cert_path)
        log.info("TLS certificate %s, SHA-256 fingerprint %s", cert.cert_path,
                 cert.fingerprint_sha256)
        if self.config.nla.enabled and not self.config.nla_active():
            log.warning("nla.enabled is ignored: in [logon] mode = \"local\" no KDC can verify "
                        "the client's Kerberos ticket, so smart card credentials sent under NLA "
                        "cannot be trusted; clients are served with TLS and the PIN comes from "
                        "the logon packet or the logon screen")
        elif self.config.nla_active():
            log.info("Network Level Authentication (CredSSP) offered%s; keytab %s",
                     " and required" if self.config.nla.require else "",
                     self.config.nla.keytab or "(the system's)")
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
            configure_socket(sock)
        peer = writer.get_extra_info("peername")
        key = address_key(str(peer[0])) if isinstance(peer, tuple) else str(peer)
        refused = self.admission.admit(key, make_room=self._end_oldest_anonymous)
        if refused is not None:
            protocol.end_guard()  # a refusal reads the Connection Request alone, as a stream
            await self._refuse(reader, writer, key, refused)
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await run_connection(self.context, reader, writer, protocol, key)
        except Exception:  # a broken session must never take down another
            log.exception("connection handler failed")
        finally:
            self.admission.release(key)
            if task is not None:
                self._tasks.discard(task)

    def _end_oldest_anonymous(self) -> bool:
        """The server is full: end the oldest connection that never signed in, if old enough.

        Connections from many addresses that connect and wait (or park at the
        logon screen) would otherwise fill ``max_connections`` and lock every
        user out; a signed-in session is never ended for a newcomer, and one
        younger than :data:`EVICTABLE_AFTER` seconds is still connecting.
        """
        assert self.context is not None
        now = time.time()
        candidates = [c for c in self.context.connections
                      if not c.signed_in_once() and not c.writer.is_closing()
                      and now - c.info.started >= EVICTABLE_AFTER]
        if not candidates:
            return False
        oldest = min(candidates, key=lambda c: c.info.started)
        self.context.warnings.warning(
            "server-full", "the server is full (server.max_connections): ended the oldest "
            "connection that never signed in (%s, %.0f s old) to admit a new one",
            oldest.info.peer, now - oldest.info.started)
        oldest.close_with(ErrorInfo.ERRINFO_RPC_INITIATED_DISCONNECT,
                          "the server is full and this connection never signed in")
        return True

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      key: str, why: str) -> None:
        """Tell a refused client so (X.224 Connection Confirm, RDP_NEG_FAILURE) and close.

        Only when its Connection Request arrives within REFUSAL_READ_TIMEOUT
        and no more than MAX_PENDING_REFUSALS others are being answered: a
        refusal must cost the server less than an admitted connection.
        """
        assert self.context is not None
        told = False
        if self._refusals < MAX_PENDING_REFUSALS:
            self._refusals += 1
            try:
                async with asyncio.timeout(REFUSAL_READ_TIMEOUT):
                    header = await reader.readexactly(tpkt.TPKT_HEADER_SIZE)
                    length = tpkt.next_frame_length(header)
                    if header[0] == tpkt.TPKT_VERSION and length is not None:
                        body = await reader.readexactly(length - len(header))
                        answer = refusal_confirm(header + body)
                        if answer is not None:
                            writer.write(answer)
                            await writer.drain()
                            told = True
            except (TimeoutError, ProtocolError, asyncio.IncompleteReadError, ConnectionError,
                    OSError):
                pass
            finally:
                self._refusals -= 1
        self.context.warnings.warning(
            f"refused {key}", "refused a connection from %s: %s%s", key, why,
            " (sent RDP_NEG_FAILURE)" if told else "",
        )
        if told:
            writer.close()  # once the confirm is out
        else:
            writer.transport.abort()

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


def configure_socket(sock: socket.socket) -> None:
    """Options of an accepted socket: no Nagle delay, TCP keepalive."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def raise_fd_limit(wanted: int) -> None:
    """Raise the soft open-file limit to the hard one when it is below ``wanted``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open file limit from %d: %s", soft, exc)
        return
    if new < wanted:
        log.warning("open file limit %d (hard limit) is low for server.max_connections: "
                    "raise it (LimitNOFILE= in the systemd unit)", new)
    else:
        log.info("open file limit raised from %d to %d", soft, new)


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
