"""The logon service (the project's "LSA"): one sign-in attempt from card to account.

:meth:`LogonService.sign_in` runs the steps of the seed in order, stopping at
the first refusal, and writes one audit record per attempt:

1. select the PIV application and read the sign-in certificate (slot 9A);
2. validate it (:mod:`rdscard.logon.validation`);
3. map its UPN, with the user's hint, to the account and realm
   (:mod:`rdscard.logon.mapping`) - before the PIN, so that a sign-in that
   cannot succeed never spends a PIN try; with a directory as the source of
   accounts (:mod:`rdscard.directory.accounts`), the UPN's user object names
   the account and a disabled, locked out or expired one is refused here;
4. verify the PIN once (:func:`~rdscard.logon.challenge.verify_pin_once`);
5. prove possession of the key (:func:`~rdscard.logon.challenge.prove_possession`);
6. in ``kerberos`` mode, PKINIT through the injected worker
   (:func:`~rdscard.logon.pkinit.run_pkinit` in production); with
   ``[logon.kdc] card_roots`` the roots the card carries are read before the
   PIN and handed to it (:mod:`rdscard.logon.card_roots`).

The PIN arrives as a :class:`~rdscard.secret.Secret` and is wiped before
:meth:`sign_in` returns, whatever happened. Time and randomness are injected.
The card is reached through a :class:`PivClient`, so the same code serves an
in-process card, pcscd, or a session's redirected reader.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from cryptography import x509

from rdscard.errors import ProtocolError
from rdscard.logon.audit import AuditLog, AuditRecord, AuditResult, serial_hex
from rdscard.logon.card_roots import card_roots
from rdscard.logon.challenge import (
    PinCheck,
    prove_possession,
    read_sign_in_certificate,
    verify_pin_once,
)
from rdscard.logon.mapping import AccountMapper, AccountMapping, Hint
from rdscard.logon.pkinit import PkinitResult, PkinitRunner
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import AccountMode, LogonConfig
from rdscard.logon.validation import CertificateValidator, ValidatedCertificate
from rdscard.pki.piv_client import PivClient, PivError
from rdscard.pki.transport import TransportError
from rdscard.secret import Secret

if TYPE_CHECKING:
    from rdscard.directory.accounts import AccountSource

PHASES: Final = ("certificate read", "validation", "mapping", "EFS check", "PIN verify",
                 "proof of possession", "EFS unlock", "PKINIT")


class CardStep(Protocol):
    """More work with the card in the sign-in's card session (the encrypted folder's key).

    ``before_pin`` runs once the account is known and before the PIN is used
    (it may refuse without spending a PIN try); ``after_pin`` after the proof
    of possession, while the PIN is still verified in this card session;
    ``undo`` when a later step refuses the sign-in. Each raises
    :class:`SignInRefused` to refuse.
    """

    def before_pin(self, client: PivClient, account: str) -> None: ...

    def after_pin(self, client: PivClient) -> None: ...

    def undo(self) -> None: ...

    #: seconds of the card operation ``after_pin`` made (reported as a phase of its own)
    card_seconds: float


@dataclass(frozen=True)
class SignInRequest:
    """What the connection knows about the attempt (all from the client, none secret)."""

    client_address: str = ""
    client_name: str = ""
    reader: str = ""
    user_name: str = ""
    domain: str = ""
    #: Network Level Authentication: the Kerberos client principal that delegated the
    #: PIN, and the account it maps to. The card's UPN must map to the same account.
    nla_principal: str = ""
    nla_account: str = ""


@dataclass(frozen=True)
class SignedIn:
    """A successful sign-in; ``phases`` are seconds spent per step (for benchmarks)."""

    account: str
    upn: str | None
    realm: str | None
    principal: str | None
    mode: AccountMode
    certificate: ValidatedCertificate
    pin: PinCheck
    tickets: PkinitResult | None
    phases: dict[str, float] = field(default_factory=dict)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LogonService:
    """Signs users in with their smart card according to a :class:`LogonConfig`."""

    def __init__(
        self,
        config: LogonConfig,
        validator: CertificateValidator,
        *,
        mapper: AccountMapper | None = None,
        audit: AuditLog | None = None,
        pkinit: PkinitRunner | None = None,
        accounts: AccountSource | None = None,
        clock: Callable[[], datetime.datetime] = _utcnow,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if config.mode is AccountMode.KERBEROS and pkinit is None:
            raise ValueError("kerberos mode needs a PKINIT runner")
        self.config = config
        self.validator = validator
        self.mapper = mapper or AccountMapper(config)
        self.audit = audit
        self.pkinit = pkinit
        self.accounts = accounts
        self.clock = clock
        self.rng = rng

    def sign_in(self, client: PivClient, pin: Secret,
                request: SignInRequest = SignInRequest(), *,
                card_step: CardStep | None = None) -> SignedIn:
        """One attempt; raises :class:`SignInRefused` (audited) or returns :class:`SignedIn`.

        ``card_step``: more work with the card in the same card session (see
        :class:`CardStep`), refused or done as part of this attempt.
        """
        fields = {"client_address": request.client_address, "client_name": request.client_name,
                  "reader": request.reader, "mode": self.config.mode.value}
        phases: dict[str, float] = {}
        mark = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[name] = now - mark
            mark = now

        try:
            try:
                client.select()
            except (PivError, ProtocolError, TransportError) as exc:
                raise SignInRefused(
                    ReasonCode.CARD_ERROR,
                    f"the card in {request.reader or 'the reader'} cannot be used ({exc}): "
                    "insert a PIV smart card",
                ) from None
            cert = read_sign_in_certificate(client)
            lap("certificate read")
            valid = self.validator.validate(cert, now=self.clock())
            fields.update(subject=valid.subject, issuer=valid.issuer,
                          serial=serial_hex(valid.serial), upn=valid.upn or "")
            lap("validation")
            if self.accounts is not None:
                mapping = self._directory_mapping(valid, fields)
            else:
                mapping = self.mapper.map(valid.upn,
                                          Hint.parse(request.user_name, request.domain))
            fields.update(account=mapping.account,
                          principal=request.nla_principal or mapping.principal or "")
            if request.nla_principal and mapping.account != request.nla_account:
                raise SignInRefused(
                    ReasonCode.NLA_MISMATCH,
                    f"the card's certificate ({valid.upn}) maps to the account "
                    f"{mapping.account}, but the client authenticated as "
                    f"{request.nla_principal} ({request.nla_account}): sign in with your own "
                    "card")
            lap("mapping")
            if card_step is not None:
                card_step.before_pin(client, mapping.account)
                lap("EFS check")
            kerberos = self.pkinit is not None and mapping.mode is AccountMode.KERBEROS
            roots = self._card_roots(client, request) if kerberos and \
                self.config.kdc.card_roots else ()
            kinit_pin = Secret(pin.reveal()) if kerberos else None
            try:
                checked = verify_pin_once(client, pin)
                lap("PIN verify")
                prove_possession(client, cert, rng=self.rng)
                lap("proof of possession")
                if card_step is not None:
                    card_step.after_pin(client)
                    lap("EFS unlock")
                    phases["EFS card operation"] = card_step.card_seconds
                tickets: PkinitResult | None = None
                if kinit_pin is not None and self.pkinit is not None:
                    try:
                        tickets = self.pkinit(mapping, kinit_pin, roots) if roots \
                            else self.pkinit(mapping, kinit_pin)
                    except BaseException:
                        if card_step is not None:
                            card_step.undo()
                        raise
                    lap("PKINIT")
            finally:
                if kinit_pin is not None:
                    kinit_pin.wipe()
        except SignInRefused as refusal:
            self._audit(AuditRecord.refused(self.clock(), refusal, **fields))
            raise
        finally:
            pin.wipe()
        self._audit(AuditRecord(time=self.clock(), result=AuditResult.SUCCESS, **fields))
        return SignedIn(account=mapping.account, upn=valid.upn, realm=mapping.realm,
                        principal=tickets.principal if tickets else mapping.principal,
                        mode=mapping.mode, certificate=valid, pin=checked, tickets=tickets,
                        phases=phases)

    def _directory_mapping(self, valid: ValidatedCertificate,
                           fields: dict[str, str]) -> AccountMapping:
        """The directory's account for the certificate's UPN, refused when it is unusable."""
        assert self.accounts is not None
        if not valid.upn:
            raise SignInRefused(
                ReasonCode.NO_UPN,
                "the certificate has no UPN (otherName 1.3.6.1.4.1.311.20.2.3) to look up in "
                "the directory: issue a certificate with the user's UPN")
        entry = self.accounts.resolve(valid.upn)
        fields.update(account=entry.sam_account_name)
        refusal = entry.refusal(self.clock())
        if refusal is not None:
            raise refusal
        warning = self.accounts.check_certificate(entry, valid.certificate)
        if warning:
            fields.update(warning=warning)
        return self.mapper.map_directory(valid.upn, entry.sam_account_name)

    def _card_roots(self, client: PivClient, request: SignInRequest
                    ) -> tuple[x509.Certificate, ...]:
        """The card's roots for ``[logon.kdc] card_roots``, read before the PIN is used."""
        try:
            return card_roots(client)
        except TransportError as exc:
            raise SignInRefused(
                ReasonCode.CARD_ERROR,
                f"the card in {request.reader or 'the reader'} stopped answering while its "
                f"roots were read ({exc}): insert it again") from None

    def _audit(self, record: AuditRecord) -> None:
        if self.audit is not None:
            self.audit.append(record)
