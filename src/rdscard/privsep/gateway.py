"""The network side's way to the privileged work: in process, or through the monitor.

:class:`Gateway` is what connections, channels and desktops call for what
needs root (:mod:`rdscard.privsep.privileged`). :class:`LocalGateway` calls
the service in process (``[server] privilege_separation = false``, or a
server not started as root); :class:`rdscard.privsep.remote.RemoteGateway`
asks the monitor process over the IPC. A desktop's leader is reached
through a :class:`LeaderLink` either way.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Protocol

from rdscard.config import Config
from rdscard.logon.audit import AuditLog
from rdscard.logon.card_link import BackendTransport, CardLink
from rdscard.logon.service import SignInRequest
from rdscard.privsep.privileged import (
    CredSspOutcome,
    DesktopStarted,
    PrivilegedService,
    SignInOutcome,
)
from rdscard.secret import Secret


class LeaderLink(Protocol):
    """A running desktop's session leader, as the network side sees it."""

    started: DesktopStarted
    #: Resolves to the reason the session ended (logoff, the command exited...).
    ended: asyncio.Future[str]

    async def logoff(self) -> str:
        """Log the session off; returns once every process of it is gone."""
        ...


class Gateway(Protocol):
    """The privileged operations a session may ask for."""

    async def open_card_socket(self, session_id: int) -> tuple[socket.socket, Path]:
        """A listening socket at the session's card socket path (0700 directory)."""
        ...

    async def close_card_socket(self, session_id: int) -> None:
        """Remove the session's card socket directory."""
        ...

    async def sign_in(self, session_id: int, request: SignInRequest, pin: Secret,
                      card: CardLink | None, card_error: str = "",
                      nla: bool = False) -> SignInOutcome:
        """One sign-in attempt over ``card``; raises SignInRefused. The PIN is wiped.

        ``nla``: with the PIN Network Level Authentication delegated (kept
        by the privileged side; ``pin`` is empty).
        """
        ...

    async def credssp(self, session_id: int, data: bytes,
                      client_address: str) -> CredSspOutcome:
        """Relay one TSRequest to the session's CredSSP server (MS-CSSP 3.1.5)."""
        ...

    async def start_desktop(self, session_id: int, *, width: int, height: int,
                            keyboard_layout: int, client_address: str) -> LeaderLink:
        """Start the signed-in account's desktop; raises RdscardError with the cause."""
        ...

    async def take_over(self, old_session_id: int, new_session_id: int) -> None:
        """A new sign-in of the same account takes an existing session over (tickets move)."""
        ...

    def session_ended(self, session_id: int) -> None:
        """The session is gone (its socket and tickets go too)."""
        ...

    def session_locked(self, session_id: int) -> None:
        """The card removal policy locked the session (its encrypted folder may lock)."""
        ...


class LocalLeader:
    """A leader started in this process."""

    def __init__(self, service: PrivilegedService, session_id: int,
                 started: DesktopStarted) -> None:
        self.service = service
        self.session_id = session_id
        self.started = started
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def logoff(self) -> str:
        reason = await self.service.end_desktop(self.session_id)
        if not self.ended.done():
            self.ended.set_result(reason)
        return self.ended.result()


class LocalGateway:
    """The privileged work done in this process (no privilege separation)."""

    def __init__(self, service: PrivilegedService) -> None:
        self.service = service
        self._leaders: dict[int, LocalLeader] = {}
        service.desktop_ended = self._desktop_ended

    @classmethod
    def create(cls, config: Config, audit: AuditLog) -> LocalGateway:
        """A gateway with a service of its own."""
        service = PrivilegedService(config, audit, lambda _s, _r: None)
        service.start_directory_refresh()
        return cls(service)

    def _desktop_ended(self, session_id: int, reason: str) -> None:
        leader = self._leaders.get(session_id)
        if leader is not None and not leader.ended.done():
            leader.ended.set_result(reason)

    async def open_card_socket(self, session_id: int) -> tuple[socket.socket, Path]:
        return self.service.open_card_socket(session_id)

    async def close_card_socket(self, session_id: int) -> None:
        self.service.close_card_socket(session_id)

    async def sign_in(self, session_id: int, request: SignInRequest, pin: Secret,
                      card: CardLink | None, card_error: str = "",
                      nla: bool = False) -> SignInOutcome:
        if card is None:
            pin.wipe()
            raise self.service.card_refused(request, card_error or "no card")
        transport = BackendTransport(card, asyncio.get_running_loop())
        return await run_sign_in(self.service, session_id, request, pin, transport, nla)

    async def credssp(self, session_id: int, data: bytes,
                      client_address: str) -> CredSspOutcome:
        return await asyncio.to_thread(self.service.credssp, session_id, data, client_address)

    async def start_desktop(self, session_id: int, *, width: int, height: int,
                            keyboard_layout: int, client_address: str) -> LeaderLink:
        started = await self.service.start_desktop(
            session_id, width=width, height=height, keyboard_layout=keyboard_layout,
            client_address=client_address)
        leader = LocalLeader(self.service, session_id, started)
        self._leaders[session_id] = leader
        leader.ended.add_done_callback(lambda _f: self._leaders.pop(session_id, None))
        return leader

    async def take_over(self, old_session_id: int, new_session_id: int) -> None:
        self.service.take_over(old_session_id, new_session_id)

    def session_ended(self, session_id: int) -> None:
        self.service.session_ended(session_id)

    def session_locked(self, session_id: int) -> None:
        self.service.session_locked(session_id)


async def run_sign_in(service: PrivilegedService, session_id: int, request: SignInRequest,
                      pin: Secret, transport: BackendTransport | object,
                      nla: bool = False) -> SignInOutcome:
    """The sign-in in a worker thread; a cancel waits for the thread before the PIN goes.

    The worker may be about to present the PIN when the connection goes, so
    the PIN is wiped only once that thread is done with it.
    """
    work = asyncio.ensure_future(asyncio.to_thread(
        service.sign_in, session_id, request, pin, transport, nla))  # type: ignore[arg-type]
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait({work})
        if not work.cancelled():
            work.exception()  # retrieved: the flow ends anyway
        raise
    finally:
        pin.wipe()
