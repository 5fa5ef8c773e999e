"""The table of live sessions in one server process.

Each accepted connection is a session with a short id that appears in every
log line about it. The table is what ``rdscard session list`` will show and
what the smart card redirector uses to find a session's client.
"""

from __future__ import annotations

import itertools
import logging
import os
import pwd
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SessionInfo:
    """What the administrator sees about one session."""

    session_id: int
    peer: str
    started: float = field(default_factory=time.time)
    phase: str = "connecting"
    client_name: str = ""
    client_build: int = 0
    user: str = ""
    desktop: str = ""
    channels: tuple[str, ...] = ()
    # The local account the session's programs run as: the server's own until
    # a sign-in maps the card's user to an account.
    account: str = field(default_factory=lambda: pwd.getpwuid(os.geteuid()).pw_name)
    uid: int = field(default_factory=os.geteuid)
    gid: int = field(default_factory=os.getegid)
    env: dict[str, str] = field(default_factory=dict)


class SessionTable:
    """Live sessions by id."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._sessions: dict[int, SessionInfo] = {}

    def open(self, peer: str) -> SessionInfo:
        """Register a new connection; returns its session record."""
        info = SessionInfo(next(self._ids), peer)
        self._sessions[info.session_id] = info
        return info

    def close(self, session_id: int) -> None:
        """Forget a session that ended."""
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[SessionInfo]:
        return iter(list(self._sessions.values()))

    def get(self, session_id: int) -> SessionInfo | None:
        """The session with this id, if it is still live."""
        return self._sessions.get(session_id)


class SessionLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every message with the session id."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        """Add the ``[session N]`` prefix."""
        extra = self.extra or {}
        return f"[session {extra.get('session_id', '?')}] {msg}", kwargs
