"""The enterprise NTAuth store: the CAs trusted to issue sign-in and KDC certificates.

Windows keeps this list in the directory (``certutil -dspublish NTAuthCA``)
and copies it to ``HKLM\\...\\EnterpriseCertificates\\NTAuth``; a smart card
sign-in is accepted only when the certificate's issuing CA is in it. Here it
is a directory in the state directory, ``STATE/ntauth/``, holding one PEM
file per CA, named by the lower-case hex SHA-256 fingerprint of its DER form
(``<fingerprint>.pem``). Files are written atomically (temporary file, fsync,
rename), so a reader never sees half a certificate.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from rdscard.errors import ConfigError
from rdscard.private_files import make_private_dir, open_private_file

NTAUTH_DIR_NAME: Final = "ntauth"
MAX_CERT_FILE: Final = 64 * 1024
MAX_ENTRIES: Final = 1024
MIN_PREFIX: Final = 6
_FILE_NAME: Final = re.compile(r"^[0-9a-f]{64}\.pem$")
_HEX: Final = re.compile(r"^[0-9a-fA-F:]+$")


def fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding."""
    return cert.fingerprint(hashes.SHA256()).hex()


def is_ca_certificate(cert: x509.Certificate) -> bool:
    """True for a CA certificate: basicConstraints cA, and keyCertSign when key usage is present."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.key_cert_sign


def parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, or the one DER certificate in ``data``."""
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ConfigError(f"{source} is not a certificate (PEM or DER)") from None
    return certs


@dataclass(frozen=True)
class NtAuthEntry:
    """One CA of the store, as ``rdscard ntauth list`` shows it."""

    subject: str
    issuer: str
    serial: int
    fingerprint: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    path: Path
    #: lower-case hex SHA-1 of the DER form: Windows' thumbprint ("Cert Hash(sha1)")
    sha1: str = ""

    @classmethod
    def of(cls, cert: x509.Certificate, path: Path) -> NtAuthEntry:
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=cert.serial_number,
            fingerprint=fingerprint(cert),
            sha1=cert.fingerprint(hashes.SHA1()).hex(),  # Windows' thumbprint
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            path=path,
        )


class NtAuthStore:
    """The NTAuth CAs kept in ``directory`` (normally ``STATE/ntauth``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> NtAuthStore:
        return cls(Path(state_dir) / NTAUTH_DIR_NAME)

    def __repr__(self) -> str:
        return f"NtAuthStore({str(self.directory)!r})"

    # -- reading ------------------------------------------------------------------
    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        files = sorted(p for p in self.directory.iterdir() if _FILE_NAME.match(p.name))
        if len(files) > MAX_ENTRIES:
            raise ConfigError(f"{self.directory} holds more than {MAX_ENTRIES} CAs: "
                              "remove the ones no longer trusted")
        return files

    def _load(self, path: Path) -> x509.Certificate:
        try:
            with path.open("rb") as f:
                data = f.read(MAX_CERT_FILE + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read NTAuth entry {path}: {exc.strerror}") from None
        if len(data) > MAX_CERT_FILE:
            raise ConfigError(f"NTAuth entry {path} is larger than {MAX_CERT_FILE} bytes: "
                              "remove it and add the CA again")
        certs = parse_certificates(data, f"NTAuth entry {path}")
        if len(certs) != 1 or path.name != f"{fingerprint(certs[0])}.pem":
            raise ConfigError(f"NTAuth entry {path} does not hold the certificate its name "
                              "promises: remove it and add the CA again")
        return certs[0]

    def certificates(self) -> list[x509.Certificate]:
        """The trusted set: every CA certificate in the store."""
        return [self._load(p) for p in self._files()]

    def entries(self) -> list[NtAuthEntry]:
        """Every CA, sorted by subject."""
        out = [NtAuthEntry.of(self._load(p), p) for p in self._files()]
        return sorted(out, key=lambda e: (e.subject, e.fingerprint))

    def contains(self, cert: x509.Certificate) -> bool:
        """True when exactly this certificate (same DER bytes) is in the store."""
        path = self.directory / f"{fingerprint(cert)}.pem"
        return path.is_file() and fingerprint(self._load(path)) == fingerprint(cert)

    # -- changing ---------------------------------------------------------------------
    def add(self, cert: x509.Certificate) -> tuple[NtAuthEntry, bool]:
        """Add a CA certificate; returns its entry and whether it was new.

        A certificate that is not a CA (no basicConstraints cA, or a key usage
        without keyCertSign) is refused: only issuers belong in NTAuth.
        """
        subject = cert.subject.rfc4514_string()
        if not is_ca_certificate(cert):
            raise ConfigError(
                f"{subject or '(empty subject)'} is not a CA certificate (no basicConstraints "
                "cA=TRUE with keyCertSign): add the certificate of the CA that issued it instead"
            )
        path = self.directory / f"{fingerprint(cert)}.pem"
        if path.is_file():
            return NtAuthEntry.of(cert, path), False
        make_private_dir(self.directory)  # trust data: the server's alone (0700, files 0600)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = open_private_file(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, cert.public_bytes(serialization.Encoding.PEM))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        return NtAuthEntry.of(cert, path), True

    def replace_all(self, certs: Sequence[x509.Certificate]) -> tuple[list[NtAuthEntry],
                                                                    list[NtAuthEntry]]:
        """Make the store hold exactly ``certs``; returns the entries (added, removed).

        What a directory refresh does: the directory's NTAuth CAs become the
        host's store. New CAs are written before old ones are removed, so a CA
        in both sets is trusted throughout. Every certificate must be a CA
        (:meth:`add`); nothing is changed when one is not.
        """
        for cert in certs:
            if not is_ca_certificate(cert):
                self.add(cert)  # raises the explanation before anything changed
        wanted = {fingerprint(c) for c in certs}
        added = [entry for entry, new in (self.add(c) for c in certs) if new]
        removed: list[NtAuthEntry] = []
        for path in self._files():
            if path.name[:-len(".pem")] not in wanted:
                removed.append(NtAuthEntry.of(self._load(path), path))
                path.unlink()
        if removed:
            _fsync_dir(self.directory)
        return added, removed

    def find(self, ident: str) -> list[NtAuthEntry]:
        """Entries matching ``ident`` (see :func:`match_entries`)."""
        return match_entries(self.entries(), ident)

    def remove(self, ident: str) -> NtAuthEntry:
        """Remove the one CA matching ``ident`` (see :meth:`find`); returns it."""
        matches = self.find(ident)
        if not matches:
            raise ConfigError(
                f"no CA in the NTAuth store matches {ident!r}: give a fingerprint prefix "
                f"(at least {MIN_PREFIX} hex digits), a SHA-1 thumbprint, an index, a serial "
                "number or a subject, as `rdscard ntauth list` or `rdscard certutil -viewstore "
                "-enterprise NTAuth` shows them"
            )
        if len(matches) > 1:
            names = "; ".join(f"{e.fingerprint[:16]} {e.subject}" for e in matches)
            raise ConfigError(f"{ident!r} matches {len(matches)} CAs ({names}): "
                              "give a longer fingerprint prefix")
        entry = matches[0]
        entry.path.unlink()
        _fsync_dir(self.directory)
        return entry


def _common_name(subject: str) -> str:
    for part in subject.split(","):
        key, _, value = part.partition("=")
        if key.strip().upper() == "CN":
            return value.strip().casefold()
    return ""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def match_entries(entries: list[NtAuthEntry], ident: str) -> list[NtAuthEntry]:
    """The ``entries`` matching ``ident`` (certutil's CertId), tried in this order:

    - an index in ``entries``, as ``rdscard certutil -viewstore`` numbers them (0, 1, ...);
    - a SHA-1 thumbprint (40 hex digits, spaces or colons allowed), Windows'
      "Cert Hash(sha1)" (certutil's CertId);
    - a SHA-256 fingerprint prefix of at least :data:`MIN_PREFIX` hex digits;
    - a serial number in hex, as certutil prints it;
    - a subject: its full RFC 4514 form or its common name, case-insensitively.
    """
    text = ident.strip()
    if text.isascii() and text.isdigit() and len(text) < MIN_PREFIX:  # not '²'
        index = int(text)
        return [entries[index]] if index < len(entries) else []
    compact = text.replace(":", "").replace(" ", "").lower()
    if compact and _HEX.match(compact):
        if len(compact) == 40:
            by_sha1 = [e for e in entries if e.sha1 == compact]
            if by_sha1:
                return by_sha1
        if len(compact) >= MIN_PREFIX:
            by_print = [e for e in entries if e.fingerprint.startswith(compact)]
            if by_print:
                return by_print
        by_serial = [e for e in entries if e.serial == int(compact, 16)]
        if by_serial:
            return by_serial
    folded = text.casefold()
    return [e for e in entries
            if e.subject.casefold() == folded or _common_name(e.subject) == folded]
