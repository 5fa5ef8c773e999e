"""The forest's NTAuth CAs in Active Directory, over LDAP (RFC 4511) inside TLS.

Active Directory keeps the CAs trusted to issue smart card sign-in and domain
controller certificates in one object of the configuration partition
([MS-ADTS] 6.1.1.2.4.1.2 "Public Key Services"; Microsoft's "Smart card logon
requirements" and KB 295663)::

    CN=NTAuthCertificates,CN=Public Key Services,CN=Services,CN=Configuration,DC=...

of objectClass ``certificationAuthority`` ([MS-ADSC] 2.17), each CA one DER
value of ``cACertificate``. Windows writes it with ``certutil -dspublish -f
CA.cer NTAuthCA`` and copies it to every member's registry store
(``EnterpriseCertificates\\NTAuth``) at each autoenrollment pulse. This module
does both for the host's store (:class:`~rdscard.logon.ntauth.NtAuthStore`).

Facts of the peer (Samba 4.17 AD DC; Windows behaves alike):

- the object is not provisioned; ``certificationAuthority`` must have
  ``cACertificate``, ``authorityRevocationList`` and
  ``certificateRevocationList``, so it is created with a single zero byte in
  each list, as Windows does; ``cACertificate`` cannot lose its last value
  (objectClassViolation), so removing the last CA leaves that zero byte;
- a simple bind is refused outside TLS ("Transport encryption required"):
  ``ldaps://`` or ``ldap://`` with StartTLS (RFC 4513 3), never in clear;
- anonymous searches of the configuration partition fail (operationsError).

The LDAP client is ldap3 (pure Python; python-ldap would need OpenLDAP's
development files and a compiler on every host).
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ldap3.core import exceptions as ldap_errors

from rdscard.directory.settings import DirectoryConfig
from rdscard.errors import ConfigError, RdscardError
from rdscard.logon.ntauth import NtAuthEntry, NtAuthStore, fingerprint, is_ca_certificate
from rdscard.secret import Secret

log = logging.getLogger("rdscard.directory")

NTAUTH_CONTAINER: Final = "CN=Public Key Services,CN=Services"
NTAUTH_RDN: Final = "CN=NTAuthCertificates"
ATTRIBUTE: Final = "cACertificate"
#: the value Windows and Samba accept where a mandatory list has nothing yet
PLACEHOLDER: Final = b"\x00"
MAX_PASSWORD_FILE: Final = 4096
MAX_VALUES: Final = 1024
#: LDAP result codes (RFC 4511 4.1.9)
NO_SUCH_OBJECT: Final = 32
INVALID_CREDENTIALS: Final = 49
CONFIDENTIALITY_REQUIRED: Final = 13
STRONGER_AUTH_REQUIRED: Final = 8


class DirectoryError(RdscardError):
    """The directory could not be reached or refused an operation; the message says why."""


def ntauth_dn(base_dn: str) -> str:
    """The NTAuthCertificates DN under a forest root domain DN or configuration NC DN."""
    base = base_dn.strip()
    if not base.upper().startswith("CN=CONFIGURATION,"):
        base = f"CN=Configuration,{base}"
    return f"{NTAUTH_RDN},{NTAUTH_CONTAINER},{base}"


def read_password(path: Path) -> Secret:
    """The bind password: the first line of ``path``, which only its owner may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(f"[directory] bind_password_file {path}: cannot open it "
                          f"({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"[directory] bind_password_file {path} may be read by others: "
                              f"chmod 600 {path}")
        data = bytearray(os.read(fd, MAX_PASSWORD_FILE + 1))
    finally:
        os.close(fd)
    secret = Secret.take(data)
    text = secret.reveal()
    if len(text) > MAX_PASSWORD_FILE:
        secret.wipe()
        raise ConfigError(f"[directory] bind_password_file {path} is longer than "
                          f"{MAX_PASSWORD_FILE} bytes: write the password on its first line")
    end = text.find(b"\n")
    if end >= 0:
        del text[end:]
    if text.endswith(b"\r"):
        del text[-1:]
    return secret


@dataclass(frozen=True)
class DirectoryCa:
    """One value of ``cACertificate`` that is a certificate."""

    certificate: x509.Certificate
    der: bytes


def root_dse_value(conn: ldap3.Connection, attribute: str, base_dn_hint: str) -> str:
    """The first value of one RootDSE ``attribute`` (RFC 4512 5.1), e.g. a naming context.

    Errors name the fix: ``[directory] base_dn`` set to ``base_dn_hint``.
    """
    try:
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=[attribute])
    except ldap_errors.LDAPException as exc:
        raise DirectoryError(f"the directory's RootDSE cannot be read ({exc}): set "
                             f"[directory] base_dn to {base_dn_hint}") from None
    values = conn.entries[0].entry_attributes_as_dict.get(attribute, []) if conn.entries else []
    if not values:
        raise DirectoryError(f"the directory's RootDSE names no {attribute}: set "
                             f"[directory] base_dn to {base_dn_hint}")
    return str(values[0])


class DirectoryNtAuth:
    """The NTAuthCertificates object of the directory ``config`` names."""

    def __init__(self, config: DirectoryConfig, *, base_dn: str = "") -> None:
        if not config.uris:
            raise ConfigError('[directory] uris: name the domain controllers, e.g. '
                              'uris = ["ldaps://dc1.example.test"]')
        self.config = config
        self.base_dn = base_dn or config.base_dn

    # -- connection ---------------------------------------------------------------------
    def _tls(self) -> ldap3.Tls:
        ca = self.config.ca_file
        if ca is not None and not ca.is_file():
            raise ConfigError(f"[directory] ca_file {ca} does not exist: give the CA "
                              "certificate (PEM) that issued the domain controllers' "
                              "LDAPS certificates")
        return ldap3.Tls(validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT,
                         ca_certs_file=str(ca) if ca is not None else None)

    def connect(self) -> ldap3.Connection:
        """A bound connection to the first domain controller that answers."""
        failures: list[str] = []
        for uri in self.config.uris:
            try:
                return self._connect(uri)
            except DirectoryError as exc:
                if len(self.config.uris) == 1:
                    raise
                failures.append(str(exc))
        raise DirectoryError("no domain controller answered: " + "; ".join(failures))

    def _connect(self, uri: str) -> ldap3.Connection:
        parts = urlsplit(uri)
        secure = parts.scheme == "ldaps"
        server = ldap3.Server(parts.hostname or "", port=parts.port or (636 if secure else 389),
                              use_ssl=secure, tls=self._tls(), get_info=ldap3.NONE,
                              connect_timeout=self.config.timeout)
        password: Secret | None = None
        kerberos = self.config.bind_method == "kerberos"
        if self.config.bind_dn and self.config.bind_password_file is not None:
            password = read_password(self.config.bind_password_file)
        if kerberos:
            from rdscard.directory.kerberos_bind import kerberos_bind, keytab_credentials

            bind: dict[str, object] = {
                "authentication": ldap3.SASL, "sasl_mechanism": ldap3.KERBEROS,
                "sasl_credentials": (None, None, keytab_credentials(self.config))}
        else:
            bind = {"user": self.config.bind_dn or None,
                    "password": password.reveal().decode("utf-8", "replace")
                    if password is not None else None,
                    "authentication": ldap3.SIMPLE if password is not None else ldap3.ANONYMOUS}
        try:
            conn = ldap3.Connection(
                server, receive_timeout=int(max(self.config.timeout, 1)),
                raise_exceptions=True, auto_referrals=False, **bind)  # type: ignore[arg-type]
            conn.open()
            if not secure:
                conn.start_tls()
            if kerberos:
                kerberos_bind(conn, uri, self.config)
            else:
                conn.bind()
        except ldap_errors.LDAPInvalidCredentialsResult:
            raise DirectoryError(f"{uri} refused the bind as {self.config.bind_dn}: check "
                                 "[directory] bind_dn and the password in "
                                 "bind_password_file") from None
        except ldap_errors.LDAPOperationResult as exc:
            raise DirectoryError(f"{uri} refused the bind: {_describe(exc)}") from None
        except ldap_errors.LDAPException as exc:
            raise DirectoryError(_connect_failure(uri, exc, self.config.ca_file)) from None
        finally:
            if password is not None:
                password.wipe()
        conn.password = None  # ldap3 keeps it for rebinds; this connection never rebinds
        return conn

    def _dn(self, conn: ldap3.Connection) -> str:
        if self.base_dn:
            return ntauth_dn(self.base_dn)
        return ntauth_dn(root_dse_value(conn, "configurationNamingContext",
                                        "the forest root domain's DN"))

    # -- reading -----------------------------------------------------------------------------
    def _values(self, conn: ldap3.Connection, dn: str) -> list[bytes] | None:
        """The raw ``cACertificate`` values, or None when the object does not exist."""
        try:
            conn.search(dn, "(objectClass=certificationAuthority)", ldap3.BASE,
                        attributes=[ATTRIBUTE])
        except ldap_errors.LDAPNoSuchObjectResult:
            return None
        except ldap_errors.LDAPException as exc:
            raise DirectoryError(f"cannot read {dn}: {_describe(exc)}") from None
        if not conn.response or conn.response[0].get("type") != "searchResEntry":
            return None
        raw = conn.response[0].get("raw_attributes", {})
        values: list[bytes] = next(
            (v for k, v in raw.items() if k.lower() == ATTRIBUTE.lower()), [])
        return [bytes(v) for v in values][:MAX_VALUES]

    def read(self) -> tuple[str, list[DirectoryCa]]:
        """The object's DN and its CA certificates (placeholders and non-CAs left out)."""
        conn = self.connect()
        try:
            dn = self._dn(conn)
            values = self._values(conn, dn)
        finally:
            conn.unbind()
        if values is None:
            raise DirectoryError(f"the directory has no {dn}: publish the issuing CA with "
                                 "`rdscard certutil -dspublish -f CA.pem NTAuthCA`, or check "
                                 "[directory] base_dn")
        out: list[DirectoryCa] = []
        for value in values:
            if value == PLACEHOLDER:
                continue
            try:
                cert = x509.load_der_x509_certificate(value)
            except ValueError:
                log.warning("directory: a value of %s in %s is not a certificate; ignored",
                            ATTRIBUTE, dn)
                continue
            if not is_ca_certificate(cert):
                log.warning("directory: %s in %s is not a CA certificate; ignored",
                            cert.subject.rfc4514_string(), dn)
                continue
            out.append(DirectoryCa(cert, value))
        return dn, out

    # -- changing ------------------------------------------------------------------------
    def publish(self, cert: x509.Certificate, *, create: bool) -> tuple[str, bool]:
        """Add ``cert`` to the NTAuth CAs; returns the object's DN and whether it was new.

        ``create`` (certutil's ``-f``) creates the object when it is absent.
        """
        if not is_ca_certificate(cert):
            raise ConfigError(f"{cert.subject.rfc4514_string()} is not a CA certificate: "
                              "publish the certificate of the CA that issues the sign-in "
                              "certificates")
        der = cert.public_bytes(serialization.Encoding.DER)
        conn = self.connect()
        try:
            dn = self._dn(conn)
            values = self._values(conn, dn)
            if values is None:
                if not create:
                    raise DirectoryError(f"the directory has no {dn} yet: add -f to create it")
                _call(conn.add, dn, ["top", "certificationAuthority"], {
                    ATTRIBUTE: [der],
                    "authorityRevocationList": [PLACEHOLDER],
                    "certificateRevocationList": [PLACEHOLDER],
                    "showInAdvancedViewOnly": "TRUE",
                }, what=f"create {dn}")
                return dn, True
            if der in values:
                return dn, False
            changes: dict[str, list[tuple[str, list[bytes]]]] = {
                ATTRIBUTE: [(ldap3.MODIFY_ADD, [der])]}
            if PLACEHOLDER in values:
                changes[ATTRIBUTE].append((ldap3.MODIFY_DELETE, [PLACEHOLDER]))
            _call(conn.modify, dn, changes, what=f"add the CA to {dn}")
            return dn, True
        finally:
            conn.unbind()

    def unpublish(self, cert: x509.Certificate) -> tuple[str, bool]:
        """Remove ``cert`` from the NTAuth CAs; returns the DN and whether it was there.

        The last CA is replaced by the zero-byte placeholder (the attribute is mandatory).
        """
        der = cert.public_bytes(serialization.Encoding.DER)
        conn = self.connect()
        try:
            dn = self._dn(conn)
            values = self._values(conn, dn)
            if values is None or der not in values:
                return dn, False
            changes: dict[str, list[tuple[str, list[bytes]]]] = {
                ATTRIBUTE: [(ldap3.MODIFY_DELETE, [der])]}
            if all(v == der for v in values):
                changes[ATTRIBUTE].insert(0, (ldap3.MODIFY_ADD, [PLACEHOLDER]))
            _call(conn.modify, dn, changes, what=f"remove the CA from {dn}")
            return dn, True
        finally:
            conn.unbind()


@dataclass(frozen=True)
class PulseResult:
    """What a refresh did to the host's store."""

    dn: str
    trusted: list[NtAuthEntry]
    added: list[NtAuthEntry]
    removed: list[NtAuthEntry]


def pulse(directory: DirectoryNtAuth, store: NtAuthStore,
          lock: threading.Lock | None = None) -> PulseResult:
    """Make the host's store hold the directory's NTAuth CAs (certutil ``-pulse``).

    When the directory cannot be read the store is left as it is (the last
    good copy) and :class:`DirectoryError` says why. ``lock`` is held only
    while the store's files change, never during the LDAP exchange.
    """
    dn, cas = directory.read()
    certs = [ca.certificate for ca in cas]
    if lock is None:
        added, removed = store.replace_all(certs)
    else:
        with lock:
            added, removed = store.replace_all(certs)
    prints = {fingerprint(c) for c in certs}
    trusted = [e for e in store.entries() if e.fingerprint in prints]
    return PulseResult(dn=dn, trusted=trusted, added=added, removed=removed)


class NtAuthRefresher:
    """The monitor's timer: :func:`pulse` now, then every ``refresh_interval`` seconds."""

    def __init__(self, config: DirectoryConfig, store: NtAuthStore, lock: threading.Lock, *,
                 refresh: Callable[[], PulseResult] | None = None) -> None:
        self.config = config
        self.store = store
        self.lock = lock
        self._refresh = refresh or (lambda: pulse(DirectoryNtAuth(config), store, lock))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: PulseResult | None = None
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ntauth-refresh", daemon=True)
        self._thread.start()

    def refresh_once(self) -> bool:
        """One refresh, logged; False (and the store unchanged) when it failed."""
        try:
            result = self._refresh()
        except (DirectoryError, ConfigError) as exc:
            self.failures += 1
            log.warning("directory: NTAuth refresh failed, the host keeps its last copy "
                        "(%d CAs): %s", len(self.store.entries()), exc)
            return False
        self.last = result
        for entry in result.added:
            log.info("directory: NTAuth now trusts %s (%s)", entry.subject, entry.fingerprint)
        for entry in result.removed:
            log.info("directory: NTAuth no longer trusts %s (%s)", entry.subject,
                     entry.fingerprint)
        log.info("directory: NTAuth refreshed from %s: %d CAs", result.dn, len(result.trusted))
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh_once()
            self._stop.wait(self.config.refresh_interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.timeout * 3)


def load_certificate(path: Path) -> x509.Certificate:
    """The one certificate in ``path`` (PEM or DER), as ``-dspublish`` takes it."""
    from rdscard.logon.ntauth import MAX_CERT_FILE, parse_certificates

    try:
        with path.open("rb") as f:
            data = f.read(MAX_CERT_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    certs = parse_certificates(data, str(path))
    if len(certs) != 1:
        raise ConfigError(f"{path} holds {len(certs)} certificates: give the one CA "
                          "certificate to publish")
    return certs[0]


def _call(method: Callable[..., object], *args: object, what: str) -> None:
    try:
        method(*args)
    except ldap_errors.LDAPInsufficientAccessRightsResult:
        raise DirectoryError(f"cannot {what}: the bind account may not write it; bind as an "
                             "Enterprise Admin (certutil -dspublish needs one too)") from None
    except ldap_errors.LDAPException as exc:
        raise DirectoryError(f"cannot {what}: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ldap_errors.LDAPOperationResult):
        return f"{exc.description} ({exc.result}): {exc.message}"
    return str(exc) or type(exc).__name__


def _connect_failure(uri: str, exc: Exception, ca_file: Path | None) -> str:
    text = str(exc)
    if "certificate" in text.lower() or isinstance(exc, ldap_errors.LDAPCertificateError):
        return (f"{uri}: the domain controller's TLS certificate is not trusted or does not "
                f"name the host ({text}): give its CA in [directory] ca_file "
                f"({ca_file or 'unset'}) and name the DC as its certificate does")
    return f"{uri} cannot be reached ({text}): check the URI and that the DC serves LDAP there"


__all__: Sequence[str] = (
    "DirectoryCa", "DirectoryError", "DirectoryNtAuth", "NtAuthRefresher", "PulseResult",
    "load_certificate", "ntauth_dn", "pulse", "read_password",
)
