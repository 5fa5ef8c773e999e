"""Roots on the card for the KDC's certificate (``[logon.kdc] card_roots``), held in check.

A host outside the domain may lack the root CA that issued its KDC's
certificate. Windows then trusts the roots the user's card carries (the
msroots written by ``certutil -scroots``: :mod:`rdscard.pki.msroots`). A root
read from a card is the card's word, not the host's, so this module lets it
count only under two rules:

* it is an extra PKINIT anchor (``X509_anchors``) of that one ``kinit``,
  written to a root-only file removed when the sign-in ends: it never
  enters the NTAuth store, ``[logon] roots`` or any later sign-in, and it
  never validates the user's own certificate (that stays the host's NTAuth
  and roots alone);
* the TGT must then be validated against the host's own keytab, as
  pam_krb5's ``validate`` step and MIT's ``krb5_verify_init_creds`` do: a
  service ticket for the host's principal is requested with the new TGT and
  decrypted with the keytab (``kvno -k KEYTAB --no-store``). A KDC that a
  planted root made believable cannot issue that ticket without the host's
  key, so a card cannot make the host trust a KDC of its choosing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from rdscard.errors import ProtocolError
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import KdcSettings
from rdscard.pki.msroots import read_roots
from rdscard.pki.piv_client import PivClient, PivError

log = logging.getLogger(__name__)

DEFAULT_KEYTAB: Final = Path("/etc/krb5.keytab")
MAX_OUTPUT: Final = 64 * 1024
ANCHORS_NAME: Final = "card-roots.pem"


def card_roots(client: PivClient) -> tuple[x509.Certificate, ...]:
    """The CA certificates among the card's roots; none when it carries none or they are unreadable.

    Unreadable or malformed roots are left out (logged): the sign-in then
    goes on with the host's anchors alone.
    """
    try:
        roots = read_roots(client)
    except (PivError, ProtocolError) as exc:
        log.warning("the roots on the card are left out: %s", exc)
        return ()
    return tuple(cert for cert in roots if _is_ca(cert))


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


@contextlib.contextmanager
def anchor_file(base: Path, roots: Sequence[x509.Certificate]) -> Iterator[Path]:
    """The card's roots as a PEM bundle in a fresh 0700 directory under ``base``, removed after."""
    base.mkdir(parents=True, exist_ok=True, mode=0o711)
    directory = Path(tempfile.mkdtemp(prefix="card-roots-", dir=base))
    try:
        os.chmod(directory, 0o700)
        path = directory / ANCHORS_NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join(cert.public_bytes(Encoding.PEM) for cert in roots))
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def validation_principal(settings: KdcSettings, client_principal: str) -> str:
    """The host principal the TGT is validated with: ``validate_principal`` or host/FQDN.

    Without a realm it is in the client's realm.
    """
    name = settings.validate_principal or f"host/{socket.getfqdn()}"
    if "@" in name.replace("\\@", ""):
        return name
    return f"{name}@{client_principal.rpartition('@')[2]}"


def validate_tgt(ccname: str, client_principal: str, settings: KdcSettings,
                 env: Mapping[str, str]) -> str:
    """Check the TGT in ``ccname`` against the host's keytab; returns the principal used.

    ``kvno -k`` asks the KDC for a ticket to the host's principal with the TGT
    and decrypts it with the keytab (nothing is stored in the cache). Raises
    :class:`SignInRefused` (``tgt_unverified``) naming the cause and the fix.
    """
    keytab = settings.validate_keytab or DEFAULT_KEYTAB
    principal = validation_principal(settings, client_principal)
    argv = [settings.kvno, "-c", ccname, "-k", str(keytab), "--no-store", principal]
    clean = {k: v for k, v in env.items() if k != "KRB5_TRACE" and k != "PCSCLITE_CSOCK_NAME"}
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                env=clean, timeout=settings.timeout, check=False)
    except OSError as exc:
        raise SignInRefused(
            ReasonCode.TGT_UNVERIFIED,
            f"cannot run {settings.kvno} ({exc.strerror}) to check the ticket against this "
            "host's keytab, which [logon.kdc] card_roots and validate require: install MIT "
            "Kerberos "
            "(krb5-user) or set [logon.kdc] kvno") from None
    except subprocess.TimeoutExpired:
        raise SignInRefused(
            ReasonCode.TGT_UNVERIFIED,
            f"the ticket check against this host's keytab did not finish within "
            f"{settings.timeout:g} s: check the KDC") from None
    if result.returncode != 0:
        said = _said(result.stderr[:MAX_OUTPUT].decode("utf-8", "replace"))
        raise SignInRefused(
            ReasonCode.TGT_UNVERIFIED,
            f"the KDC's ticket could not be checked against this host's keytab {keytab} for "
            f"{principal} ({said}): with [logon.kdc] card_roots or validate the KDC must "
            "prove it knows this host's key (for a user of another realm, through a trust "
            "between the realms); put the current keys of that principal in the keytab "
            "(kadmin ktadd), or set [logon.kdc] validate_keytab / validate_principal")
    return principal


def _said(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("kvno:"):
            return line[len("kvno:"):].strip()[:400]
    return lines[-1][:400] if lines else "no message"
