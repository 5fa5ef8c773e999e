"""The command line's side of the control socket: one JSON request, one JSON reply.

Kept apart from :mod:`rdscard.server.control` (the server side, on asyncio) so
that ``rdscard session`` starts without importing the server.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

CONTROL_SOCKET_NAME = "control.sock"


def query(state_dir: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to a running server's control socket (for the CLI)."""
    path = state_dir / CONTROL_SOCKET_NAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
