"""What a sign-in with this card would do, decided without the PIN (``certutil -scinfo``).

The steps are those of :meth:`rdscard.logon.service.LogonService.sign_in` up
to the PIN: select the PIV application, read the sign-in certificate (slot
9A), validate it with the server's configuration (NTAuth store, roots,
intermediates, EKU, validity, CRLs), map its UPN to an account (the
``[logon.accounts]`` table and ``domain_realms``, or the directory with
``[directory] accounts``). The PIN counter is read with an empty VERIFY
(SP 800-73-4 Part 2 3.2.1), which never spends a try; the PIN itself, the
proof of possession and, in kerberos mode, PKINIT are not tried.

The other PIV certificates (slots 9C, 9D, 9E) are read and shown too; a
slot the card cannot read counts as empty, as it does for a sign-in. So are
the root CA certificates the card carries (its msroots, written by
``certutil -scroots``: :mod:`rdscard.pki.msroots`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from cryptography import x509

from rdscard.errors import ProtocolError
from rdscard.logon.challenge import blocked_refusal, read_sign_in_certificate
from rdscard.logon.mapping import AccountMapper, AccountMapping
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.validation import CertificateValidator, ValidatedCertificate
from rdscard.pki.msroots import read_roots
from rdscard.pki.piv_client import PinStatus, PivClient, PivError
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.transport import TransportError

if TYPE_CHECKING:
    from rdscard.directory.accounts import AccountSource

#: The PIV key slots ``-scinfo`` shows, with their SP 800-73-4 names.
SLOTS: Final = (
    (KeyRef.AUTHENTICATION, "PIV Authentication"),
    (KeyRef.DIGITAL_SIGNATURE, "Digital Signature"),
    (KeyRef.KEY_MANAGEMENT, "Key Management"),
    (KeyRef.CARD_AUTHENTICATION, "Card Authentication"),
)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class CardReport:
    """What ``-scinfo`` found: the card's certificates and the sign-in's outcome.

    Exactly one of ``mapping`` (a sign-in would succeed) and ``refusal`` is set.
    """

    certificates: dict[int, x509.Certificate] = field(default_factory=dict)
    unreadable: dict[int, str] = field(default_factory=dict)
    #: the card's msroots, and why they could not be read ("" when they could)
    roots: tuple[x509.Certificate, ...] = ()
    roots_problem: str = ""
    pin: PinStatus | None = None
    validated: ValidatedCertificate | None = None
    mapping: AccountMapping | None = None
    refusal: SignInRefused | None = None

    @property
    def would_sign_in(self) -> bool:
        """True when a sign-in with the right PIN would succeed as far as the host decides."""
        return self.mapping is not None and self.refusal is None


def _card_refusal(exc: Exception, what: str) -> SignInRefused:
    return SignInRefused(
        ReasonCode.CARD_ERROR,
        f"the card failed while {what} ({exc}): check that it is a PIV card and that it "
        "is still in the reader",
    )


def inspect_card(
    client: PivClient,
    validator: CertificateValidator,
    mapper: AccountMapper,
    *,
    accounts: AccountSource | None = None,
    clock: Callable[[], datetime.datetime] = _utcnow,
) -> CardReport:
    """Read the card and decide its sign-in, up to (not including) the PIN.

    Never raises :class:`SignInRefused`: a refusal lands in
    :attr:`CardReport.refusal`, with what was read before it.
    """
    report = CardReport()
    try:
        try:
            client.select()
        except (PivError, ProtocolError, TransportError) as exc:
            raise _card_refusal(exc, "selecting its PIV application") from None
        for slot, _name in SLOTS:
            if slot == KeyRef.AUTHENTICATION:
                continue
            try:
                cert = client.read_certificate(slot)
            except (PivError, ProtocolError) as exc:
                report.unreadable[slot] = str(exc)
                continue
            except TransportError as exc:
                raise _card_refusal(exc, "reading its certificates") from None
            if cert is not None:
                report.certificates[slot] = cert
        try:
            report.roots = read_roots(client)
        except (PivError, ProtocolError) as exc:
            report.roots_problem = str(exc)
        except TransportError as exc:
            raise _card_refusal(exc, "reading its roots") from None
        try:
            report.pin = client.pin_status()
        except (PivError, ProtocolError, TransportError) as exc:
            raise _card_refusal(exc, "reading the PIN status") from None
        cert = read_sign_in_certificate(client)
        report.certificates[KeyRef.AUTHENTICATION] = cert
        valid = validator.validate(cert, now=clock())
        report.validated = valid
        report.mapping = _map(valid, mapper, accounts, clock)
        if report.pin.blocked:
            raise blocked_refusal()
    except SignInRefused as refusal:
        report.refusal = refusal
    return report


def _map(valid: ValidatedCertificate, mapper: AccountMapper, accounts: AccountSource | None,
         clock: Callable[[], datetime.datetime]) -> AccountMapping:
    """The account the sign-in would use, as the logon service maps it (no hint)."""
    if accounts is None:
        return mapper.map(valid.upn)
    if not valid.upn:
        raise SignInRefused(
            ReasonCode.NO_UPN,
            "the certificate has no UPN (otherName 1.3.6.1.4.1.311.20.2.3) to look up in "
            "the directory: issue a certificate with the user's UPN")
    entry = accounts.resolve(valid.upn)
    refusal = entry.refusal(clock())
    if refusal is not None:
        raise refusal
    accounts.check_certificate(entry, valid.certificate)
    return mapper.map_directory(valid.upn, entry.sam_account_name)
