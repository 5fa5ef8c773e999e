"""One smart card sign-in attempt, from the card to the account (the LSA's steps).

The order is the seed's, with tries treated as precious: the certificate is
read and validated and the UPN mapped to an account before the PIN is
used, so a card that could never sign in costs no PIN try; then the PIN is
checked exactly once (an empty VERIFY first tells tries left and refuses a
blocked card without spending one); then the card proves possession of the
certificate's key by signing a fresh challenge. PIV host code is
synchronous: this runs in a worker thread over any :class:`Transport`.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass

from rdscard.errors import ProtocolError
from rdscard.logon.challenge import prove_possession, read_sign_in_certificate, verify_pin_once
from rdscard.logon.mapping import AccountMapper, AccountMapping, Hint
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.validation import CertificateValidator, ValidatedCertificate
from rdscard.pki.piv_client import PivClient, PivError
from rdscard.pki.transport import Transport, TransportError
from rdscard.secret import Secret


@dataclass(frozen=True)
class CardSignIn:
    """What a successful card sign-in established."""

    certificate: ValidatedCertificate
    mapping: AccountMapping
    tries_left_before: int | None


def sign_in_with_card(
    transport: Transport,
    pin: Secret,
    validator: CertificateValidator,
    mapper: AccountMapper,
    *,
    hint: Hint | None = None,
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    on_certificate: Callable[[ValidatedCertificate | None, str, str, int], None] | None = None,
    phases: dict[str, float] | None = None,
) -> CardSignIn:
    """Run the card steps of a sign-in; ``pin`` is wiped whatever happens.

    Raises :class:`SignInRefused` naming the cause and the fix. When
    ``on_certificate`` is given it is called as soon as the certificate is
    read (subject, issuer and serial, for the audit log), validated or not.
    ``phases`` receives the seconds spent reading and validating the
    certificate, checking the PIN and proving possession.
    """
    timing = phases if phases is not None else {}
    started = time.perf_counter()
    try:
        client = PivClient(transport)
        try:
            client.select()
        except (PivError, ProtocolError, TransportError) as exc:
            raise SignInRefused(
                ReasonCode.CARD_ERROR,
                f"the card in the reader is not a PIV card ({exc}): insert your smart card",
            ) from None
        cert = read_sign_in_certificate(client)
        if on_certificate is not None:
            on_certificate(None, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                           cert.serial_number)
        validated = validator.validate(cert, now=now())
        mapping = mapper.map(validated.upn, hint)
        timing["certificate"] = time.perf_counter() - started
        started = time.perf_counter()
        check = verify_pin_once(client, pin)
        timing["pin"] = time.perf_counter() - started
        started = time.perf_counter()
        prove_possession(client, cert)
        timing["proof"] = time.perf_counter() - started
        return CardSignIn(validated, mapping, check.tries_left_before)
    finally:
        pin.wipe()
