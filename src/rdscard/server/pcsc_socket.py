"""A session's pcsc-lite socket: the asyncio adapter of :class:`PcscliteService`.

Each session gets a private directory (mode 0700, owned by the session user)
holding a UNIX socket ``pcscd.comm``; programs of the session find it
through ``PCSCLITE_CSOCK_NAME`` (:attr:`PcscSocketServer.env`). A private
socket bypasses the polkit rules of a system pcscd, so every connection is
checked here with SO_PEERCRED: the session user and root are served, anyone
else is closed at once with a log line naming the uid and pid. Bytes read
go to the service's per-connection handler; its replies go back through
the stream writer. Closing the server ends every connection (programs with
a call pending read end-of-file, which libpcsclite reports as an error),
releases what they held and removes the directory.
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
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from rdscard.errors import RdscardError
from rdscard.redirect.pcsclite_service import PcscliteService

log = logging.getLogger("rdscard.server.pcsc")

SOCKET_NAME: Final = "pcscd.comm"
READ_SIZE: Final = 65536
_UCRED: Final = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a UNIX socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


class PcscSocketServer:
    """Serves ``service`` on ``directory/pcscd.comm`` for the session user ``owner_uid``."""

    def __init__(
        self, service: PcscliteService, directory: Path, owner_uid: int, owner_gid: int
    ) -> None:
        self.service = service
        self.directory = Path(directory)
        self.owner_uid = owner_uid
        self.owner_gid = owner_gid
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.refused = 0

    @property
    def socket_path(self) -> Path:
        return self.directory / SOCKET_NAME

    @property
    def env(self) -> dict[str, str]:
        """What a program of the session needs in its environment to use this socket."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    @property
    def connection_count(self) -> int:
        return len(self._tasks)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Create the directory and the socket, and start accepting connections."""
        if self._server is not None:
            return
        self._make_directory()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))
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
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            pid, uid, _gid = peer_credentials(sock)
        except OSError as exc:
            log.warning("pcsc-lite socket %s: no peer credentials (%s); refused",
                        self.socket_path, exc)
            writer.close()
            return
        if not self._allowed(uid):
            self.refused += 1
            log.warning(
                "pcsc-lite socket %s: refused a connection from uid %d pid %d "
                "(only uid %d and root may use it)",
                self.socket_path, uid, pid, self.owner_uid,
            )
            writer.close()
            return
        if self.service.closed or len(self.service.connections) >= self.service.max_connections:
            log.warning(
                "pcsc-lite socket %s: refused uid %d pid %d: %d connections open",
                self.socket_path, uid, pid, len(self.service.connections),
            )
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)

        def send(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        connection = self.service.connect(send, peer=f"uid {uid} pid {pid}")
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data or not await connection.receive(data):
                    break
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("pcsc-lite connection of uid %d pid %d: %s", uid, pid, exc)
        except asyncio.CancelledError:
            # This task is the stream's callback task: asyncio reports a cancelled one as an
            # error, so a cancel from close() ends it quietly.
            if not self._closing:
                raise
        finally:
            # Shielded: a second cancel (server closing) must not leave contexts behind.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(connection.release())
            writer.close()
            self._tasks.discard(task)
