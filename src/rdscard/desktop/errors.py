"""Errors of the server's connection to a session's X server."""

from __future__ import annotations

from rdscard.errors import RdscardError


class DesktopError(RdscardError):
    """Something is wrong with a session's X server or the server's view of it."""


class XConnectError(DesktopError):
    """The X server could not be reached or refused us; the message names the display."""

    def __init__(self, display: str, reason: str) -> None:
        self.display = display
        self.reason = reason
        super().__init__(f"X display {display}: {reason}")


class XExtensionMissingError(DesktopError):
    """The X server lacks an extension (or version) the desktop needs."""


class XConnectionLostError(DesktopError):
    """The X server went away (it exited, or closed our connection)."""
