"""Administrators' operations: enroll, status, recover, rekey.

Enrollment generates a 64-byte fscrypt master key (a :class:`Secret`),
seals it in a CMS EnvelopedData (:mod:`rdscard.efs.cms`) for the user's
key-management certificate (PIV slot 9D, SP 800-73-4) and every recovery
agent, stores it root-only (:mod:`rdscard.efs.store`) and gives the user's
empty directory an fscrypt v2 policy with that key's identifier
(:mod:`rdscard.efs.fscrypt`). A rekey keeps the master key (the files stay
as they are) and seals it again for new certificates.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rdscard.efs import cms, fscrypt
from rdscard.efs.cms import EnvelopeError, KeyOperator
from rdscard.efs.keywrap import UnwrapError
from rdscard.efs.operators import SoftwareKeyOperator
from rdscard.efs.store import Enrollment, EnvelopeStore, StoreError, check_account
from rdscard.errors import RdscardError
from rdscard.secret import Secret


class VaultError(RdscardError):
    """An enrollment operation cannot be done; the message says why and what to do."""


def _account(name: str) -> pwd.struct_passwd:
    check_account(name)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise VaultError(f"no local account {name!r}") from None


def enroll(store: EnvelopeStore, account: str, directory: Path,
           card_certificate: x509.Certificate,
           recovery_certificates: Sequence[x509.Certificate] = (), *,
           rng: Callable[[int], bytes] = os.urandom) -> Enrollment:
    """Enroll ``account``: its empty ``directory`` becomes encrypted under a new key."""
    user = _account(account)
    if store.load(account) is not None:
        raise VaultError(f"{account} is enrolled already: use `rdscard efs rekey` for a new "
                         "card or certificate")
    directory = Path(directory).absolute()
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        raise VaultError(f"{directory} does not exist: create it (owned by {account}, "
                         "empty) first") from None
    if not stat.S_ISDIR(info.st_mode):
        raise VaultError(f"{directory} is not a directory")
    if info.st_uid != user.pw_uid:
        raise VaultError(f"{directory} belongs to uid {info.st_uid}, not to {account}: "
                         f"chown {account} {directory}")
    if any(directory.iterdir()):
        raise VaultError(f"{directory} is not empty: only an empty directory can be "
                         "encrypted (move the files out, enroll, move them back)")
    if fscrypt.get_policy_identifier(directory) is not None:
        raise VaultError(f"{directory} is encrypted already (another key)")
    for cert in (card_certificate, *recovery_certificates):
        try:
            cms.check_recipient_certificate(cert)
        except EnvelopeError as exc:
            raise VaultError(str(exc)) from None
    with Secret(rng(fscrypt.MASTER_KEY_SIZE)) as master:
        identifier = fscrypt.key_identifier(master)
        envelope = cms.seal(master, [card_certificate, *recovery_certificates], rng=rng)
    enrollment = Enrollment(account=account, uid=user.pw_uid, directory=directory,
                            key_identifier=identifier, card_certificate=card_certificate,
                            recovery_certificates=tuple(recovery_certificates),
                            envelope=envelope)
    store.save(enrollment)
    try:
        fscrypt.set_policy(directory, identifier)
    except fscrypt.FscryptError:
        store.remove(account)
        raise
    return enrollment


def require(store: EnvelopeStore, account: str) -> Enrollment:
    enrollment = store.load(account)
    if enrollment is None:
        raise VaultError(f"{account} is not enrolled: `rdscard efs enroll --user {account} "
                         "--dir PATH` first")
    return enrollment


def open_master_key(enrollment: Enrollment, certificate: x509.Certificate,
                    operator: KeyOperator) -> Secret:
    """The master key through ``certificate``'s recipient entry, checked against the
    stored key identifier (an altered envelope or a wrong key is refused)."""
    envelope = cms.parse_envelope(enrollment.envelope)
    recipient = envelope.recipient_for(certificate)
    if recipient is None:
        raise VaultError(f"certificate {certificate.subject.rfc4514_string()} (serial "
                         f"{certificate.serial_number:X}) is no recipient of the envelope "
                         f"of {enrollment.account}")
    try:
        master = cms.open_envelope(envelope, recipient, operator)
    except UnwrapError as exc:
        raise VaultError(f"the envelope of {enrollment.account} does not open with this "
                         f"key: {exc}") from None
    if len(master) != fscrypt.MASTER_KEY_SIZE or \
            fscrypt.key_identifier(master) != enrollment.key_identifier:
        master.wipe()
        raise VaultError(f"the envelope of {enrollment.account} holds a key that is not the "
                         "directory's: the envelope was altered or replaced")
    return master


def recovery_operator(enrollment: Enrollment, key_pem: bytes,
                      password: bytes | None = None) -> tuple[x509.Certificate, KeyOperator]:
    """The recovery agent's certificate (matched by public key) and operator."""
    try:
        operator = SoftwareKeyOperator.from_pem(key_pem, password)
    except UnwrapError as exc:
        raise VaultError(str(exc)) from None
    public = operator.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for cert in enrollment.recipients:
        if cert.public_key().public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo) == public:
            return cert, operator
    raise VaultError(f"the recovery key belongs to no recipient of the envelope of "
                     f"{enrollment.account}")


def unlock(enrollment: Enrollment, master: Secret) -> None:
    """Add the master key to the directory's filesystem; ``master`` is wiped."""
    try:
        fscrypt.add_key(enrollment.directory, master)
    finally:
        master.wipe()


def recover(store: EnvelopeStore, account: str, key_pem: bytes,
            password: bytes | None = None) -> Enrollment:
    """The recovery agent unlocks ``account``'s directory without the card."""
    enrollment = require(store, account)
    cert, operator = recovery_operator(enrollment, key_pem, password)
    unlock(enrollment, open_master_key(enrollment, cert, operator))
    return enrollment


def rekey(store: EnvelopeStore, account: str, opener: tuple[x509.Certificate, KeyOperator],
          new_card_certificate: x509.Certificate | None,
          recovery_certificates: Sequence[x509.Certificate] | None = None) -> Enrollment:
    """Seal the same master key for a new 9D certificate (and/or recovery agents).

    ``opener`` is the old card's certificate and operator, or the recovery agent's.
    """
    enrollment = require(store, account)
    card = new_card_certificate or enrollment.card_certificate
    recovery = tuple(recovery_certificates) if recovery_certificates is not None \
        else enrollment.recovery_certificates
    for cert in (card, *recovery):
        try:
            cms.check_recipient_certificate(cert)
        except EnvelopeError as exc:
            raise VaultError(str(exc)) from None
    with open_master_key(enrollment, *opener) as master:
        envelope = cms.seal(master, [card, *recovery])
    updated = replace(enrollment, card_certificate=card, recovery_certificates=recovery,
                      envelope=envelope, enrolled="")
    store.save(updated)
    return updated


@dataclass(frozen=True)
class Status:
    """One enrolled account as ``rdscard efs status`` shows it."""

    account: str
    directory: Path
    state: str  # "locked", "unlocked", "closing" (files still open), or an error


def status(store: EnvelopeStore) -> list[Status]:
    rows = []
    for account in store.accounts():
        try:
            enrollment = require(store, account)
            key = fscrypt.key_status(enrollment.directory, enrollment.key_identifier)
            state = {fscrypt.KeyStatus.ABSENT: "locked", fscrypt.KeyStatus.PRESENT: "unlocked",
                     fscrypt.KeyStatus.INCOMPLETELY_REMOVED: "closing (files still open)"}[key]
            rows.append(Status(account, enrollment.directory, state))
        except (StoreError, VaultError, fscrypt.FscryptError) as exc:
            rows.append(Status(account, Path("?"), f"error: {exc}"))
    return rows


def lock(store: EnvelopeStore, account: str) -> fscrypt.Removal:
    """Remove the key now (an administrator's lock); files still open stay readable."""
    enrollment = require(store, account)
    return fscrypt.remove_key(enrollment.directory, enrollment.key_identifier)
