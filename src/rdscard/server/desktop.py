"""Desktop sessions: a signed-in account's X server and programs, which outlive connections.

The server never becomes the user. Each desktop has a privileged session
leader (:mod:`rdscard.session.leader`) that opens the PAM session, starts
the X server and the session command as the account and ends them all at
logoff; this module keeps the server's side: the leader's handle, the X
connection used to capture the screen and inject input, the connection
attached now (if any) and the time limits. A disconnected desktop keeps
running; the account's next sign-in reattaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rdscard.config import Config
from rdscard.desktop import XDisplay
from rdscard.errors import RdscardError
from rdscard.pdu.bitmap import Rect
from rdscard.pdu.input import InputEvent, KeyboardEvent, UnicodeKeyboardEvent
from rdscard.pdu.share import ErrorInfo
from rdscard.server.desktop_view import DesktopView
from rdscard.server.pcsc_socket import SOCKET_NAME, session_directory
from rdscard.server.sessions import SessionInfo, SessionLogger, SessionState, SessionTable

if TYPE_CHECKING:
    from rdscard.privsep.gateway import Gateway, LeaderLink


class DesktopStartError(RdscardError):
    """A desktop could not be started; the message is fit for the user's screen."""


class DesktopOwner(Protocol):
    """The connection a desktop is shown on."""

    def desktop_ended(self, reason: str, error_info: ErrorInfo) -> None:
        """The session ended (logoff, a limit, the session command exited)."""
        ...

    def taken_over(self) -> None:
        """The account signed in from another connection, which now has the session."""
        ...

    async def release_card(self) -> None:
        """Stop serving the session's card socket (the new connection serves it next)."""
        ...


class DesktopSession:
    """One account's running desktop."""

    def __init__(self, info: SessionInfo, leader: LeaderLink, display: XDisplay,
                 manager: DesktopManager) -> None:
        self.info = info
        self.leader = leader
        self.display = display
        self.manager = manager
        self.log = SessionLogger(logging.getLogger("rdscard.session"),
                                 {"session_id": info.session_id})
        self.view: DesktopView | None = None
        self.owner: DesktopOwner | None = None
        self.ended = False
        self._limit: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None

    # -- X server events ---------------------------------------------------------
    def on_damage(self, rects: list[Rect]) -> None:
        if self.view is not None:
            self.view.damage(rects)

    def on_cursor(self) -> None:
        if self.view is not None and self.owner is not None:
            self.view.cursor_changed()

    def on_lost(self, reason: str) -> None:
        self.log.error("the session's X server went away: %s", reason)
        self.end(f"the X server went away ({reason})")

    # -- input ------------------------------------------------------------------------
    def apply_input(self, events: tuple[InputEvent, ...]) -> None:
        """Keyboard and mouse from the attached client, through XTEST."""
        self.info.last_input = time.monotonic()
        self.display.apply(events)
        if self.view is not None and any(
                isinstance(e, KeyboardEvent | UnicodeKeyboardEvent) and not e.released
                for e in events):
            self.view.input_seen()

    # -- connections ----------------------------------------------------------------------
    async def release(self) -> None:
        """Take the desktop from the connection showing it (the account signed in elsewhere)."""
        previous = self.owner
        if previous is not None:
            self.detach(previous)
            previous.taken_over()
            await previous.release_card()

    def attach(self, owner: DesktopOwner, view: DesktopView, peer: str) -> None:
        """Show the desktop on a connection (after a sign-in or an unlock)."""
        self.owner, self.view = owner, view
        self.info.state = SessionState.ACTIVE.value
        self.info.connection = peer
        self.info.disconnected_at = None
        self.info.last_input = time.monotonic()
        self._arm_limit()
        view.refresh()

    def detach(self, owner: DesktopOwner) -> None:
        """The connection went: the desktop goes on, disconnected."""
        if self.owner is not owner:
            return
        view, self.view, self.owner = self.view, None, None
        if view is not None:
            view.closed = True
        if self.ended:
            return
        self.info.state = SessionState.DISCONNECTED.value
        self.info.connection = ""
        self.info.disconnected_at = time.monotonic()
        self.log.info("disconnected: the session goes on (%s)", self.info.display)
        self._arm_limit()

    # -- limits ----------------------------------------------------------------------------------
    def _arm_limit(self) -> None:
        if self._limit is not None:
            self._limit.cancel()
            self._limit = None
        if self.ended:
            return
        cfg = self.manager.config.sessions
        now = time.monotonic()
        deadlines: list[tuple[float, str]] = []
        if self.owner is None and cfg.disconnected_limit and self.info.disconnected_at:
            deadlines.append((self.info.disconnected_at + cfg.disconnected_limit,
                              f"disconnected for {cfg.disconnected_limit:.0f} s "
                              "(sessions.disconnected_limit)"))
        if cfg.idle_limit:
            deadlines.append((self.info.last_input + cfg.idle_limit,
                              f"idle for {cfg.idle_limit:.0f} s (sessions.idle_limit)"))
        if not deadlines:
            return
        when, why = min(deadlines)
        self._limit = asyncio.get_running_loop().call_later(
            max(when - now, 0.0), self._check_limit, why)

    def _check_limit(self, why: str) -> None:
        self._limit = None
        cfg = self.manager.config.sessions
        now = time.monotonic()
        idle_over = cfg.idle_limit and now - self.info.last_input >= cfg.idle_limit
        gone_over = (self.owner is None and cfg.disconnected_limit and self.info.disconnected_at
                     and now - self.info.disconnected_at >= cfg.disconnected_limit)
        if idle_over or gone_over:
            self.log.info("logging off: %s", why)
            self.end(why, error_info=ErrorInfo.ERRINFO_IDLE_TIMEOUT if idle_over
                     else ErrorInfo.ERRINFO_RPC_INITIATED_LOGOFF)
        else:
            self._arm_limit()  # input came meanwhile

    # -- the end ---------------------------------------------------------------------------
    def end(self, reason: str, *,
            error_info: ErrorInfo = ErrorInfo.ERRINFO_RPC_INITIATED_LOGOFF) -> asyncio.Task[None]:
        """Log the session off (idempotent); the task finishes once everything is gone.

        ``error_info`` tells an attached client why (MS-RDPBCGR 2.2.5.1.1).
        """
        if self._ending is None:
            self._ending = asyncio.get_running_loop().create_task(self._end(reason, error_info))
        return self._ending

    async def _end(self, reason: str, error_info: ErrorInfo) -> None:
        self.ended = True
        if self._limit is not None:
            self._limit.cancel()
        owner = self.owner
        if owner is not None:
            self.detach(owner)
            owner.desktop_ended(reason, error_info)
        self.display.close()
        try:
            await self.leader.logoff()
        except Exception:
            self.log.exception("the session leader failed to log off")
        self.manager.forget(self)
        self.log.info("logged off: %s", reason)


class DesktopManager:
    """Every desktop of the server, by session id."""

    def __init__(self, config: Config, sessions: SessionTable,
                 gateway: Gateway | None = None) -> None:
        self.config = config
        self.sessions = sessions
        self.gateway = gateway
        self._desktops: dict[int, DesktopSession] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    def get(self, session_id: int) -> DesktopSession | None:
        return self._desktops.get(session_id)

    @contextlib.asynccontextmanager
    async def account_turn(self, account: str) -> AsyncIterator[None]:
        """One sign-in of ``account`` at a time between choosing and starting its desktop
        (two clients signing in at once must not start two sessions)."""
        lock = self._starting.setdefault(account, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._starting.get(account) is lock:
                del self._starting[account]

    def reusable_for(self, account: str) -> DesktopSession | None:
        """The desktop the account's sign-in goes back to, if any.

        One session per account (the default): its session, disconnected or
        shown elsewhere. Several allowed: a disconnected one, else none.
        """
        mine = [d for d in self._desktops.values() if d.info.account == account and not d.ended]
        if not self.config.sessions.one_per_account:
            mine = [d for d in mine if d.owner is None]
        return mine[0] if mine else None

    def socket_path(self, session_id: int) -> Path:
        """Where the session's programs find the redirected card, whichever connection serves it."""
        return session_directory(self.config.redirection.socket_dir, session_id) / SOCKET_NAME

    async def start(self, info: SessionInfo, *, width: int, height: int,
                    keyboard_layout: int) -> DesktopSession:
        """Start the account's desktop for ``info`` (already signed in)."""
        assert self.gateway is not None
        try:
            leader = await self.gateway.start_desktop(
                info.session_id, width=width, height=height, keyboard_layout=keyboard_layout,
                client_address=info.peer.rpartition(":")[0])
        except RdscardError as exc:
            raise DesktopStartError(str(exc)) from None
        started = leader.started
        try:
            display = XDisplay.connect(started.display, started.cookie)
        except RdscardError as exc:
            await leader.logoff()
            raise DesktopStartError(f"cannot reach the session's X server: {exc}") from None
        desktop = DesktopSession(info, leader, display, self)
        info.has_desktop = True
        info.display = started.display
        info.env["PCSCLITE_CSOCK_NAME"] = str(self.socket_path(info.session_id))
        info.env["DISPLAY"] = started.display
        info.env["XAUTHORITY"] = started.xauthority
        self._desktops[info.session_id] = desktop
        display.attach(asyncio.get_running_loop(), on_damage=desktop.on_damage,
                       on_cursor=desktop.on_cursor, on_lost=desktop.on_lost)
        leader.ended.add_done_callback(lambda f: self._leader_ended(desktop, f))
        return desktop

    def _leader_ended(self, desktop: DesktopSession, ended: asyncio.Future[str]) -> None:
        if desktop.ended:
            return
        reason = ended.result() if not ended.cancelled() and ended.exception() is None \
            else "the session leader ended"
        desktop.log.info("the session ended: %s", reason)
        desktop.end(reason, error_info=ErrorInfo.ERRINFO_LOGOFF_BY_USER)

    def forget(self, desktop: DesktopSession) -> None:
        """A desktop ended: drop it (its session's credential cache goes with the session)."""
        self._desktops.pop(desktop.info.session_id, None)
        desktop.info.state = SessionState.ENDED.value
        if desktop.owner is None:
            self.sessions.close(desktop.info.session_id)

    async def close_all(self) -> None:
        """Server shutdown: log every desktop off."""
        tasks = [d.end("the server is shutting down") for d in list(self._desktops.values())]
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
