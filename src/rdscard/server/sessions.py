"""The table of live sessions in one server process.

Each accepted connection starts a session with a short id that appears in
every log line about it. A signed-in session belongs to its account and
outlives its connection: it is *disconnected* when the client goes and
*active* again when the account signs in anew (the connection's own
short-lived session then ends and the connection takes the old one over).
States follow RDS's: connecting, logon screen, active, disconnected, ended.
The table is what ``rdscard session list`` shows.
"""

from __future__ import annotations

import itertools
import logging
import os
import pwd
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final


class SessionState(StrEnum):
    """Where a session is in its life (what ``rdscard session list`` shows)."""

    CONNECTING = "connecting"
    LOGON_SCREEN = "logon screen"
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    ENDED = "ended"


#: The account that started the server (root with privilege separation, read before
#: the network process drops to its own account): a session's until a sign-in.
SERVER_ACCOUNT: Final = (pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), os.getegid())


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
    account: str = field(default_factory=lambda: SERVER_ACCOUNT[0])
    uid: int = field(default_factory=lambda: SERVER_ACCOUNT[1])
    gid: int = field(default_factory=lambda: SERVER_ACCOUNT[2])
    env: dict[str, str] = field(default_factory=dict)
    state: str = SessionState.CONNECTING.value
    upn: str = ""
    display: str = ""
    # The client address while a connection is attached ("" when disconnected).
    connection: str = ""
    last_input: float = field(default_factory=time.monotonic)
    disconnected_at: float | None = None
    # Set for a session with a desktop: the account's programs run in it.
    has_desktop: bool = False
    # MS-RDPESC calls sent to the client's smart card device so far, by IOCTL code (what
    # the session could not answer itself).
    smart_card_calls: dict[int, int] = field(default_factory=dict)

    def idle_seconds(self, now: float | None = None) -> float:
        """Seconds since the last keyboard or mouse input."""
        return max((time.monotonic() if now is None else now) - self.last_input, 0.0)


class SessionTable:
    """Live sessions by id."""

    def __init__(self, on_closed: Callable[[int], None] | None = None) -> None:
        #: Called with the id of each session that ends (its resources go).
        self.on_closed = on_closed
        self._ids = itertools.count(1)
        self._sessions: dict[int, SessionInfo] = {}
        # How to disconnect the connection attached to a session, if one is.
        self._disconnectors: dict[int, Callable[[str], None]] = {}

    def open(self, peer: str) -> SessionInfo:
        """Register a new connection; returns its session record."""
        info = SessionInfo(next(self._ids), peer, connection=peer)
        self._sessions[info.session_id] = info
        return info

    def close(self, session_id: int) -> None:
        """Forget a session that ended."""
        known = self._sessions.pop(session_id, None)
        self._disconnectors.pop(session_id, None)
        if known is not None and self.on_closed is not None:
            self.on_closed(session_id)

    def attach_connection(self, session_id: int, disconnect: Callable[[str], None]) -> None:
        """A connection now shows ``session_id``; ``disconnect(why)`` ends that connection."""
        self._disconnectors[session_id] = disconnect

    def detach_connection(self, session_id: int, disconnect: Callable[[str], None]) -> None:
        """That connection is gone (or moved to another session)."""
        if self._disconnectors.get(session_id) == disconnect:
            del self._disconnectors[session_id]

    def disconnector(self, session_id: int) -> Callable[[str], None] | None:
        """How to disconnect the session's client, or None when it is disconnected."""
        return self._disconnectors.get(session_id)

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
