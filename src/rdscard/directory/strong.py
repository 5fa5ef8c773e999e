"""Strong certificate mapping, as Windows domain controllers enforce it since KB5014754.

A certificate is *strongly* mapped to a directory user when

- its SID extension (szOID_NTDS_CA_SECURITY_EXT, 1.3.6.1.4.1.311.25.2: an
  otherName szOID_NTDS_OBJECTSID holding the SID string; see
  :func:`rdscard.pki.der.decode_sid_extension`) names the user's
  ``objectSid``, or
- one of the user's ``altSecurityIdentities`` names this very certificate
  in a strong form:

  - X509IssuerSerial ``X509:<I>issuer<SR>serial`` - the issuer's DN as
    Windows writes it (most significant RDN first: ``DC=test,DC=example,
    CN=CA``; RFC 4514 order is accepted too) and the serial number's bytes
    in reverse order, as hex;
  - X509SKI ``X509:<SKI>hex`` - the certificate's subject key identifier;
  - X509SHA1PublicKey ``X509:<SHA1-PUKEY>hex`` - despite its name, the SHA-1
    of the whole certificate (KB5014754's table).

  The weak forms (X509IssuerSubject, X509SubjectOnly, X509RFC822) do not
  count.

``[directory] strong_mapping`` is Windows' StrongCertificateBindingEnforcement:

==================  =============================  ==================================
mode                SID extension absent, no       SID extension naming another SID
                    strong altSecurityIdentities
==================  =============================  ==================================
``off``             allowed (not checked)          allowed (not checked)
``compatibility``   allowed, audited with a        refused (``sid_mismatch``)
                    warning
``full``            refused (``weak_mapping``)     refused (``sid_mismatch``)
==================  =============================  ==================================

A SID extension that names another account is refused in compatibility
mode too, as Windows' KDC does (event 41): it is positive evidence that the
certificate was issued to someone else. Whatever the mode, a strong mapping
by ``altSecurityIdentities`` does not excuse a mismatching SID extension.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from rdscard.errors import ProtocolError
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.pki.der import OID_NTDS_CA_SECURITY_EXT, decode_sid_extension

SID_EXTENSION: Final = x509.ObjectIdentifier(OID_NTDS_CA_SECURITY_EXT)


class StrongMapping(StrEnum):
    """``[directory] strong_mapping`` (StrongCertificateBindingEnforcement 0, 1, 2)."""

    OFF = "off"
    COMPATIBILITY = "compatibility"
    FULL = "full"


@dataclass(frozen=True)
class MappingCheck:
    """How the certificate is bound to the account: ``how`` names the strong mapping used
    (empty when weak), ``warning`` what compatibility mode let through."""

    how: str
    warning: str = ""


def certificate_sid(cert: x509.Certificate) -> str | None:
    """The SID of the certificate's SID extension, None without one.

    Raises :class:`SignInRefused` (``sid_mismatch``) when the extension is malformed.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(SID_EXTENSION)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    try:
        return decode_sid_extension(raw)
    except ProtocolError as exc:
        raise SignInRefused(ReasonCode.SID_MISMATCH,
                            f"the certificate's SID extension is malformed ({exc}): ask the CA "
                            "administrator to reissue it") from None


def _issuer_forms(cert: x509.Certificate) -> set[str]:
    rdns = [rdn.rfc4514_string() for rdn in cert.issuer.rdns]
    return {_fold(",".join(rdns)), _fold(",".join(reversed(rdns)))}


def _fold(text: str) -> str:
    return ",".join(part.strip() for part in text.split(",")).casefold()


def _serial_forms(cert: x509.Certificate) -> set[str]:
    serial = cert.serial_number
    body = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
    forms = {body[::-1].hex()}
    if body[0] & 0x80:
        forms.add((b"\x00" + body)[::-1].hex())  # the DER INTEGER's sign byte kept
    return forms


def _ski(cert: x509.Certificate) -> str | None:
    try:
        return cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return None


def strong_alt_identity(cert: x509.Certificate, identities: tuple[str, ...]) -> str | None:
    """The strong ``altSecurityIdentities`` form naming ``cert``, or None."""
    ski = _ski(cert)
    sha1 = hashlib.sha1(cert.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest()
    issuers, serials = _issuer_forms(cert), _serial_forms(cert)
    for identity in identities:
        if identity[:5].upper() != "X509:":
            continue
        rest = identity[5:]
        upper = rest.upper()
        if upper.startswith("<I>") and "<SR>" in upper:
            at = upper.index("<SR>")
            issuer, serial = rest[3:at], rest[at + 4:]
            if _fold(issuer) in issuers and serial.strip().casefold() in serials:
                return "X509IssuerSerial"
        elif upper.startswith("<SKI>"):
            if ski is not None and rest[5:].strip().casefold() == ski:
                return "X509SKI"
        elif upper.startswith("<SHA1-PUKEY>") and rest[12:].strip().casefold() == sha1:
            return "X509SHA1PublicKey"
    return None


def check_mapping(mode: StrongMapping, cert: x509.Certificate, account: str, object_sid: str,
                  identities: tuple[str, ...]) -> MappingCheck:
    """The decision table of the module docstring; raises :class:`SignInRefused`."""
    if mode is StrongMapping.OFF:
        return MappingCheck(how="")
    sid = certificate_sid(cert)
    if sid is not None:
        if sid.casefold() != object_sid.casefold():
            raise SignInRefused(
                ReasonCode.SID_MISMATCH,
                f"the certificate's SID extension names {sid}, not the account {account} "
                f"({object_sid}): the certificate was issued for another account; enroll a "
                "new one for this user")
        return MappingCheck(how="SID extension")
    alt = strong_alt_identity(cert, identities)
    if alt is not None:
        return MappingCheck(how=f"altSecurityIdentities {alt}")
    what = (f"the certificate is only weakly mapped to {account} (by its UPN): it has no SID "
            "extension and no strong altSecurityIdentities entry (X509IssuerSerial, X509SKI, "
            "X509SHA1PublicKey) names it")
    if mode is StrongMapping.FULL:
        raise SignInRefused(ReasonCode.WEAK_MAPPING,
                            f"{what}: reissue it from a CA that adds the SID extension, or map "
                            "it in the user's altSecurityIdentities")
    return MappingCheck(how="", warning=f"{what}; allowed in compatibility mode, refused with "
                                        "strong_mapping = full")
