"""The administrator's control socket of a running server.

A UNIX socket ``control.sock`` in the state directory (mode 0600, root
only, peer-checked with SO_PEERCRED) answering one JSON request per line
with one JSON reply line: ``{"command": "list"}`` lists the live sessions,
``{"command": "session", "session": N}`` gives one session's account and
environment (what ``rdscard session exec`` needs to run a program inside
it) and the smart card calls it sent to its client, by MS-RDPESC IOCTL,
``{"command": "disconnect", "session": N}`` disconnects its client (the
desktop goes on) and ``{"command": "logoff", "session": N}`` ends it
with every program in it. No secret is ever part of a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdscard.pdu.esc.constants import ScardIoctl
from rdscard.server.control_client import CONTROL_SOCKET_NAME
from rdscard.server.sessions import SessionInfo, SessionTable

if TYPE_CHECKING:
    from rdscard.server.desktop import DesktopManager

log = logging.getLogger("rdscard.control")

MAX_REQUEST = 4096


def peer_uid(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a UNIX socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid, uid


async def start_private_unix_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    path: Path,
) -> asyncio.Server:
    """A UNIX socket server at ``path`` (a stale socket replaced), mode 0600 from the start."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_REQUEST + 2)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return server


def describe(info: SessionInfo) -> dict[str, Any]:
    """The JSON form of a session record."""
    record = asdict(info)
    record["channels"] = list(info.channels)
    record["idle"] = round(info.idle_seconds(), 1)
    del record["last_input"], record["disconnected_at"]  # monotonic clock values
    record["smart_card_calls"] = {
        _ioctl_name(code): count for code, count in sorted(info.smart_card_calls.items())
    }
    return record


def _ioctl_name(code: int) -> str:
    try:
        return ScardIoctl(code).name.removeprefix("SCARD_IOCTL_")
    except ValueError:
        return f"0x{code:08X}"



class ControlServer:
    """Serves the control socket for one server process."""

    def __init__(self, sessions: SessionTable, state_dir: Path,
                 desktops: DesktopManager | None = None) -> None:
        self.sessions = sessions
        self.desktops = desktops
        self.path = state_dir / CONTROL_SOCKET_NAME
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Create the socket (replacing a stale one) with mode 0600."""
        self._server = await start_private_unix_server(self._handle, self.path)

    async def close(self) -> None:
        """Stop serving and remove the socket."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        # Without privileges (the network process) the state directory is not ours.
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        pid, uid = peer_uid(sock)
        try:
            if uid != 0 and uid != os.geteuid():
                log.warning("control socket: refused process %d of uid %d", pid, uid)
                return
            line = await reader.readline()
            if len(line) > MAX_REQUEST:
                return
            writer.write(json.dumps(await self.answer(line)).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError, ValueError):  # ValueError: a line over the limit
            pass
        finally:
            writer.close()

    async def answer(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line."""
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, KeyError, TypeError):
            return {"error": "bad request: expected a JSON object with a command"}
        if command == "list":
            return {"sessions": [describe(s) for s in self.sessions]}
        if command == "session":
            info = self.sessions.get(request.get("session", -1))
            if info is None:
                return {"error": f"no session {request.get('session')!r} on this server"}
            return {"session": describe(info)}
        if command in ("disconnect", "logoff"):
            return await self._end(command, request.get("session", -1))
        return {"error": f"unknown command {command!r}"}

    async def _end(self, command: str, session_id: object) -> dict[str, Any]:
        info = self.sessions.get(session_id) if isinstance(session_id, int) else None
        if info is None:
            return {"error": f"no session {session_id!r} on this server (see rdscard session list)"}
        disconnect = self.sessions.disconnector(info.session_id)
        desktop = self.desktops.get(info.session_id) if self.desktops is not None else None
        if command == "disconnect":
            if disconnect is None:
                return {"error": f"session {info.session_id} is already disconnected"}
            log.info("control: disconnecting session %d", info.session_id)
            disconnect("disconnected by the administrator")
            return {"done": f"session {info.session_id} disconnected"}
        log.info("control: logging off session %d", info.session_id)
        if desktop is not None:
            await desktop.end("logged off by the administrator")
        elif disconnect is not None:
            disconnect("logged off by the administrator")
        return {"done": f"session {info.session_id} logged off"}


