"""Which KDCs a sign-in trusts: the anchors above NTAuth, the KDC certificate's issuer.

**The KDC certificate.** Windows accepts a KDC's PKINIT reply only when the
KDC certificate chains to a trusted root *through a CA of the enterprise
NTAuth store* (Microsoft, "Smart card logon requirements": the domain
controller's certificate must be issued by a CA in NTAuth; [MS-PKCA] 3.1.5.2
leaves the client's check to policy). MIT's client (``kinit -X
X509_anchors``) takes self-signed anchors only: OpenSSL is not given
``X509_V_FLAG_PARTIAL_CHAIN``, so an NTAuth CA that is not a root cannot be
an anchor by itself (probed with MIT 1.20.1: "unable to get issuer
certificate"). The anchors given to kinit are therefore the roots *above the
NTAuth CAs* (:func:`ntauth_roots`), never every configured root: a KDC whose
certificate comes from a PKI none of whose CAs is in NTAuth is refused, even
when its root is in ``[logon] roots`` for other reasons. What MIT cannot be
told is "this issuing CA and no other under the same root", so the logon
service reads the KDC certificate from the reply itself
(:mod:`rdscard.logon.kdc_relay`) and :func:`check_kdc_issuer` wants its
issuer in NTAuth.

**The TGT.** With ``[logon.kdc] validate``, every new TGT is checked as
with ``card_roots`` (:func:`rdscard.logon.card_roots.validate_tgt`: a service
ticket for the host's own principal that must open with its keytab). For a
user of another realm the request crosses the trust
(``krbtgt/HOST-REALM@USER-REALM``), so a sign-in from a realm that does not
trust the host's fails there.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rdscard.errors import ProtocolError
from rdscard.logon.kdc_relay import kdc_certificates
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.validation import issued_by
from rdscard.pki.ca import OID_PKINIT_KPKDC

ANCHOR_FILE: Final = "kdc-anchors.pem"
MAX_DEPTH: Final = 8


def _self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def ntauth_roots(ntauth: Sequence[x509.Certificate], roots: Sequence[x509.Certificate],
                 intermediates: Sequence[x509.Certificate] = ()) -> list[x509.Certificate]:
    """The self-signed anchors above the NTAuth CAs, in NTAuth order, each once.

    An NTAuth CA that is self-signed is its own anchor; otherwise its issuers
    are followed through ``intermediates`` and the NTAuth CAs to a root of
    ``roots``. An NTAuth CA reaching no root adds nothing.
    """
    found: list[x509.Certificate] = []
    pool = list(ntauth) + list(intermediates)
    for ca in ntauth:
        current = ca
        for _ in range(MAX_DEPTH):
            if _self_signed(current):
                anchor = current if current in ntauth or current in roots else None
                if anchor is not None and anchor not in found:
                    found.append(anchor)
                break
            root = next((r for r in roots if issued_by(current, r) and _self_signed(r)), None)
            if root is not None:
                if root not in found:
                    found.append(root)
                break
            parent = next((c for c in pool if c != current and issued_by(current, c)), None)
            if parent is None:
                break
            current = parent
    return found


def write_anchors(certificates: Sequence[x509.Certificate], path: Path) -> Path:
    """Write ``certificates`` as one PEM bundle at ``path``, replaced atomically."""
    data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".kdc-anchors-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def kdc_certificate(certificates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The KDC's own certificate among those of its reply: the one with id-pkinit-KPKdc,
    else the one that issued none of the others."""
    for cert in certificates:
        try:
            usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if OID_PKINIT_KPKDC in usages:
            return cert
    leaves = [c for c in certificates
              if not any(o is not c and issued_by(o, c) for o in certificates)]
    return leaves[0] if len(leaves) == 1 else None


def check_kdc_issuer(replies: Sequence[bytes], ntauth: Sequence[x509.Certificate],
                     realm: str) -> x509.Certificate:
    """The KDC certificate of the AS-REP among ``replies`` must be issued by an NTAuth CA.

    Returns it; raises :class:`SignInRefused` (``kdc_untrusted``) otherwise,
    or when no reply shows it.
    """
    seen: list[x509.Certificate] | None = None
    for reply in replies:
        try:
            certificates = kdc_certificates(reply)
        except ProtocolError as exc:
            raise SignInRefused(ReasonCode.KDC_UNTRUSTED,
                                f"the PKINIT reply of the KDC of {realm} cannot be checked "
                                f"({exc})") from None
        if certificates is not None:
            seen = certificates
    kdc = kdc_certificate(seen) if seen is not None else None
    if kdc is None:
        raise SignInRefused(
            ReasonCode.KDC_UNTRUSTED,
            f"the KDC certificate of {realm} was not seen, so its issuing CA cannot be "
            "checked against NTAuth: the KDC must send its certificate in its PKINIT reply")
    if not any(issued_by(kdc, ca) for ca in ntauth):
        raise SignInRefused(
            ReasonCode.KDC_UNTRUSTED,
            f"the KDC of {realm} proved itself with {kdc.subject.rfc4514_string()}, issued by "
            f"{kdc.issuer.rfc4514_string()}, which is not in the NTAuth store: add that CA "
            "(`rdscard ntauth add`) only if it may issue domain controller certificates")
    return kdc
