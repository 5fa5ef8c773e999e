"""What only root may do for a session: the monitor's side of privilege separation.

One :class:`PrivilegedService` per server. With privilege separation it
lives in the monitor process and the network process reaches it through the
IPC (:mod:`rdscard.privsep.remote`); without, the server calls it in process
(:class:`rdscard.privsep.gateway.LocalGateway`). Either way the decisions
are taken here from its own records, never from what the caller claims: the
account of a session is the one its own sign-in proved, a desktop starts
only for a signed-in session, a ticket moves only between two sessions of
the same account.

- card sockets: ``socket_dir/session-N/pcscd.comm``, the directory 0700 and
  owned by the session's account once it signed in, the listening socket
  created here and handed over (SCM_RIGHTS);
- sign-in: the logon service (certificate checks, NTAuth, PIN, proof of
  possession, PKINIT) with the card reached through the caller's link, the
  audit log, the credential cache;
- desktops: the session leaders, their logoff and what a dead one left;
- encrypted folders (``[efs]``): the account's fscrypt key added in the
  sign-in's card session and removed when its last session ends or is locked
  (:mod:`rdscard.efs.keyring`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from rdscard.config import Config
from rdscard.desktop import xkb_layout_for
from rdscard.efs.keyring import EfsKeyring
from rdscard.efs.store import EnvelopeStore
from rdscard.errors import RdscardError
from rdscard.logon.audit import AuditLog, AuditRecord
from rdscard.logon.mapping import AccountMapper, AccountMapping
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.pkinit import PkinitResult, PkinitRunner, kdc_anchors, run_pkinit
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService, SignInRequest
from rdscard.logon.settings import AccountMode
from rdscard.logon.validation import CertificateValidator
from rdscard.pdu.credssp import subject_public_key
from rdscard.pki.piv_client import PivClient
from rdscard.pki.transport import Transport
from rdscard.privsep.ccache_files import remove_ccache, replace_ccache
from rdscard.protocol.credssp import CredSspServer, CredSspState, GssError
from rdscard.secret import Secret
from rdscard.server.pcsc_socket import SOCKET_NAME, session_directory
from rdscard.server.tls import certificate_paths, server_public_key
from rdscard.session.cleanup import CgroupTracker, end_all
from rdscard.session.leader_client import LeaderHandle, start_leader
from rdscard.session.spec import LeaderSpec

if TYPE_CHECKING:
    from rdscard.directory.accounts import CachedAccountSource
    from rdscard.directory.ntauth import NtAuthRefresher
    from rdscard.logon.gss import KerberosAcceptor

log = logging.getLogger("rdscard.monitor")

@dataclass(frozen=True)
class SignInOutcome:
    """A successful sign-in as the connection sees it (no secret, no key)."""

    account: str
    uid: int
    gid: int
    upn: str
    realm: str
    principal: str
    mode: str
    subject: str
    serial: int
    ccname: str = ""
    expires: datetime.datetime | None = None
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DesktopStarted:
    """Where a started desktop's X server is."""

    display: str
    cookie: bytes
    xauthority: str


@dataclass(frozen=True)
class CredSspOutcome:
    """One CredSSP step as the network process sees it: bytes to relay, never the PIN.

    ``status``: ``continue`` (send ``reply``, more to come), ``done`` (the
    client authenticated as ``principal``, mapped to ``account``, and
    delegated its smart card PIN, which stays here) or ``refused``
    (``message`` says why; send ``reply`` unless ``after_credentials``).
    """

    status: str
    reply: bytes = b""
    principal: str = ""
    account: str = ""
    message: str = ""
    after_credentials: bool = False


@dataclass
class _Nla:
    """A session's Network Level Authentication: the exchange, then what it delegated."""

    server: CredSspServer | None
    pin: Secret | None = None
    principal: str = ""
    account: str = ""
    reader: str = ""

    def forget(self) -> None:
        if self.pin is not None:
            self.pin.wipe()
            self.pin = None
        self.server = None


@dataclass
class _Session:
    session_id: int
    account: str = ""
    uid: int = 0
    gid: int = 0
    ccname: str = ""
    leader: LeaderHandle | None = None
    card_socket: bool = False
    nla: _Nla | None = None


class PrivilegedService:
    """The root-only work of every session of one server."""

    def __init__(self, config: Config, audit: AuditLog,
                 desktop_ended: Callable[[int, str], None]) -> None:
        self.config = config
        self.audit = audit
        self.desktop_ended = desktop_ended
        self._sessions: dict[int, _Session] = {}
        self.efs: EfsKeyring | None = None
        if config.efs.enabled:
            store = EnvelopeStore(config.efs.directory(config.server.state_dir))
            self.efs = EfsKeyring(store, busy_retry=config.efs.busy_retry)
        self._nla_credentials: object | None = None
        self._server_key: tuple[Path, float, bytes] | None = None
        #: held while the NTAuth store is read for a sign-in or rewritten by a refresh
        self.ntauth_lock = threading.Lock()
        self._refresher: NtAuthRefresher | None = None
        #: ``[directory] accounts``: the directory's users, with the monitor's short cache
        self.accounts: CachedAccountSource | None = None
        if config.directory.enabled and config.directory.accounts:
            from rdscard.directory.accounts import CachedAccountSource

            self.accounts = CachedAccountSource(config.directory)

    def start_directory_refresh(self) -> None:
        """``[directory]`` enabled: refresh the NTAuth store from it now and on a timer.

        The refresh runs in a thread of its own, never inside a sign-in; a sign-in
        reads the store under :attr:`ntauth_lock`, so it sees the old set or the
        new one, never half of a change.
        """
        if not self.config.directory.enabled or self._refresher is not None:
            return
        from rdscard.directory.ntauth import NtAuthRefresher

        store = NtAuthStore(self.config.logon.ntauth_directory(self.config.server.state_dir))
        self._refresher = NtAuthRefresher(self.config.directory, store, self.ntauth_lock)
        self._refresher.start()

    def _session(self, session_id: int) -> _Session:
        if not 0 < session_id < 1 << 31:
            raise RdscardError(f"no session {session_id}")
        record = self._sessions.get(session_id)
        if record is None:
            # Every record is a live session of the network process: more than it may
            # serve means it forgets to say when they end (or worse).
            if len(self._sessions) >= 2 * self.config.server.max_connections + 64:
                raise RdscardError("too many sessions: the oldest must end first")
            record = self._sessions[session_id] = _Session(session_id)
        return record

    def _signed_in(self, session_id: int) -> _Session:
        record = self._sessions.get(session_id)
        if record is None or not record.account:
            raise RdscardError(f"session {session_id} has not signed in")
        return record

    # -- card sockets ------------------------------------------------------------------
    def socket_path(self, session_id: int) -> Path:
        return session_directory(self.config.redirection.socket_dir, session_id) / SOCKET_NAME

    def open_card_socket(self, session_id: int) -> tuple[socket.socket, Path]:
        """A listening socket at the session's path, in its private directory."""
        record = self._session(session_id)
        base = self.config.redirection.socket_dir
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)
        directory = session_directory(base, session_id)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(directory).st_mode):
                raise RdscardError(f"{directory} exists and is not a directory: remove it")\
                    from None
        os.chmod(directory, 0o700)
        path = directory / SOCKET_NAME
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            os.chmod(path, 0o600)
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        record.card_socket = True
        self._give(record)
        return listener, path

    def close_card_socket(self, session_id: int) -> None:
        """Remove the session's socket directory (idempotent)."""
        record = self._sessions.get(session_id)
        if record is not None:
            record.card_socket = False
        shutil.rmtree(session_directory(self.config.redirection.socket_dir, session_id),
                      ignore_errors=True)

    def _give(self, record: _Session) -> None:
        """The socket directory and socket belong to the session's account (root before)."""
        directory = session_directory(self.config.redirection.socket_dir, record.session_id)
        for path in (directory, directory / SOCKET_NAME):
            with contextlib.suppress(FileNotFoundError):
                info = os.lstat(path)
                if (info.st_uid, info.st_gid) != (record.uid, record.gid):
                    os.chown(path, record.uid, record.gid, follow_symlinks=False)

    # -- sign-in ------------------------------------------------------------------------
    def card_refused(self, request: SignInRequest, message: str) -> SignInRefused:
        """The card could not be opened: audited as a card error."""
        refused = SignInRefused(ReasonCode.CARD_ERROR, f"{message}: insert the card again")
        self.audit.append(AuditRecord.refused(
            datetime.datetime.now(datetime.UTC), refused, client_address=request.client_address,
            client_name=request.client_name, reader=request.reader,
            mode=self.config.logon.mode.value))
        return refused

    # -- Network Level Authentication (MS-CSSP) --------------------------------------------
    def _public_key(self) -> bytes:
        """The server certificate's SubjectPublicKey, re-read when the file changes."""
        cfg = self.config.server
        path, _key = certificate_paths(cfg.state_dir, cfg.certificate, cfg.private_key,
                                       cfg.certificate_type)
        mtime = path.stat().st_mtime
        if self._server_key is None or self._server_key[:2] != (path, mtime):
            self._server_key = (path, mtime, subject_public_key(server_public_key(path)))
        return self._server_key[2]

    def _acceptor(self) -> KerberosAcceptor:
        from rdscard.logon.gss import KerberosAcceptor, acceptor_credentials

        nla = self.config.nla
        if self._nla_credentials is None:
            self._nla_credentials = acceptor_credentials(nla.keytab, nla.service_principal)
        return KerberosAcceptor(self._nla_credentials)  # type: ignore[arg-type]

    def credssp(self, session_id: int, data: bytes, client_address: str = "") -> CredSspOutcome:
        """One TSRequest of session ``session_id``'s CredSSP exchange (MS-CSSP 3.1.5).

        The security context and the delegated PIN stay here: the network
        process relays TLS-protected, GSS-sealed bytes only. A refusal is
        audited and costs no PIN try.
        """
        record = self._session(session_id)
        if not self.config.nla_active():
            return self._nla_refused(record, "Network Level Authentication is not offered",
                                     b"", client_address)
        if record.nla is None:
            try:
                record.nla = _Nla(CredSspServer(self._acceptor(), self._public_key()))
            except (GssError, OSError, ValueError) as exc:
                log.error("[session %d] NLA unavailable: %s", session_id, exc)
                return self._nla_refused(record, f"NLA unavailable: {exc}", b"",
                                         client_address)
        server = record.nla.server
        if server is None:
            return self._nla_refused(record, "a TSRequest after the exchange ended", b"",
                                     client_address)
        waiting_credentials = server.state is CredSspState.CREDENTIALS
        step = server.receive(data)
        if step.failure:
            return self._nla_refused(record, step.failure, step.reply, client_address,
                                     principal=server.client_principal,
                                     after_credentials=waiting_credentials)
        if step.credentials is None:
            return CredSspOutcome("continue", step.reply)
        principal = server.client_principal
        creds = step.credentials
        try:
            account = self._nla_account(principal)
        except SignInRefused as refused:
            creds.pin.wipe()
            return self._nla_refused(record, refused.message, b"", client_address,
                                     principal=principal, after_credentials=True)
        record.nla.forget()
        record.nla = _Nla(None, creds.pin, principal, account,
                          creds.csp_data.reader_name or "")
        log.info("[session %d] NLA: %s authenticated by Kerberos (account %s), smart card "
                 "credentials delegated", session_id, principal, account)
        return CredSspOutcome("done", step.reply, principal, account)

    def _nla_account(self, principal: str) -> str:
        """The account of an NLA client principal: through the directory with
        ``[directory] accounts``, as a card's UPN is, else by ``[logon]``'s tables."""
        mapper = AccountMapper(self.config.logon)
        if self.accounts is None:
            return mapper.account_for_principal(principal)
        from rdscard.directory.principals import account_for_principal

        return account_for_principal(principal, mapper, self.accounts,
                                     datetime.datetime.now(datetime.UTC))

    def _nla_refused(self, record: _Session, message: str, reply: bytes, client_address: str,
                     *, principal: str = "", after_credentials: bool = False) -> CredSspOutcome:
        if record.nla is not None:
            record.nla.forget()
        record.nla = _Nla(None)  # one exchange per connection
        refused = SignInRefused(ReasonCode.NLA_FAILED, message)
        self.audit.append(AuditRecord.refused(
            datetime.datetime.now(datetime.UTC), refused, client_address=client_address,
            principal=principal, mode=self.config.logon.mode.value))
        return CredSspOutcome("refused", reply, principal, message=message,
                              after_credentials=after_credentials)

    def nla_pending(self, session_id: int) -> bool:
        """Session ``session_id`` holds a PIN delegated by NLA, not used yet."""
        record = self._sessions.get(session_id)
        return record is not None and record.nla is not None and record.nla.pin is not None

    def sign_in(self, session_id: int, request: SignInRequest, pin: Secret,
                card: Transport, nla: bool = False) -> SignInOutcome:
        """One attempt (blocking: run it in a worker thread); the PIN is wiped.

        ``nla``: use the PIN the session's CredSSP exchange delegated (once)
        instead of ``pin``; the card must then name the authenticated user.
        """
        try:
            record = self._session(session_id)
            config = self.config
            if nla:
                delegated = record.nla
                if delegated is None or delegated.pin is None:
                    raise SignInRefused(ReasonCode.NLA_FAILED,
                                        "no credentials from Network Level Authentication")
                pin.wipe()
                pin, delegated.pin = delegated.pin, None
                request = replace(request, nla_principal=delegated.principal,
                                  nla_account=delegated.account)
            runner = self._pkinit_runner(session_id) \
                if config.logon.mode is AccountMode.KERBEROS else None
            with self.ntauth_lock:
                validator = CertificateValidator.from_config(config.logon,
                                                             config.server.state_dir)
            service = LogonService(config.logon, validator, audit=self.audit, pkinit=runner,
                                   accounts=self.accounts)
            step = self.efs.step(session_id) if self.efs is not None else None
            signed = service.sign_in(PivClient(card), pin, request, card_step=step)
        finally:
            pin.wipe()
        account = pwd.getpwnam(signed.account)
        if record.ccname and signed.tickets is not None and \
                record.ccname != signed.tickets.ccname:
            remove_ccache(record.ccname, config.redirection.socket_dir)
        record.account, record.uid, record.gid = account.pw_name, account.pw_uid, account.pw_gid
        record.ccname = signed.tickets.ccname if signed.tickets else ""
        self._give(record)
        tickets = signed.tickets
        return SignInOutcome(
            account=account.pw_name, uid=account.pw_uid, gid=account.pw_gid,
            upn=signed.upn or "", realm=signed.realm or "",
            principal=(tickets.principal if tickets else signed.principal) or "",
            mode=signed.mode.value, subject=signed.certificate.subject,
            serial=signed.certificate.serial, ccname=record.ccname,
            expires=tickets.expires if tickets else None, phases=dict(signed.phases))

    def _pkinit_runner(self, session_id: int) -> PkinitRunner:
        """Kerberos mode: a TGT by PKINIT with the session's redirected card (worker thread)."""
        config = self.config
        record = self._session(session_id)
        base = config.redirection.socket_dir / "krb5"
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o711)
        with self.ntauth_lock:
            anchors = kdc_anchors(config.logon, config.server.state_dir)
            issuers = NtAuthStore(config.logon.ntauth_directory(
                config.server.state_dir)).certificates()

        def run(mapping: AccountMapping, pin: Secret,
                card_roots: Sequence[x509.Certificate] = ()) -> PkinitResult:
            if mapping.principal is None or not record.card_socket:
                pin.wipe()
                raise SignInRefused(ReasonCode.KINIT_FAILED,
                                    "no Kerberos principal or no redirected card for PKINIT")
            account = pwd.getpwnam(mapping.account)
            # kinit runs as root (it reads the trust anchors of the state
            # directory); the credential cache is then handed to the account.
            return run_pkinit(
                mapping.principal, pin, config.logon.kdc, ccache_base=base, anchors=anchors,
                enterprise=mapping.enterprise, realm=mapping.realm,
                pcsc_socket=str(self.socket_path(session_id)),
                uid=account.pw_uid, gid=account.pw_gid, card_roots=card_roots,
                kdc_issuers=issuers,
            )

        return run

    # -- desktops ------------------------------------------------------------------------
    async def start_desktop(self, session_id: int, *, width: int, height: int,
                            keyboard_layout: int, client_address: str) -> DesktopStarted:
        """Start the desktop of the account signed in on ``session_id``."""
        record = self._signed_in(session_id)
        if record.leader is not None:
            raise RdscardError(f"session {session_id} has a desktop already")
        if not (0 < width <= 8192 and 0 < height <= 8192):
            raise RdscardError(f"no desktop of {width}x{height} pixels")
        cfg = self.config.sessions
        layout, variant = xkb_layout_for(keyboard_layout & 0xFFFFFFFF)
        env = {"PCSCLITE_CSOCK_NAME": str(self.socket_path(session_id))}
        if record.ccname:
            env["KRB5CCNAME"] = record.ccname
        spec = LeaderSpec(
            session_id=session_id, account=record.account, pam_service=cfg.pam_service,
            client_address=client_address, width=width, height=height,
            x_server=cfg.x_server, display_range=cfg.display_range,
            keyboard_layout=layout, keyboard_variant=variant, command=cfg.command, env=env,
            runtime_dir=str(self.config.redirection.socket_dir / f"desktop-{session_id}"),
        )
        leader = await start_leader(spec, timeout=cfg.start_timeout)
        record.leader = leader
        leader.ended.add_done_callback(lambda f: self._leader_ended(record, leader, f))
        return DesktopStarted(leader.display, leader.cookie, str(leader.xauthority))

    def _leader_ended(self, record: _Session, leader: LeaderHandle,
                      ended: asyncio.Future[str]) -> None:
        if record.leader is not leader:
            return
        reason = ended.result() if not ended.cancelled() and ended.exception() is None \
            else "the session leader ended"
        self.desktop_ended(record.session_id, reason)

    async def end_desktop(self, session_id: int) -> str:
        """Log the desktop off; ends what a dead leader left behind. The reason it ended."""
        record = self._sessions.get(session_id)
        leader = record.leader if record is not None else None
        if record is None or leader is None:
            return "no desktop"
        try:
            reason = await leader.logoff(timeout=10.0)
        except Exception:
            log.exception("[session %d] the session leader failed to log off", session_id)
            reason = "the session leader failed to log off"
        if leader.process.returncode not in (0, None):
            left = await asyncio.to_thread(end_orphaned_session, leader)
            log.warning("[session %d] the session leader died: ended %d process(es) it left "
                        "behind; its PAM session could not be closed", session_id, left)
        record.leader = None
        return reason

    def session_view(self, session_id: int) -> dict[str, Any]:
        """Who a program run in the session is, by this side's records (for session exec)."""
        record = self._sessions.get(session_id)
        if record is None or not record.account:
            root = pwd.getpwuid(0)
            view: dict[str, Any] = {"account": root.pw_name, "uid": 0, "gid": 0, "env": {}}
        else:
            view = {"account": record.account, "uid": record.uid, "gid": record.gid, "env": {}}
        env: dict[str, str] = view["env"]
        if record is not None and (record.card_socket or record.leader is not None):
            env["PCSCLITE_CSOCK_NAME"] = str(self.socket_path(session_id))
        if record is not None and record.ccname:
            env["KRB5CCNAME"] = record.ccname
        if record is not None and record.leader is not None:
            env["DISPLAY"] = record.leader.display
            env["XAUTHORITY"] = str(record.leader.xauthority)
        return view

    # -- moves and ends --------------------------------------------------------------------
    def take_over(self, old_session_id: int, new_session_id: int) -> None:
        """The new sign-in's tickets replace the old session's (same account only)."""
        old, new = self._signed_in(old_session_id), self._signed_in(new_session_id)
        if old.account != new.account or old is new:
            raise RdscardError(f"session {new_session_id} ({new.account}) cannot take over "
                               f"session {old_session_id} ({old.account})")
        if self.efs is not None:
            self.efs.move(new_session_id, old_session_id)
        if new.ccname and old.ccname and new.ccname != old.ccname:
            replace_ccache(new.ccname, old.ccname, old.uid, old.gid)
            new.ccname = ""
        elif new.ccname and not old.ccname:
            old.ccname, new.ccname = new.ccname, ""

    def session_locked(self, session_id: int) -> None:
        """The card removal policy locked (or logs off) the session: its key claim ends."""
        if self.efs is not None:
            self.efs.release(session_id, "the card was removed")

    def session_ended(self, session_id: int) -> None:
        """Forget a session: its socket directory, credential cache and key claim go."""
        if self.efs is not None:
            self.efs.release(session_id, "logged off")
        record = self._sessions.pop(session_id, None)
        self.close_card_socket(session_id)
        if record is not None and record.nla is not None:
            record.nla.forget()
        if record is not None:
            remove_ccache(record.ccname, self.config.redirection.socket_dir)
            if record.leader is not None:
                asyncio.get_running_loop().create_task(self.end_desktop_of(record))

    async def end_desktop_of(self, record: _Session) -> None:
        self._sessions[record.session_id] = record
        try:
            await self.end_desktop(record.session_id)
        finally:
            self._sessions.pop(record.session_id, None)

    async def close_all(self) -> None:
        """Server shutdown: every desktop is logged off, every socket removed."""
        for session_id in list(self._sessions):
            with contextlib.suppress(Exception):
                await self.end_desktop(session_id)
            self.session_ended(session_id)
        if self.efs is not None:
            self.efs.lock_all()
        if self._refresher is not None:
            self._refresher.stop()
            self._refresher = None


def describe_phases(phases: dict[str, float]) -> str:
    """The JSON text of sign-in phases (seconds by name)."""
    return json.dumps({str(k): float(v) for k, v in phases.items()})


def end_orphaned_session(leader: LeaderHandle) -> int:
    """End what a dead leader left: its session's cgroup, and the groups it started.

    Only the cgroup the leader said it used (another server's sessions may
    have the same ids); the X server and the session command lead process
    groups of their own. Returns how many processes were signalled.
    """
    count = 0
    if leader.cgroup is not None and (leader.cgroup / "cgroup.procs").is_file():
        tracker = CgroupTracker(leader.cgroup)
        count += len(tracker.members())
        end_all(tracker)
        tracker.close()
    for group in (leader.x_pid, leader.command_pid):
        if group:
            with contextlib.suppress(OSError):
                os.killpg(group, 9)
                count += 1
    return count
