"""A connection's side of its desktop: start or reattach after sign-in, lock, input, end.

After a sign-in the account's desktop is started, or (one session per
account, or a disconnected one) reattached: the connection then takes the
old session over, its short-lived logon session ends, the card socket moves
to the old session's path (``PCSCLITE_CSOCK_NAME`` of the programs that
run there) and, in Kerberos mode, the new TGT replaces the one in the old
session's credential cache. The logon and lock screens stay the project's
own drawing and cover the desktop while they are up.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from rdscard.pdu.capabilities import GeneralCapabilitySet
from rdscard.pdu.input import InputEvent
from rdscard.pdu.share import ErrorInfo
from rdscard.screen import StatusKind
from rdscard.server.desktop import DesktopManager, DesktopSession, DesktopStartError
from rdscard.server.desktop_encoding import update_encoder
from rdscard.server.desktop_view import DesktopView
from rdscard.server.sessions import SessionLogger, SessionState

if TYPE_CHECKING:
    from rdscard.server.connection import Connection

#: MS-RDPBCGR 2.2.7.1.1 extraFlags: the client takes compressed bitmaps without TS_CD_HEADER.
NO_BITMAP_COMPRESSION_HDR = 0x0400


class DesktopLink:
    """Shows the account's desktop on one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.desktop: DesktopSession | None = None
        self.view: DesktopView | None = None

    @property
    def showing(self) -> bool:
        """The desktop (not the logon or lock screen) is on the client's screen."""
        return self.view is not None and not self.view.suspended and not self.view.closed

    # -- after the sign-in ----------------------------------------------------------
    async def signed_in(self) -> None:
        """The sign-in (or unlock) succeeded: show the account's desktop."""
        conn = self.connection
        if not conn.context.config.sessions.enabled or conn.display is None:
            return
        desktop = self.desktop
        if desktop is not None and not desktop.ended and desktop.owner is self:
            assert self.view is not None
            conn.log.info("unlocked: the desktop is shown again")
            self.view.resume()
            conn.display.release()
            return
        manager = conn.context.desktops
        async with manager.account_turn(conn.info.account):
            desktop = await self._open(manager)
            if desktop is not None:
                self._show(desktop)

    async def _open(self, manager: DesktopManager) -> DesktopSession | None:
        """The account's desktop: reattached, or started; None (shown) when it cannot start."""
        conn = self.connection
        assert conn.display is not None
        reusable = manager.reusable_for(conn.info.account)
        conn.display.set_status("Starting your desktop..." if reusable is None
                                else "Reconnecting to your session...", StatusKind.WAITING)
        await conn.push_screen()
        started = time.perf_counter()
        try:
            if reusable is None:
                desktop = await manager.start(
                    conn.info, width=conn.acceptor.desktop_width,
                    height=conn.acceptor.desktop_height, keyboard_layout=conn.keyboard_layout,
                )
                conn.log.info("desktop started on display %s in %.0f ms", desktop.info.display,
                              (time.perf_counter() - started) * 1000)
            else:
                desktop = reusable
                await self._take_over(desktop)
        except DesktopStartError as exc:
            conn.log.error("the desktop could not start: %s", exc)
            conn.display.set_status(f"Your desktop could not start: {exc}", StatusKind.ERROR)
            await conn.push_screen()
            return None
        return desktop

    def _show(self, desktop: DesktopSession) -> None:
        conn = self.connection
        acceptor = conn.acceptor
        general = next((c for c in acceptor.client_capabilities
                        if isinstance(c, GeneralCapabilitySet)), None)
        without_header = general is not None and bool(
            general.extra_flags & NO_BITMAP_COMPRESSION_HDR)
        view = DesktopView(
            desktop.display, conn.send_graphics,
            update_encoder(compression_header=not without_header,
                           max_request_size=acceptor.fastpath_max_request),
            width=acceptor.desktop_width, height=acceptor.desktop_height,
            bpp=acceptor.color_depth, log=conn.log, cursor=desktop.display,
        )
        self.desktop, self.view = desktop, view
        desktop.attach(self, view, conn.info.peer)
        if conn.display is not None:
            conn.display.release()  # a frame of the logon screen is megabytes
        conn.info.phase = "desktop"

    async def _take_over(self, desktop: DesktopSession) -> None:
        """This connection becomes ``desktop``'s: ids, card socket and ticket move over."""
        conn = self.connection
        mine, theirs = conn.info, desktop.info
        conn.log.info("reconnecting to session %d of %s (%s)", theirs.session_id,
                      theirs.account, theirs.state)
        await desktop.release()
        theirs.peer, theirs.client_name = mine.peer, mine.client_name
        theirs.client_build, theirs.channels = mine.client_build, mine.channels
        theirs.desktop, theirs.user, theirs.upn = mine.desktop, mine.user, mine.upn
        await conn.context.gateway.take_over(theirs.session_id, mine.session_id)
        log = SessionLogger(logging.getLogger("rdscard.session"),
                            {"session_id": theirs.session_id})
        move = getattr(conn.channels.get("rdpdr"), "move_to", None)
        if move is not None:
            await move(theirs, log)
        conn.context.sessions.close(mine.session_id)
        conn.context.sessions.attach_connection(theirs.session_id, conn.disconnect)
        mine.state = SessionState.ENDED.value
        conn.info, conn.log = theirs, log
        logon = conn.sign_in.logon
        if logon is not None:
            logon.context.session, logon.context.log = theirs, log
        conn.log.info("reconnected: connection from %s (it was session %d)", mine.peer,
                      mine.session_id)

    # -- while shown ------------------------------------------------------------------
    def lock(self) -> None:
        """The lock screen covers the desktop (card removal policy ``lock``)."""
        if self.view is not None:
            self.view.suspend()
        if self.connection.display is not None:
            self.connection.display.refresh()

    def on_input(self, events: tuple[InputEvent, ...]) -> bool:
        """Input for the desktop (True), or for the logon screen (False)."""
        if not self.showing or self.desktop is None:
            return False
        try:
            self.desktop.apply_input(events)
        except Exception:
            self.connection.log.exception("input could not reach the X server")
        return True

    def refresh(self) -> bool:
        """The client asked for the picture again: True when the desktop answers it."""
        if not self.showing or self.view is None:
            return False
        self.view.refresh()
        return True

    def logoff(self, reason: str) -> None:
        """End the desktop (card removal policy ``logoff``)."""
        if self.desktop is not None:
            self.desktop.end(reason)

    # -- DesktopOwner ----------------------------------------------------------------------
    def desktop_ended(self, reason: str, error_info: ErrorInfo) -> None:
        """The session was logged off: the client is told why and disconnected."""
        self.view = None
        self.connection.close_with(error_info, f"the session was logged off: {reason}")

    def taken_over(self) -> None:
        """The account's session moved to a newer connection."""
        self.view = None
        self.desktop = None
        self.connection.close_with(ErrorInfo.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION,
                                   "the account reconnected from another connection")

    async def release_card(self) -> None:
        """Stop serving the card socket now: the account's new connection serves it next."""
        release = getattr(self.connection.channels.get("rdpdr"), "release_socket", None)
        if release is not None:
            await release()

    async def connection_closed(self) -> None:
        """The connection is gone: its desktop, if any, goes on disconnected."""
        view, self.view = self.view, None
        if view is not None:
            await view.close()
        if self.desktop is not None:
            self.desktop.detach(self)
