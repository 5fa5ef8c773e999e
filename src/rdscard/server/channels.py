"""Static virtual channel handlers plugged into a session (MS-RDPBCGR 3.1.5.2).

A handler serves one named channel of one session. The connection creates
it when the session becomes active (channel data sent earlier is fatal to
xfreerdp), feeds it every reassembled message, and closes it when the
connection ends. ``send`` queues a message to the client and may be called
at any time, also from tasks the handler starts itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rdscard.server.sessions import SessionInfo, SessionLogger

if TYPE_CHECKING:
    from rdscard.privsep.gateway import Gateway

SendMessage = Callable[[bytes], None]


@dataclass(frozen=True)
class ChannelContext:
    """What a handler gets to know about its session."""

    session: SessionInfo
    log: SessionLogger
    send: SendMessage
    #: The way to the privileged side (card sockets); None: the handler makes its own.
    gateway: Gateway | None = None


class ChannelHandler(Protocol):
    """One session's end of one static virtual channel."""

    def on_data(self, data: bytes) -> None:
        """A complete message from the client."""
        ...

    async def close(self) -> None:
        """The connection is ending: fail pending work, release resources."""
        ...


ChannelFactory = Callable[[ChannelContext], ChannelHandler]
"""Builds a channel's handler for a session that just became active."""
