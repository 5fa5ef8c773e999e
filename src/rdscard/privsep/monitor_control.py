"""The control socket, served by the monitor when privileges are separated.

``rdscard session`` talks to ``control.sock`` in the state directory (root
only, peer-checked). The live-session table is the network process's, so
each request is passed on to it (:class:`ipc.ControlRequest`); but what
``rdscard session exec`` acts on as root (the account a program runs as and
its environment) comes from the monitor's own records, never from the
network process: a compromised network process cannot make an
administrator run something as root or with an environment of its choosing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from rdscard.errors import RdscardError
from rdscard.privsep import ipc
from rdscard.privsep.channel import IpcChannel
from rdscard.privsep.privileged import PrivilegedService
from rdscard.server.control import peer_uid, start_private_unix_server
from rdscard.server.control_client import CONTROL_SOCKET_NAME

log = logging.getLogger("rdscard.control")


class MonitorControl:
    """Serves ``control.sock`` for a monitor and its network process."""

    def __init__(self, service: PrivilegedService, channel: IpcChannel, state_dir: Path) -> None:
        self.service = service
        self.channel = channel
        self.path = state_dir / CONTROL_SOCKET_NAME
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Create the socket (replacing a stale one) with mode 0600."""
        self._server = await start_private_unix_server(self._handle, self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            pid, uid = peer_uid(writer.get_extra_info("socket"))
            if uid != 0:
                log.warning("control socket: refused process %d of uid %d", pid, uid)
                return
            line = await reader.readline()
            writer.write(json.dumps(await self.answer(line)).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            writer.close()

    async def answer(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line: the network process's, the accounts the monitor's."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
            text = line.decode()
        except (ValueError, UnicodeDecodeError):
            return {"error": "bad request: expected a JSON object with a command"}
        if len(text) > ipc.MAX_TEXT:
            return {"error": "bad request: too long"}
        try:
            message, _fds = await self.channel.request(ipc.ControlRequest(text))
            if not isinstance(message, ipc.ControlReply):
                raise RdscardError(f"it answered {type(message).__name__}")
            answer = json.loads(message.answer)
            if not isinstance(answer, dict):
                raise RdscardError("it answered no JSON object")
        except (RdscardError, ValueError) as exc:
            return {"error": f"the network process cannot answer: {exc}"}
        session = answer.get("session")
        if request.get("command") == "session" and isinstance(session, dict):
            session_id = request.get("session")
            if not isinstance(session_id, int) or session.get("session_id") != session_id:
                return {"error": "the network process answered for another session"}
            session.update(self.service.session_view(session_id))
        return answer
