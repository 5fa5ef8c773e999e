"""Both ends of the privileged work over the monitor IPC.

:class:`RemoteGateway` is the network process's :class:`~rdscard.privsep.gateway.Gateway`:
each call is one request to the monitor. During a sign-in the monitor asks
back for the APDUs of the logon service (:class:`ipc.Transmit`), which the
network process sends to the card link it registered for that attempt.
:class:`MonitorHandler` is the monitor's side: it answers each request with
:class:`~rdscard.privsep.privileged.PrivilegedService`, which decides from
its own records.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from rdscard.errors import RdscardError
from rdscard.logon.card_link import MAX_RESPONSE, CardLink, CardLinkError
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import SignInRequest
from rdscard.privsep import ipc
from rdscard.privsep.channel import IpcChannel, Reply
from rdscard.privsep.gateway import LeaderLink, run_sign_in
from rdscard.privsep.privileged import (
    CredSspOutcome,
    DesktopStarted,
    PrivilegedService,
    SignInOutcome,
    describe_phases,
)
from rdscard.redirect.backend import ScardError
from rdscard.secret import Secret

log = logging.getLogger("rdscard.privsep")
TRANSMIT_TIMEOUT = 30.0


M = TypeVar("M", bound=ipc.Message)


def _expect(reply: Reply, kind: type[M]) -> M:
    message, fds = reply
    if not isinstance(message, kind):
        for sock in fds:
            sock.close()
        raise RdscardError(f"the monitor answered {type(message).__name__}, "
                           f"not {kind.__name__}")
    return message


class RemoteLeader:
    """A desktop whose leader the monitor keeps."""

    def __init__(self, gateway: RemoteGateway, session_id: int,
                 started: DesktopStarted) -> None:
        self.gateway = gateway
        self.session_id = session_id
        self.started = started
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def logoff(self) -> str:
        try:
            reply = await self.gateway.channel.request(ipc.EndDesktop(self.session_id))
            reason = _expect(reply, ipc.Done).text
        except RdscardError as exc:
            reason = f"the monitor could not log the session off: {exc}"
        if not self.ended.done():
            self.ended.set_result(reason)
        return self.ended.result()


class RemoteGateway:
    """The network process's gateway: every privileged call is a request to the monitor."""

    def __init__(self, sock: socket.socket) -> None:
        self.channel = IpcChannel(sock, self._handle, peer="monitor")
        self._links: dict[int, CardLink] = {}
        self._link_ids = itertools.count(1)
        self._leaders: dict[int, RemoteLeader] = {}
        #: Answers a control request line (the server's ControlServer.answer).
        self.control: Callable[[bytes], Awaitable[dict[str, Any]]] | None = None

    def start(self) -> None:
        self.channel.start()

    async def _handle(self, message: ipc.Message, _fds: list[socket.socket]) -> Reply | None:
        if isinstance(message, ipc.Transmit):
            link = self._links.get(message.link_id)
            if link is None:
                return ipc.Failed("no such card link"), []
            try:
                _, response = await link.backend.transmit(
                    link.handle, link.protocol, message.apdu, MAX_RESPONSE)
            except ScardError as exc:
                return ipc.Failed(f"the card in {link.reader!r} stopped answering: {exc}"), []
            return ipc.TransmitReply(response), []
        if isinstance(message, ipc.ControlRequest):
            if self.control is None:
                return ipc.Failed("the server is starting"), []
            return ipc.ControlReply(fit_answer(await self.control(message.line.encode()))), []
        if isinstance(message, ipc.DesktopEnded):
            leader = self._leaders.get(message.session_id)
            if leader is not None and not leader.ended.done():
                leader.ended.set_result(message.reason)
            return None
        raise RdscardError(f"the network process takes no {type(message).__name__}")

    async def open_card_socket(self, session_id: int) -> tuple[socket.socket, Path]:
        message, fds = await self.channel.request(ipc.OpenCardSocket(session_id))
        if not isinstance(message, ipc.Done) or len(fds) != 1:
            for sock in fds:
                sock.close()
            raise RdscardError("the monitor sent no card socket")
        return fds[0], Path(message.text)

    async def close_card_socket(self, session_id: int) -> None:
        _expect(await self.channel.request(ipc.CloseCardSocket(session_id)), ipc.Done)

    async def credssp(self, session_id: int, data: bytes,
                      client_address: str) -> CredSspOutcome:
        try:
            reply = _expect(await self.channel.request(
                ipc.CredSsp(session_id, client_address[:256], data)), ipc.CredSspReply)
        except RdscardError as exc:
            return CredSspOutcome("refused", message=f"the logon service failed: {exc}")
        return CredSspOutcome(reply.status, reply.reply, reply.principal, reply.account,
                              reply.message, reply.after_credentials)

    async def sign_in(self, session_id: int, request: SignInRequest, pin: Secret,
                      card: CardLink | None, card_error: str = "",
                      nla: bool = False) -> SignInOutcome:
        link_id = next(self._link_ids)
        if card is not None:
            self._links[link_id] = card
        try:
            message = ipc.SignIn(
                session_id=session_id, link_id=link_id, client_address=request.client_address,
                client_name=request.client_name, reader=request.reader,
                user_name=request.user_name, domain=request.domain,
                card_error=card_error if card is None else "", nla=nla, pin=pin)
            try:
                reply, fds = await self.channel.request(message)
            finally:
                pin.wipe()
        except RdscardError as exc:
            raise SignInRefused(ReasonCode.CARD_ERROR,
                                f"the logon service failed ({exc}): try again") from None
        finally:
            self._links.pop(link_id, None)
        for sock in fds:
            sock.close()
        if isinstance(reply, ipc.RefusedReply):
            try:
                code = ReasonCode(reply.reason_code)
            except ValueError:
                code = ReasonCode.CARD_ERROR
            raise SignInRefused(code, reply.message,
                                tries_left=reply.tries_left if reply.tries_left >= 0 else None)
        if not isinstance(reply, ipc.SignedInReply):
            raise SignInRefused(ReasonCode.CARD_ERROR,
                                "the logon service answered nonsense: try again")
        return outcome_of(reply)

    async def start_desktop(self, session_id: int, *, width: int, height: int,
                            keyboard_layout: int, client_address: str) -> LeaderLink:
        reply = await self.channel.request(ipc.StartDesktop(
            session_id, width, height, keyboard_layout, client_address))
        started = _expect(reply, ipc.DesktopReply)
        leader = RemoteLeader(self, session_id,
                              DesktopStarted(started.display, started.cookie, started.xauthority))
        self._leaders[session_id] = leader
        leader.ended.add_done_callback(lambda _f: self._leaders.pop(session_id, None))
        return leader

    async def take_over(self, old_session_id: int, new_session_id: int) -> None:
        _expect(await self.channel.request(ipc.TakeOver(old_session_id, new_session_id)),
                ipc.Done)

    def session_ended(self, session_id: int) -> None:
        self.channel.notify(ipc.SessionEnded(session_id))

    def session_locked(self, session_id: int) -> None:
        self.channel.notify(ipc.SessionLocked(session_id))


def fit_answer(answer: dict[str, Any]) -> bytes:
    """The JSON of a control answer within the IPC's bounds (a long list is cut, and says so)."""
    data = json.dumps(answer, separators=(",", ":")).encode()
    sessions = answer.get("sessions")
    while len(data) > ipc.MAX_BYTES and isinstance(sessions, list) and sessions:
        sessions = sessions[:len(sessions) * 3 // 4]
        data = json.dumps({**answer, "sessions": sessions, "truncated": True},
                          separators=(",", ":")).encode()
    if len(data) > ipc.MAX_BYTES:
        data = b'{"error":"the answer is too long"}'
    return data


def outcome_of(reply: ipc.SignedInReply) -> SignInOutcome:
    """The network side's record of a sign-in the monitor accepted."""
    try:
        raw = json.loads(reply.phases) if reply.phases else {}
        phases = {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    except (ValueError, TypeError):
        phases = {}
    expires = datetime.datetime.fromtimestamp(reply.expires, datetime.UTC) \
        if reply.expires > 0 else None
    try:
        serial = int(reply.serial, 16)
    except ValueError:
        serial = 0
    return SignInOutcome(
        account=reply.account, uid=reply.uid, gid=reply.gid, upn=reply.upn, realm=reply.realm,
        principal=reply.principal, mode=reply.mode, subject=reply.subject, serial=serial,
        ccname=reply.ccname, expires=expires, phases=phases)


class _RemoteCard:
    """The logon service's transport in the monitor: each APDU a request to the network."""

    def __init__(self, channel: IpcChannel, link_id: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.channel = channel
        self.link_id = link_id
        self.loop = loop

    def transmit(self, apdu: bytes) -> bytes:
        future = asyncio.run_coroutine_threadsafe(
            self.channel.request(ipc.Transmit(self.link_id, bytes(apdu))), self.loop)
        try:
            reply = future.result(TRANSMIT_TIMEOUT)
        except RdscardError as exc:
            raise CardLinkError(str(exc)) from None
        except TimeoutError:
            future.cancel()
            raise CardLinkError("the card did not answer in time") from None
        message, _fds = reply
        if not isinstance(message, ipc.TransmitReply):
            raise CardLinkError("the network process answered nonsense")
        return message.response


class MonitorHandler:
    """The monitor's answers to the network process."""

    def __init__(self, service: PrivilegedService, sock: socket.socket) -> None:
        self.service = service
        self.channel = IpcChannel(sock, self._handle, peer="network process")
        service.desktop_ended = self._desktop_ended

    def _desktop_ended(self, session_id: int, reason: str) -> None:
        self.channel.notify(ipc.DesktopEnded(session_id, reason[:ipc.MAX_TEXT // 4]))

    async def _handle(self, message: ipc.Message, _fds: list[socket.socket]) -> Reply | None:
        service = self.service
        match message:
            case ipc.OpenCardSocket(session_id=session_id):
                listener, path = service.open_card_socket(session_id)
                return ipc.Done(str(path)), [listener]
            case ipc.CloseCardSocket(session_id=session_id):
                service.close_card_socket(session_id)
                return ipc.Done(""), []
            case ipc.SignIn():
                return await self._sign_in(message), []
            case ipc.CredSsp():
                outcome = await asyncio.to_thread(
                    service.credssp, message.session_id, message.data, message.client_address)
                return ipc.CredSspReply(outcome.status, outcome.reply, outcome.principal,
                                        outcome.account, outcome.message[:1000],
                                        outcome.after_credentials), []
            case ipc.StartDesktop():
                started = await service.start_desktop(
                    message.session_id, width=message.width, height=message.height,
                    keyboard_layout=message.keyboard_layout,
                    client_address=message.client_address)
                return ipc.DesktopReply(started.display, started.cookie, started.xauthority), []
            case ipc.EndDesktop(session_id=session_id):
                return ipc.Done(await service.end_desktop(session_id)), []
            case ipc.TakeOver(old_session_id=old, new_session_id=new):
                service.take_over(old, new)
                return ipc.Done(""), []
            case ipc.SessionEnded(session_id=session_id):
                service.session_ended(session_id)
                return None
            case ipc.SessionLocked(session_id=session_id):
                service.session_locked(session_id)
                return None
        raise RdscardError(f"the monitor takes no {type(message).__name__}")

    async def _sign_in(self, message: ipc.SignIn) -> ipc.Message:
        request = SignInRequest(
            client_address=message.client_address, client_name=message.client_name,
            reader=message.reader, user_name=message.user_name, domain=message.domain)
        try:
            if message.card_error:
                message.pin.wipe()
                raise self.service.card_refused(request, message.card_error)
            card = _RemoteCard(self.channel, message.link_id, asyncio.get_running_loop())
            outcome = await run_sign_in(self.service, message.session_id, request,
                                        message.pin, card, message.nla)
        except SignInRefused as refused:
            return ipc.RefusedReply(refused.reason_code.value, refused.message,
                                    -1 if refused.tries_left is None else refused.tries_left)
        finally:
            message.pin.wipe()
        return ipc.SignedInReply(
            account=outcome.account, uid=outcome.uid, gid=outcome.gid, upn=outcome.upn,
            realm=outcome.realm, principal=outcome.principal, mode=outcome.mode,
            subject=outcome.subject, serial=f"{outcome.serial:X}", ccname=outcome.ccname,
            expires=outcome.expires.timestamp() if outcome.expires else 0.0,
            phases=describe_phases(outcome.phases))
