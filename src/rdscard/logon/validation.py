"""Validate a smart card sign-in certificate as the seed's LSA does.

The checks, in the order a user can fix them:

1. validity period at ``now`` (injected);
2. extended key usage: Smart Card Logon (1.3.6.1.4.1.311.20.2.2) or
   clientAuth (1.3.6.1.5.5.7.3.2); key usage, when present, digitalSignature
   (RFC 5280 4.2.1.3: an absent key usage does not restrict the key);
3. the issuing CA is in the enterprise NTAuth store (Windows requires the
   issuer itself there, not only a root above it);
4. the path to a trust anchor (the NTAuth CAs and the configured roots),
   built with the presented and configured intermediates and checked with
   ``cryptography.x509.verification`` (signatures, CA constraints, validity
   of every certificate);
5. revocation against the configured CRLs: a revoked serial, an expired,
   not yet valid or wrongly signed CRL are refusals; no CRL for the issuer
   is a refusal only when ``require_revocation_check`` is on;
6. the UPN (otherName 1.3.6.1.4.1.311.20.2.3), when present.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from rdscard.errors import ConfigError, ProtocolError
from rdscard.logon.ntauth import NtAuthStore, fingerprint, parse_certificates
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import LogonConfig
from rdscard.pki.ca import OID_MS_SMARTCARD_LOGON, OID_MS_UPN
from rdscard.pki.der import decode_upn

__all__ = [
    "CertificateValidator",
    "ReasonCode",
    "SignInRefused",
    "ValidatedCertificate",
    "extract_upn",
    "load_crls",
]

MAX_CRL_FILE: Final = 16 * 1024 * 1024
MAX_CERT_FILE: Final = 1024 * 1024
MAX_CHAIN_DEPTH: Final = 8
MAX_INTERMEDIATES: Final = 16
SIGN_IN_EKUS: Final = (OID_MS_SMARTCARD_LOGON, ExtendedKeyUsageOID.CLIENT_AUTH)


@dataclass(frozen=True)
class ValidatedCertificate:
    """A sign-in certificate that passed every check."""

    subject: str
    issuer: str
    serial: int
    upn: str | None
    fingerprint: str
    not_after: datetime.datetime
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def extract_upn(cert: x509.Certificate) -> str | None:
    """The first UPN otherName of the SAN, None when there is none.

    A malformed UPN value is a refusal (:attr:`ReasonCode.BAD_UPN`).
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OID_MS_UPN:
            try:
                return decode_upn(other.value)
            except ProtocolError as exc:
                raise SignInRefused(
                    ReasonCode.BAD_UPN,
                    f"the certificate's UPN is malformed ({exc}): issue a new sign-in "
                    "certificate with a UPN user@domain",
                ) from None
    return None


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{what} {path} is larger than {limit} bytes")
    return data


def load_crls(paths: Sequence[Path]) -> list[x509.CertificateRevocationList]:
    """Parse CRL files (PEM or DER); :class:`ConfigError` names a bad file."""
    crls: list[x509.CertificateRevocationList] = []
    for path in paths:
        data = _read_limited(path, MAX_CRL_FILE, "CRL file")
        try:
            if b"-----BEGIN" in data:
                crls.append(x509.load_pem_x509_crl(data))
            else:
                crls.append(x509.load_der_x509_crl(data))
        except ValueError:
            raise ConfigError(f"{path} is not a CRL (PEM or DER): configure the CA's "
                              "CRL file in [logon] crl_files") from None
    return crls


def load_certificate_files(paths: Sequence[Path], what: str) -> list[x509.Certificate]:
    """Every certificate of each PEM bundle or DER file in ``paths``."""
    certs: list[x509.Certificate] = []
    for path in paths:
        certs += parse_certificates(_read_limited(path, MAX_CERT_FILE, what), f"{what} {path}")
    return certs


def _ekus(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``cert`` (its name and its signature, RFC 5280 6.1.3)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _day(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class CertificateValidator:
    """Validates sign-in certificates against NTAuth, anchors, intermediates and CRLs."""

    def __init__(
        self,
        ntauth: Sequence[x509.Certificate],
        *,
        roots: Sequence[x509.Certificate] = (),
        intermediates: Sequence[x509.Certificate] = (),
        crls: Sequence[x509.CertificateRevocationList] = (),
        require_revocation_check: bool = False,
    ) -> None:
        self.ntauth = tuple(ntauth)
        self.roots = tuple(roots)
        self.intermediates = tuple(intermediates)
        self.crls = tuple(crls)
        self.require_revocation_check = require_revocation_check
        self._ntauth_prints = frozenset(fingerprint(c) for c in self.ntauth)

    @classmethod
    def from_config(cls, config: LogonConfig, state_dir: Path) -> CertificateValidator:
        """The validator the ``[logon]`` section describes, reading its files now."""
        store = NtAuthStore(config.ntauth_directory(state_dir))
        return cls(
            store.certificates(),
            roots=load_certificate_files(config.roots, "root certificate file"),
            intermediates=load_certificate_files(config.intermediates,
                                                 "intermediate certificate file"),
            crls=load_crls(config.crl_files),
            require_revocation_check=config.require_revocation_check,
        )

    def validate(
        self,
        cert: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        now: datetime.datetime,
    ) -> ValidatedCertificate:
        """Check ``cert`` at ``now``; raises :class:`SignInRefused` naming cause and fix."""
        if len(intermediates) > MAX_INTERMEDIATES:
            raise SignInRefused(ReasonCode.CHAIN_INVALID,
                                f"more than {MAX_INTERMEDIATES} intermediate certificates")
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        self._check_period(cert, subject, now)
        self._check_usage(cert, subject)
        self._check_issuer_in_ntauth(cert, issuer)
        chain = self._build_chain(cert, intermediates, subject, now)
        self._check_revocation(chain, now)
        upn = extract_upn(cert)
        return ValidatedCertificate(
            subject=subject, issuer=issuer, serial=cert.serial_number, upn=upn,
            fingerprint=fingerprint(cert), not_after=cert.not_valid_after_utc,
            certificate=cert, chain=chain,
        )

    # -- the checks -------------------------------------------------------------------
    @staticmethod
    def _check_period(cert: x509.Certificate, subject: str, now: datetime.datetime) -> None:
        if now < cert.not_valid_before_utc:
            raise SignInRefused(
                ReasonCode.NOT_YET_VALID,
                f"the certificate {subject} is not valid before "
                f"{_day(cert.not_valid_before_utc)}: check this computer's clock, or wait",
            )
        if now > cert.not_valid_after_utc:
            raise SignInRefused(
                ReasonCode.EXPIRED,
                f"the certificate {subject} expired on {_day(cert.not_valid_after_utc)}: "
                "have a new sign-in certificate issued for the card",
            )

    @staticmethod
    def _check_usage(cert: x509.Certificate, subject: str) -> None:
        ekus = _ekus(cert)
        if not any(oid in ekus for oid in SIGN_IN_EKUS):
            raise SignInRefused(
                ReasonCode.WRONG_EKU,
                f"the certificate {subject} is not for sign-in (its extended key usage lacks "
                "Smart Card Logon 1.3.6.1.4.1.311.20.2.2 and clientAuth): use the card's "
                "authentication certificate, or issue one with the Smart Card Logon EKU",
            )
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return
        if not usage.digital_signature:
            raise SignInRefused(
                ReasonCode.WRONG_KEY_USAGE,
                f"the certificate {subject} does not allow digital signatures (key usage): "
                "issue a sign-in certificate with key usage digitalSignature",
            )

    def _check_issuer_in_ntauth(self, cert: x509.Certificate, issuer: str) -> None:
        if not any(issued_by(cert, ca) for ca in self.ntauth):
            raise SignInRefused(
                ReasonCode.NOT_IN_NTAUTH,
                f"the certificate's issuer {issuer} is not in the NTAuth store: add it with "
                "`rdscard ntauth add ISSUING-CA.pem` if this CA may issue sign-in certificates",
            )

    def _build_chain(self, cert: x509.Certificate, presented: Sequence[x509.Certificate],
                     subject: str, now: datetime.datetime) -> tuple[x509.Certificate, ...]:
        store = verification.Store(list(self.ntauth + self.roots))
        builder = (
            verification.PolicyBuilder()
            .store(store)
            .time(now)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
        )
        try:
            verified = builder.build_client_verifier().verify(
                cert, list(presented) + list(self.intermediates))
        except verification.VerificationError as exc:
            raise SignInRefused(
                ReasonCode.CHAIN_INVALID,
                f"the certificate {subject} does not chain to a trusted CA ({exc}): add the "
                "missing intermediate CA to [logon] intermediates, or its root to [logon] roots",
            ) from None
        chain = tuple(verified.chain)
        issuing = chain[1]
        if fingerprint(issuing) not in self._ntauth_prints and not any(
            issuing.subject == ca.subject and issuing.public_key() == ca.public_key()
            for ca in self.ntauth
        ):
            raise SignInRefused(
                ReasonCode.NOT_IN_NTAUTH,
                f"the certificate's issuer {issuing.subject.rfc4514_string()} is not in the "
                "NTAuth store: add it with `rdscard ntauth add ISSUING-CA.pem`",
            )
        return chain

    def _check_revocation(self, chain: tuple[x509.Certificate, ...],
                          now: datetime.datetime) -> None:
        for index, (cert, parent) in enumerate(itertools.pairwise(chain)):
            subject = cert.subject.rfc4514_string()
            issuer = cert.issuer.rfc4514_string()
            crls = [crl for crl in self.crls if crl.issuer == cert.issuer]
            if not crls:
                if index == 0 and self.require_revocation_check:
                    raise SignInRefused(
                        ReasonCode.REVOCATION_UNKNOWN,
                        f"no CRL of {issuer} is configured, so the revocation status of "
                        f"{subject} is unknown: add the CA's CRL to [logon] crl_files",
                    )
                continue
            for crl in crls:
                if not crl.is_signature_valid(parent.public_key()):  # type: ignore[arg-type]
                    raise SignInRefused(
                        ReasonCode.CRL_INVALID,
                        f"the CRL named after {issuer} is not signed by that CA: replace it "
                        "in [logon] crl_files with the CA's genuine CRL",
                    )
                if now < crl.last_update_utc:
                    raise SignInRefused(
                        ReasonCode.CRL_INVALID,
                        f"the CRL of {issuer} is not valid before {_day(crl.last_update_utc)}: "
                        "check this computer's clock",
                    )
                next_update = crl.next_update_utc
                if next_update is not None and now > next_update:
                    raise SignInRefused(
                        ReasonCode.CRL_INVALID,
                        f"the CRL of {issuer} expired on {_day(next_update)}: install the "
                        "CA's current CRL in [logon] crl_files",
                    )
                revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
                if revoked is not None:
                    raise SignInRefused(
                        ReasonCode.REVOKED,
                        f"the certificate {subject} (serial {cert.serial_number:X}) was revoked "
                        f"by {issuer} on {_day(revoked.revocation_date_utc)}: the card needs "
                        "a new certificate",
                    )
