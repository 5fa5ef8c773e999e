"""A connection's sign-in: its credentials from NLA or the Client Info PDU, and its flow.

A client proves who it is in one of two places: Network Level
Authentication (CredSSP, MS-RDPBCGR 5.4.5.2), whose TSRequests are relayed
to the logon service and whose delegated smart card credentials stay there,
or the Client Info PDU (2.2.1.11), whose smart card PIN
(INFO_PASSWORD_IS_SC_PIN) is kept for the logon service alone.
:class:`SignIn` keeps what either gave and, once the session is active,
runs the sign-in flow (:class:`~rdscard.server.logon_flow.LogonFlow`) with
the session's redirected smart card, the logon screen and the connection's
ways to end itself (the card removal policy), and ends the connection when
no sign-in succeeds within ``server.logon_timeout``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rdscard.pdu.share import ErrorInfo
from rdscard.pdu.x224 import Protocol
from rdscard.protocol.events import ClientInfoReceived, CredSspReceived, Phase
from rdscard.redirect.backend import SmartCardBackend
from rdscard.screen import PinSubmitted, ScreenAction
from rdscard.secret import Secret
from rdscard.server.logon_flow import LogonContext, LogonFlow

if TYPE_CHECKING:
    from rdscard.server.connection import Connection


class SignIn:
    """The sign-in of one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        #: Network Level Authentication succeeded: the principal and its account.
        self.nla_principal = ""
        self.nla_account = ""
        self.client_pin: Secret | None = None
        self.client_user = ""
        self.client_domain = ""
        self.logon: LogonFlow | None = None
        self._timer: asyncio.TimerHandle | None = None

    def signed_in_once(self) -> bool:
        """True once a sign-in on this connection has succeeded."""
        return self.logon is not None and self.logon.ever_signed_in

    def start_timer(self, timeout: float) -> None:
        """Close the connection unless a sign-in succeeds within ``timeout`` seconds."""
        self._timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def stop_timer(self) -> None:
        """No logon timeout (the connection is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        """``server.logon_timeout``: no sign-in yet, so the session ends (ERRINFO_LOGON_TIMEOUT)."""
        self._timer = None
        conn = self.connection
        if self.signed_in_once() or conn.acceptor.phase is not Phase.ACTIVE:
            return  # still connecting: the run loop's deadline, no later than this, ends it
        conn.close_with(
            ErrorInfo.ERRINFO_LOGON_TIMEOUT,
            f"no sign-in within {conn.context.config.server.logon_timeout:.0f} s "
            "(server.logon_timeout)",
        )

    async def on_credssp(self, event: CredSspReceived) -> None:
        """Relay one TSRequest to the logon service and its answer to the client.

        The security context, and the PIN it unseals, live with the logon
        service (the monitor with privilege separation): this process sees
        TLS plaintext that is still GSS-sealed.
        """
        conn = self.connection
        outcome = await conn.context.gateway.credssp(
            conn.info.session_id, event.data, conn.info.peer)
        if outcome.status == "continue":
            conn.acceptor.credssp_send(outcome.reply)
        elif outcome.status == "done":
            self.nla_principal, self.nla_account = outcome.principal, outcome.account
            conn.log.info("NLA: authenticated as %s (account %s); smart card credentials "
                          "delegated", outcome.principal, outcome.account)
            conn.acceptor.credssp_finished()
        else:
            # MS-RDPBCGR 2.2.10.2: after the credentials, a HYBRID_EX client is told
            # ACCESS_DENIED in the Early User Authorization Result.
            early = outcome.after_credentials and \
                conn.acceptor.selected_protocol == Protocol.HYBRID_EX
            conn.log.warning("NLA refused%s%s: %s",
                             f" ({outcome.principal})" if outcome.principal else "",
                             ", answered ACCESS_DENIED" if early else "", outcome.message)
            conn.acceptor.credssp_refused(outcome.reply,
                                          after_credentials=outcome.after_credentials)
        conn.info.phase = conn.acceptor.phase.value

    def on_client_info(self, event: ClientInfoReceived) -> None:
        """Log the Client Info PDU (never its password or PIN)."""
        conn = self.connection
        info = event.info
        conn.info.user = info.user_name
        credential = "smart card PIN" if info.password_is_smart_card_pin else "password"
        has_secret = len(info.password) > 0
        conn.log.info(
            "client info: user %r, domain %r, %s %s", info.user_name, info.domain,
            credential, "supplied" if has_secret else "not supplied",
        )
        if self.nla_principal:
            info.password.wipe()  # NLA delegated the PIN: it is verified once, from there
        elif info.password_is_smart_card_pin and has_secret:
            self.client_pin = info.password  # for the logon service alone, wiped after use
        else:
            info.password.wipe()  # a password is no use to smart card sign-in
        self.client_user, self.client_domain = info.user_name, info.domain
        conn.info.phase = Phase.CAPABILITIES.value

    def start(self) -> None:
        """Run the sign-in flow of this session in the background."""
        conn = self.connection
        assert conn.display is not None
        context = LogonContext(
            session=conn.info,
            log=conn.log,
            screen=conn.display,
            push_screen=conn.push_screen,
            wait_for_backend=self.wait_for_backend,
            config=conn.context.config.logon,
            gateway=conn.context.gateway,
            client_user=self.client_user,
            client_domain=self.client_domain,
            hand_over=self.hand_over_card,
            end_session=self.end_session,
            after_sign_in=conn.desktop.signed_in,
            on_lock=conn.desktop.lock,
        )
        self.logon = LogonFlow(context, self.client_pin, nla=bool(self.nla_principal))
        self.client_pin = None
        conn.run_in_background(self._run(self.logon))

    async def _run(self, flow: LogonFlow) -> None:
        try:
            await flow.run()
        except (ConnectionError, OSError):
            pass
        except Exception:
            self.connection.log.exception("the sign-in flow failed")

    def end_session(self, logoff: bool) -> None:
        """End the session from the server side (card removal policy), with the reason."""
        conn = self.connection
        if logoff:
            conn.desktop.logoff("the smart card was removed (card removal policy logoff)")
        conn.close_with(
            ErrorInfo.ERRINFO_RPC_INITIATED_LOGOFF if logoff
            else ErrorInfo.ERRINFO_RPC_INITIATED_DISCONNECT,
            "card removal policy " + ("logoff" if logoff else "disconnect"),
        )

    def hand_over_card(self, uid: int, gid: int) -> None:
        """Give the session's smart card socket to the account that signed in."""
        hand_over = getattr(self.connection.channels.get("rdpdr"), "hand_over", None)
        if hand_over is not None:
            hand_over(uid, gid)

    async def wait_for_backend(self, timeout: float) -> SmartCardBackend | None:
        """The session's redirected smart card, once the client announces it (or None)."""
        channel = self.connection.channels.get("rdpdr")
        ready = getattr(channel, "device_ready", None)
        if ready is None:
            return None  # the client joined no rdpdr channel: no card will come
        try:
            async with asyncio.timeout(timeout):
                await ready.wait()
        except TimeoutError:
            return None
        backend: SmartCardBackend | None = getattr(channel, "backend", None)
        return backend

    def on_screen_actions(self, actions: list[ScreenAction]) -> None:
        """Hand typed PINs to the sign-in flow."""
        for action in actions:
            if isinstance(action, PinSubmitted):
                if self.logon is not None:
                    self.logon.submit_pin(action.pin)
                else:
                    action.pin.wipe()

    async def close(self) -> None:
        """The connection is over: close the sign-in flow."""
        if self.logon is not None:
            await self.logon.close()
