"""One session's way from the logon screen to signed in (single sign-on).

The PIN that arrived with the connection (Client Info with
INFO_PASSWORD_IS_SC_PIN, inside TLS) signs the user in with no prompt at
all; a wrong one is never retried: the screen asks again and shows the
tries left. The PIN lives here only until it is handed to the logon service
(the monitor, with privilege separation: :mod:`rdscard.privsep`), as a
Secret wiped after use on both sides. The logon service reaches the card
through the session's own redirected reader, never through the session's
socket (:mod:`rdscard.logon.card_link`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rdscard.errors import ProtocolError, RdscardError
from rdscard.logon.card_link import (
    BackendTransport,
    CardLinkError,
    close_card,
    open_card,
    readers_with_card,
    wait_for_card,
)
from rdscard.logon.challenge import read_sign_in_certificate
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import SignInRequest
from rdscard.logon.settings import CardRemoval
from rdscard.logon.validation import extract_upn
from rdscard.pki.piv_client import PivClient
from rdscard.privsep.privileged import SignInOutcome
from rdscard.redirect.backend import SmartCardBackend
from rdscard.screen import LogonScreenController, StatusKind
from rdscard.secret import Secret
from rdscard.server.sessions import SessionInfo, SessionLogger

if TYPE_CHECKING:
    from rdscard.logon.settings import LogonConfig
    from rdscard.privsep.gateway import Gateway

DEVICE_TIMEOUT = 20.0
CARD_TIMEOUT = 300.0


@dataclass
class LogonContext:
    """What the flow needs from its session."""

    session: SessionInfo
    log: SessionLogger
    screen: LogonScreenController
    push_screen: Callable[[], Awaitable[None]]
    wait_for_backend: Callable[[float], Awaitable[SmartCardBackend | None]]
    config: LogonConfig
    gateway: Gateway
    client_user: str
    client_domain: str
    hand_over: Callable[[int, int], None]
    end_session: Callable[[bool], None]
    after_sign_in: Callable[[], Awaitable[None]]
    on_lock: Callable[[], None]


class LogonFlow:
    """Drives the logon screen and the sign-in attempts of one session."""

    def __init__(self, context: LogonContext, client_pin: Secret | None,
                 nla: bool = False) -> None:
        self.context = context
        #: The first attempt uses the PIN Network Level Authentication delegated (which
        #: the logon service holds); later ones the PINs typed on the screen.
        self._nla = nla
        self._pins: asyncio.Queue[Secret] = asyncio.Queue()
        if client_pin is not None:
            self._pins.put_nowait(client_pin)
        self.signed_in: SignInOutcome | None = None
        #: Set by the first successful sign-in (a lock screen later does not clear it).
        self.ever_signed_in = False
        self.locked_by = ""
        self.phases: dict[str, float] = {}
        self._mark = time.perf_counter()

    def submit_pin(self, pin: Secret) -> None:
        """A PIN typed on the logon screen (Enter)."""
        self._pins.put_nowait(pin)

    async def close(self) -> None:
        """Wipe any PIN not used yet."""
        while not self._pins.empty():
            self._pins.get_nowait().wipe()

    async def _status(self, text: str, kind: StatusKind = StatusKind.INFO,
                      tries: int | None = None) -> None:
        self.context.screen.set_status(text, kind)
        self.context.screen.set_tries_left(tries)
        await self.context.push_screen()

    async def run(self) -> None:
        """Wait for the card, sign in, then apply the card removal policy."""
        ctx = self.context
        await self._status("Waiting for the smart card reader", StatusKind.WAITING)
        backend = await ctx.wait_for_backend(DEVICE_TIMEOUT)
        self._phase("device")
        if backend is None:
            ctx.log.warning("sign-in impossible: the client redirects no smart card reader")
            await self._status(
                "No smart card reader: connect with smart card redirection "
                "(xfreerdp /smartcard)", StatusKind.ERROR)
            return
        while True:
            reader = await self._sign_in(backend)
            if reader is None:
                return
            await self._signed_in(reader)
            policy = ctx.config.card_removal
            if policy is CardRemoval.NONE:
                return
            await self._wait_for_removal(backend, reader)
            ctx.log.info("the smart card left %r: card removal policy %s", reader, policy.value)
            if policy in (CardRemoval.LOCK, CardRemoval.LOGOFF):
                # the account's encrypted folder locks with the session (disconnect: not)
                ctx.gateway.session_locked(ctx.session.session_id)
            if policy is CardRemoval.LOCK:
                self.locked_by = ctx.session.account
                self.signed_in = None
                ctx.session.phase = "locked"
                ctx.on_lock()
                ctx.screen.show_logon()
                continue
            ctx.end_session(policy is CardRemoval.LOGOFF)
            return

    async def _sign_in(self, backend: SmartCardBackend) -> str | None:
        """Sign in with the PINs that come until one works; the reader used, or None."""
        ctx = self.context
        refused: SignInRefused | None = None
        while self.signed_in is None:
            if not readers_with_card(backend.readers()):
                await self._status("Locked: insert your smart card" if self.locked_by
                                   else "Insert your smart card", StatusKind.WAITING)
                refused = None
            readers = await wait_for_card(backend, CARD_TIMEOUT)
            if not readers:
                await self._status("No smart card inserted: insert it and reconnect",
                                   StatusKind.ERROR)
                return None
            if len(readers) == 1:
                reader = readers[0].name
            else:
                chosen = await self._choose_reader(backend, [r.name for r in readers])
                if chosen is None:
                    await self._status(
                        "Several smart cards are inserted: remove the ones you do not sign in "
                        "with, or give your user name in the client", StatusKind.ERROR)
                    await backend.wait_for_reader_change()
                    continue
                reader = chosen
            if self._pins.empty() and refused is None and not self._nla:
                await self._status("Type your PIN, then press Enter")
            self._phase("card")  # waiting for a card (and choosing among several)
            nla, self._nla = self._nla, False
            # An error stays on screen until a PIN comes.
            pin = Secret() if nla else await self._pins.get()
            self._phase("prompt")  # waiting for the PIN: none when it came with the connection
            await self._status("Signing in...", StatusKind.WAITING)
            try:
                card = await self._attempt(backend, reader, pin, nla)
                if self.locked_by and card.account != self.locked_by:
                    raise SignInRefused(
                        ReasonCode.NO_ACCOUNT,
                        f"this session is locked by {self.locked_by}: only their card unlocks it",
                    )
                self.signed_in = card
                self.ever_signed_in = True
            except SignInRefused as exc:
                refused = exc
                ctx.log.warning("sign-in refused (%s): %s", exc.reason_code.value, exc.message)
                await self._status(exc.message, StatusKind.ERROR, exc.tries_left)
        return reader

    async def _choose_reader(self, backend: SmartCardBackend, readers: list[str]) -> str | None:
        """The reader whose card names the user the client sent; None when ambiguous.

        Only certificates are read (no PIN): the user name or ``DOMAIN\\user``
        of the logon packet picks the card whose UPN names that user.
        """
        wanted = self.context.client_user.rpartition("\\")[2].partition("@")[0].casefold()
        if not wanted:
            return None
        matches = []
        for reader in readers:
            upn = await self._card_upn(backend, reader)
            if upn is not None and upn.partition("@")[0].casefold() == wanted:
                matches.append(reader)
        return matches[0] if len(matches) == 1 else None

    async def _card_upn(self, backend: SmartCardBackend, reader: str) -> str | None:
        try:
            link = await open_card(backend, reader)
        except CardLinkError:
            return None
        try:
            client = PivClient(BackendTransport(link, asyncio.get_running_loop()))

            def read() -> str | None:
                client.select()
                cert = read_sign_in_certificate(client)
                return extract_upn(cert)

            return await asyncio.to_thread(read)
        except (SignInRefused, RdscardError, ProtocolError):
            return None
        finally:
            await close_card(link)

    def _phase(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self._mark
        self._mark = now

    async def _wait_for_removal(self, backend: SmartCardBackend, reader: str) -> None:
        while any(r.name == reader for r in readers_with_card(backend.readers())):
            await backend.wait_for_reader_change()

    async def _attempt(self, backend: SmartCardBackend, reader: str,
                       pin: Secret, nla: bool = False) -> SignInOutcome:
        """One attempt by the logon service, over the logon's own line to the card."""
        ctx = self.context
        request = SignInRequest(
            client_address=ctx.session.peer, client_name=ctx.session.client_name,
            reader=reader, user_name=ctx.client_user, domain=ctx.client_domain,
        )
        session_id = ctx.session.session_id
        try:
            link = await open_card(backend, reader)
        except CardLinkError as exc:
            await ctx.gateway.sign_in(session_id, request, pin, None, card_error=str(exc))
            raise AssertionError("a sign-in without a card succeeded") from None
        try:
            signed = await ctx.gateway.sign_in(session_id, request, pin, link, nla=nla)
        finally:
            pin.wipe()
            await close_card(link)
        self.phases.update(signed.phases)
        self._mark = time.perf_counter()
        return signed

    async def _signed_in(self, reader: str) -> None:
        ctx = self.context
        card = self.signed_in
        assert card is not None
        session = ctx.session
        session.account, session.uid, session.gid = card.account, card.uid, card.gid
        session.user = card.upn or card.account
        session.upn = card.upn
        session.phase = "signed in"
        ctx.hand_over(card.uid, card.gid)
        if card.ccname:
            session.env["KRB5CCNAME"] = card.ccname
        ctx.log.info("signed in: %s as local account %s (certificate %s, serial %X)%s",
                     card.upn, card.account, card.subject, card.serial,
                     f", TGT for {card.principal}" if card.ccname else "")
        ctx.screen.set_status("Signed in with your smart card", StatusKind.SUCCESS)
        ctx.screen.set_tries_left(None)
        ctx.screen.show_signed_in(card.account, card.realm, card.expires, reader)
        await ctx.push_screen()
        self._phase("session")
        ctx.log.info("sign-in phases (ms): %s", ", ".join(
            f"{name}={seconds * 1000:.1f}" for name, seconds in self.phases.items()))
        await ctx.after_sign_in()
