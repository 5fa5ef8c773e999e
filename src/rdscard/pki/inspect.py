"""Read back what matters for smart card logon from a certificate.

The UPN otherName (1.3.6.1.4.1.311.20.2.3) and id-pkinit-san (RFC 4556 3.2.2)
values are DER inside the otherName; malformed ones are reported, not raised,
so that a status display never fails on a foreign card.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rdscard.errors import ProtocolError
from rdscard.pki.ca import OID_MS_UPN, OID_PKINIT_SAN
from rdscard.pki.der import Krb5PrincipalName, decode_upn

_EKU_NAMES = {
    "1.3.6.1.4.1.311.10.3.4": "msEFS",
    "1.3.6.1.4.1.311.20.2.2": "msSmartcardLogin",
    "1.3.6.1.5.2.3.4": "pkInitClientAuth",
    "1.3.6.1.5.2.3.5": "pkInitKDC",
}


@dataclass(frozen=True)
class CertSummary:
    """The logon-relevant facts of one certificate."""

    subject: str
    issuer: str
    serial: int
    not_before: datetime.datetime
    not_after: datetime.datetime
    key: str
    upns: tuple[str, ...]
    pkinit_principals: tuple[str, ...]
    ekus: tuple[str, ...]
    problems: tuple[str, ...]

    def lines(self) -> list[str]:
        """Human-readable lines for ``rdscard card status``."""
        out = [
            f"subject:  {self.subject}",
            f"issuer:   {self.issuer}",
            f"valid:    {self.not_before:%Y-%m-%d} .. {self.not_after:%Y-%m-%d}",
            f"key:      {self.key}",
        ]
        if self.upns:
            out.append("UPN:      " + ", ".join(self.upns))
        if self.pkinit_principals:
            out.append("PKINIT:   " + ", ".join(self.pkinit_principals))
        if self.ekus:
            out.append("EKU:      " + ", ".join(self.ekus))
        out.extend(f"problem:  {p}" for p in self.problems)
        return out


def key_description(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECC {key.curve.name}"
    return type(key).__name__


def summarize(cert: x509.Certificate) -> CertSummary:
    """Summarise ``cert``; undecodable SAN values land in ``problems``."""
    upns: list[str] = []
    principals: list[str] = []
    problems: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for other in san.get_values_for_type(x509.OtherName):
            try:
                if other.type_id == OID_MS_UPN:
                    upns.append(decode_upn(other.value))
                elif other.type_id == OID_PKINIT_SAN:
                    principals.append(str(Krb5PrincipalName.decode(other.value)))
            except ProtocolError as exc:
                problems.append(str(exc))
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ekus = tuple(_EKU_NAMES.get(oid.dotted_string) or oid._name for oid in eku)
    except x509.ExtensionNotFound:
        ekus = ()
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key=key_description(cert.public_key()),
        upns=tuple(upns),
        pkinit_principals=tuple(principals),
        ekus=ekus,
        problems=tuple(problems),
    )
