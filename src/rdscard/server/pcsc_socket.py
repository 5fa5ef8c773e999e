"""A session's pcsc-lite socket: the asyncio adapter of :class:`PcscliteService`.

Each session gets a private directory (mode 0700, owned by the session user)
holding a UNIX socket ``pcscd.comm``; programs of the session find it
through ``PCSCLITE_CSOCK_NAME`` (:attr:`PcscSocketServer.env`). A private
socket bypasses the polkit rules of a system pcscd, so every connection is
checked here with SO_PEERCRED: the session user and root are served, anyone
else is closed at once with a log line naming the uid and pid. Each
connection is an asyncio protocol: bytes read go straight to the service's
per-connection handler in the same event loop step, and its replies go
back through the transport. Closing the server ends every connection
(programs with a call pending read end-of-file, which libpcsclite reports
as an error), releases what they held and removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Self, cast

from rdscard.errors import RdscardError
from rdscard.redirect.pcsclite_connection import PcscliteConnection
from rdscard.redirect.pcsclite_service import PcscliteService

log = logging.getLogger("rdscard.server.pcsc")

SOCKET_NAME: Final = "pcscd.comm"
_UCRED: Final = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


def session_directory(socket_dir: Path, session_id: int) -> Path:
    """The private directory of session ``session_id``'s socket under ``socket_dir``."""
    return socket_dir / f"session-{session_id}"


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a UNIX socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


class PcscSocketServer:
    """Serves ``service`` on ``directory/pcscd.comm`` for the session user ``owner_uid``."""

    def __init__(
        self, service: PcscliteService, directory: Path, owner_uid: int, owner_gid: int,
        *, listener: socket.socket | None = None,
        credentials: Callable[[socket.socket], tuple[int, int, int]] = peer_credentials,
    ) -> None:
        """``credentials`` gives a connected peer's (pid, uid, gid); tests stand in for it."""
        self.service = service
        self._credentials = credentials
        self.directory = Path(directory)
        # A socket made (and later removed) by the privileged side: this server
        # only accepts on it and checks peers.
        self._listener = listener
        self.owner_uid = owner_uid
        self.owner_gid = owner_gid
        self._server: asyncio.Server | None = None
        self._programs: set[_ProgramConnection] = set()
        self._closing = False
        self.refused = 0  # other users
        self.over_limit = 0  # the session's own programs, over max_program_connections

    @property
    def socket_path(self) -> Path:
        return self.directory / SOCKET_NAME

    @property
    def env(self) -> dict[str, str]:
        """What a program of the session needs in its environment to use this socket."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    @property
    def connection_count(self) -> int:
        return len(self._programs)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Create the directory and the socket, and start accepting connections."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            self._server = await loop.create_unix_server(
                lambda: _ProgramConnection(self), sock=self._listener)
            self.service.start()
            log.info("pcsc-lite socket for uid %d at %s", self.owner_uid, self.socket_path)
            return
        self._make_directory()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await loop.create_unix_server(
            lambda: _ProgramConnection(self), path=str(self.socket_path)
        )
        os.chmod(self.socket_path, 0o600)
        self._chown(self.socket_path)
        self.service.start()
        log.info("pcsc-lite socket for uid %d at %s", self.owner_uid, self.socket_path)

    def _make_directory(self) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.directory.mkdir(mode=0o700)
        except FileExistsError:
            info = os.lstat(self.directory)
            if not stat.S_ISDIR(info.st_mode):
                raise RdscardError(
                    f"{self.directory} exists and is not a directory: remove it"
                ) from None
        os.chmod(self.directory, 0o700)
        self._chown(self.directory)

    def set_owner(self, uid: int, gid: int) -> None:
        """Hand the directory and the socket to another account (the one that signed in)."""
        self.owner_uid, self.owner_gid = uid, gid
        if self._listener is not None:
            return  # the privileged side owns the files
        for path in (self.directory, self.socket_path):
            if path.exists():
                self._chown(path)

    def _chown(self, path: Path) -> None:
        info = os.lstat(path)
        if (info.st_uid, info.st_gid) != (self.owner_uid, self.owner_gid):
            os.chown(path, self.owner_uid, self.owner_gid, follow_symlinks=False)

    async def close(self) -> None:
        """End every connection, release what they held, remove the directory."""
        self._closing = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        programs = list(self._programs)
        for program in programs:
            program.abort()
        releases = [task for program in programs if (task := program.release()) is not None]
        if releases:
            # Not gather: a cancel of close() must not cancel the releases themselves.
            await asyncio.wait(releases)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        if self._listener is None:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- connections -----------------------------------------------------------------------
    def _allowed(self, uid: int) -> bool:
        return uid in (self.owner_uid, 0)

    def _admit(self, transport: asyncio.Transport) -> str | None:
        """The peer's name when it may use the socket; None (logged) when refused."""
        sock = transport.get_extra_info("socket")
        try:
            pid, uid, _gid = self._credentials(sock)
        except OSError as exc:
            log.warning("pcsc-lite socket %s: no peer credentials (%s); refused",
                        self.socket_path, exc)
            return None
        if not self._allowed(uid):
            self.refused += 1
            log.warning(
                "pcsc-lite socket %s: refused a connection from uid %d pid %d "
                "(only uid %d and root may use it)",
                self.socket_path, uid, pid, self.owner_uid,
            )
            return None
        if self.service.closed:
            return None
        if len(self.service.connections) >= self.service.max_connections:
            # The first refusal and every hundredth are warnings: a program retrying in a
            # loop does not flood the log.
            self.over_limit += 1
            log.log(
                logging.WARNING if self.over_limit % 100 == 1 else logging.DEBUG,
                "pcsc-lite socket %s: refused uid %d pid %d: %d connections open, the "
                "session's limit ([redirection] max_program_connections); %d refused so far",
                self.socket_path, uid, pid, len(self.service.connections), self.over_limit,
            )
            return None
        return f"uid {uid} pid {pid}"


class _ProgramConnection(asyncio.Protocol):
    """One program's connection: bytes in to its :class:`PcscliteConnection`, replies out.

    A protocol rather than a stream: a request is handled in the event loop
    step that read it, with no task to wake (see ``PcscliteConnection.feed``).
    """

    def __init__(self, server: PcscSocketServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._connection: PcscliteConnection | None = None
        self._release: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, hence the cast.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        server = self._server
        peer = None if server._closing else server._admit(transport)
        if peer is None:
            transport.close()
            return
        self._connection = server.service.connect(self._send, peer=peer, on_end=transport.close)
        server._programs.add(self)

    def _send(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def data_received(self, data: bytes) -> None:
        # A program that breaks the protocol is closed through on_end.
        if self._connection is not None:
            self._connection.feed(data)

    def pause_writing(self) -> None:
        # The program does not read its replies: stop reading its requests meanwhile.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._connection is not None:
            log.debug("pcsc-lite connection of %s: %s", self._connection.peer, exc)
        self.release()

    def abort(self) -> None:
        """The server is closing: stop the program's request in flight and hang up."""
        if self._connection is not None:
            self._connection.abort()
        if self._transport is not None:
            self._transport.close()

    def release(self) -> asyncio.Task[None] | None:
        """Release what the program held, once; the task doing it."""
        if self._connection is None:
            return None
        if self._release is None:
            self._release = asyncio.get_running_loop().create_task(self._released())
        return self._release

    async def _released(self) -> None:
        assert self._connection is not None
        try:
            await self._connection.release()
        finally:
            self._server._programs.discard(self)
