"""A test PKI for one Kerberos realm: root CA, issuing CA, KDC and user certificates.

The profiles follow what smart card logon needs from a PKI:

- the KDC certificate carries the EKU id-pkinit-KPKdc (RFC 4556 3.2.4,
  1.3.6.1.5.2.3.5) and serverAuth, and the SAN id-pkinit-san
  ``krbtgt/REALM@REALM`` (RFC 4556 3.2.2);
- a user authentication certificate (PIV slot 9A) carries the UPN SAN
  (1.3.6.1.4.1.311.20.2.3) ``user@domain``, optionally an id-pkinit-san
  ``user@REALM``, the EKUs Smart Card Logon (1.3.6.1.4.1.311.20.2.2) and
  clientAuth, key usage digitalSignature;
- a key-management certificate (slot 9D) has keyEncipherment (RSA) or
  keyAgreement (ECC) and the EKUs emailProtection and EFS.

On disk (see :class:`PkiLayout`)::

    pki.json                    realm and domain
    root.pem root.key           self-signed root CA
    issuing-ca.pem/.key         issuing CA, signed by the root
    chain.pem                   issuing CA + root
    kdc.pem kdc.key kdc-chain.pem
    users/<user>/<profile>.pem  (and <profile>.key for software keys)
    untrusted/ca.pem ca.key     a CA nobody trusts, for negative tests

Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from rdscard.errors import ConfigError
from rdscard.pki.der import (
    OID_NTDS_CA_SECURITY_EXT,
    Krb5PrincipalName,
    NameType,
    encode_sid_extension,
    encode_upn,
)

OID_PKINIT_SAN: Final = ObjectIdentifier("1.3.6.1.5.2.2")
OID_PKINIT_KPKDC: Final = ObjectIdentifier("1.3.6.1.5.2.3.5")
OID_PKINIT_KPCLIENTAUTH: Final = ObjectIdentifier("1.3.6.1.5.2.3.4")
OID_MS_UPN: Final = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
OID_MS_SMARTCARD_LOGON: Final = ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")
OID_MS_EFS: Final = ObjectIdentifier("1.3.6.1.4.1.311.10.3.4")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

CA_VALIDITY: Final = datetime.timedelta(days=3650)
LEAF_VALIDITY: Final = datetime.timedelta(days=365)
BACKDATE: Final = datetime.timedelta(hours=1)
_USER_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REALM: Final = re.compile(r"^[A-Z0-9][A-Z0-9.-]{0,252}$")
_DOMAIN: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{0,252}$")


class CertProfile(Enum):
    """What a certificate is for, named after the PIV slot that holds it (SP 800-73-4 3.1)."""

    AUTHENTICATION = "auth"  # slot 9A
    SIGNATURE = "sign"  # slot 9C
    KEY_MANAGEMENT = "keymgmt"  # slot 9D
    CARD_AUTHENTICATION = "cardauth"  # slot 9E


@dataclass(frozen=True)
class PkiLayout:
    """File names of a PKI directory."""

    directory: Path

    @property
    def metadata(self) -> Path:
        return self.directory / "pki.json"

    @property
    def root_cert(self) -> Path:
        return self.directory / "root.pem"

    @property
    def root_key(self) -> Path:
        return self.directory / "root.key"

    @property
    def issuing_cert(self) -> Path:
        return self.directory / "issuing-ca.pem"

    @property
    def issuing_key(self) -> Path:
        return self.directory / "issuing-ca.key"

    @property
    def chain(self) -> Path:
        """Issuing CA then root, PEM."""
        return self.directory / "chain.pem"

    @property
    def kdc_cert(self) -> Path:
        return self.directory / "kdc.pem"

    @property
    def kdc_key(self) -> Path:
        return self.directory / "kdc.key"

    @property
    def kdc_chain(self) -> Path:
        """KDC certificate then issuing CA, PEM."""
        return self.directory / "kdc-chain.pem"

    @property
    def untrusted_cert(self) -> Path:
        return self.directory / "untrusted" / "ca.pem"

    @property
    def untrusted_key(self) -> Path:
        return self.directory / "untrusted" / "ca.key"

    def user_dir(self, user: str) -> Path:
        return self.directory / "users" / user

    def user_cert(self, user: str, profile: CertProfile) -> Path:
        return self.user_dir(user) / f"{profile.value}.pem"

    def user_key(self, user: str, profile: CertProfile) -> Path:
        return self.user_dir(user) / f"{profile.value}.key"


def check_user_name(user: str) -> str:
    """Reject names that cannot be a file name, a principal and a UPN at once."""
    if not _USER_NAME.match(user):
        raise ConfigError(
            f"user name {user!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(at most 64 characters)"
        )
    return user


def generate_key(key_type: str = "rsa2048") -> PrivateKey:
    """A software key: ``rsa2048``, ``rsa3072`` or ``p256``."""
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ConfigError(f"unknown key type {key_type!r}: use rsa2048, rsa3072 or p256")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically with mode 0600 (the file never exists with a wider mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate or metadata file atomically, mode 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_certificate(path: Path) -> x509.Certificate:
    """A PEM or DER certificate file, with a clear error when missing or unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ConfigError(f"{path} is not a certificate (PEM or DER)") from None


def load_private_key(path: Path) -> PrivateKey:
    """A PEM private key (RSA or ECC)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read private key {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: only RSA and ECC keys are supported")
    return key


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _builder(
    subject: x509.Name,
    issuer: x509.Certificate | None,
    issuer_name: x509.Name,
    public_key: PublicKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    return builder


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    return builder.sign(key, hashes.SHA256())


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_agreement: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    common_name: str,
    organisation: str,
    key: PrivateKey,
    *,
    issuer_cert: x509.Certificate | None = None,
    issuer_key: PrivateKey | None = None,
    path_length: int | None = None,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A CA certificate: self-signed when ``issuer_cert`` is None."""
    now = now or _utcnow()
    subject = _name(common_name, organisation)
    issuer_name = issuer_cert.subject if issuer_cert is not None else subject
    builder = (
        _builder(subject, issuer_cert, issuer_name, key.public_key(), now - BACKDATE,
                 now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True, digital_signature=True),
                       critical=True)
    )
    if issuer_cert is None:
        # A self-signed root names itself as authority.
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    return _sign(builder, issuer_key if issuer_key is not None else key)


class RealmPki:
    """A test PKI for ``realm`` (Kerberos) and ``domain`` (UPN suffix), kept in ``directory``."""

    def __init__(
        self,
        directory: Path,
        realm: str,
        domain: str,
        root_cert: x509.Certificate,
        issuing_cert: x509.Certificate,
        issuing_key: PrivateKey,
        kdc_cert: x509.Certificate,
    ) -> None:
        self.layout = PkiLayout(directory)
        self.directory = directory
        self.realm = realm
        self.domain = domain
        self.root_cert = root_cert
        self.issuing_cert = issuing_cert
        self._issuing_key = issuing_key
        self.kdc_cert = kdc_cert

    def __repr__(self) -> str:
        return f"RealmPki(directory={str(self.directory)!r}, realm={self.realm!r})"

    # -- creation and loading ---------------------------------------------------
    @classmethod
    def create(
        cls,
        directory: Path,
        realm: str,
        domain: str,
        *,
        now: datetime.datetime | None = None,
        overwrite: bool = False,
    ) -> RealmPki:
        """Create the root CA, the issuing CA and the KDC certificate in ``directory``."""
        if not _REALM.match(realm):
            raise ConfigError(f"realm {realm!r} is not valid: use upper case, e.g. EXAMPLE.TEST")
        if not _DOMAIN.match(domain):
            raise ConfigError(f"domain {domain!r} is not valid: use lower case, e.g. example.test")
        layout = PkiLayout(directory)
        if layout.metadata.exists() and not overwrite:
            raise ConfigError(
                f"{directory} already holds a PKI: load it, or choose an empty directory"
            )
        directory.mkdir(parents=True, exist_ok=True)
        now = now or _utcnow()
        organisation = f"rdscard test PKI {realm}"
        root_key = generate_key()
        root = make_ca(f"{realm} Test Root CA", organisation, root_key, path_length=1, now=now)
        issuing_key = generate_key()
        issuing = make_ca(
            f"{realm} Test Issuing CA", organisation, issuing_key,
            issuer_cert=root, issuer_key=root_key, path_length=0, now=now,
        )
        write_private(layout.root_key, key_pem(root_key))
        write_public(layout.root_cert, pem(root))
        write_private(layout.issuing_key, key_pem(issuing_key))
        write_public(layout.issuing_cert, pem(issuing))
        write_public(layout.chain, pem(issuing) + pem(root))
        kdc_key = generate_key()
        pki = cls(directory, realm, domain, root, issuing, issuing_key, root)
        kdc = pki.issue_kdc_certificate(kdc_key.public_key(), now=now)
        pki.kdc_cert = kdc
        write_private(layout.kdc_key, key_pem(kdc_key))
        write_public(layout.kdc_cert, pem(kdc))
        write_public(layout.kdc_chain, pem(kdc) + pem(issuing))
        meta = {"realm": realm, "domain": domain}
        write_public(layout.metadata, (json.dumps(meta, indent=2) + "\n").encode())
        return pki

    @classmethod
    def load(cls, directory: Path) -> RealmPki:
        """Load a PKI made by :meth:`create`."""
        layout = PkiLayout(directory)
        try:
            meta = json.loads(layout.metadata.read_text())
            realm, domain = str(meta["realm"]), str(meta["domain"])
        except OSError:
            raise ConfigError(
                f"{directory} holds no PKI: create one with 'rdscard pki create --dir {directory}'"
            ) from None
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{layout.metadata} is damaged: recreate the PKI") from None
        return cls(
            directory, realm, domain,
            load_certificate(layout.root_cert),
            load_certificate(layout.issuing_cert),
            load_private_key(layout.issuing_key),
            load_certificate(layout.kdc_cert),
        )

    # -- names ------------------------------------------------------------------
    def upn(self, user: str) -> str:
        """``user@domain``: the UPN written into the user's certificates."""
        return f"{check_user_name(user)}@{self.domain}"

    def principal(self, user: str) -> str:
        """``user@REALM``: the user's Kerberos principal."""
        return f"{check_user_name(user)}@{self.realm}"

    @property
    def krbtgt(self) -> str:
        return f"krbtgt/{self.realm}@{self.realm}"

    # -- issuing ----------------------------------------------------------------
    def issue_kdc_certificate(
        self, public_key: PublicKey, *, now: datetime.datetime | None = None
    ) -> x509.Certificate:
        """The KDC certificate: id-pkinit-KPKdc + serverAuth, SAN krbtgt/REALM@REALM."""
        now = now or _utcnow()
        san = Krb5PrincipalName.parse(self.krbtgt, NameType.KRB5_NT_SRV_INST)
        builder = (
            _builder(
                _name(f"kdc.{self.domain}", f"rdscard test PKI {self.realm}"),
                self.issuing_cert, self.issuing_cert.subject, public_key,
                now - BACKDATE, now + LEAF_VALIDITY,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=True),
                           critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([OID_PKINIT_KPKDC, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.OtherName(OID_PKINIT_SAN, san.encode()),
                        x509.DNSName(f"kdc.{self.domain}"),
                    ]
                ),
                critical=False,
            )
        )
        return _sign(builder, self._issuing_key)

    def issue_user_certificate(
        self,
        user: str,
        public_key: PublicKey,
        *,
        profile: CertProfile = CertProfile.AUTHENTICATION,
        upn: bool = True,
        pkinit_san: bool = False,
        expired: bool = False,
        untrusted: bool = False,
        sid: str | None = None,
        now: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """A certificate for ``user`` holding ``public_key`` (typically read from the card).

        ``upn=False`` leaves the UPN out, ``expired=True`` makes a certificate
        whose validity ended yesterday and ``untrusted=True`` signs it with
        :meth:`untrusted_ca` instead of the issuing CA: the three negative cases
        a logon service must refuse. ``sid`` adds the SID extension
        (szOID_NTDS_CA_SECURITY_EXT) a Windows CA writes since KB5014754, naming
        the account's objectSid, for strong certificate mapping.
        """
        now = now or _utcnow()
        if expired:
            not_before = now - datetime.timedelta(days=30)
            not_after = now - datetime.timedelta(days=1)
        else:
            not_before, not_after = now - BACKDATE, now + LEAF_VALIDITY
        if untrusted:
            issuer_cert, issuer_key = self.untrusted_ca()
        else:
            issuer_cert, issuer_key = self.issuing_cert, self._issuing_key
        names: list[x509.GeneralName] = []
        if upn:
            names.append(x509.OtherName(OID_MS_UPN, encode_upn(self.upn(user))))
        if pkinit_san:
            principal = Krb5PrincipalName.parse(self.principal(user))
            names.append(x509.OtherName(OID_PKINIT_SAN, principal.encode()))
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        if profile is CertProfile.KEY_MANAGEMENT:
            names.append(x509.RFC822Name(self.upn(user)))
            usage = _key_usage(key_encipherment=is_rsa, key_agreement=not is_rsa)
            ekus = [ExtendedKeyUsageOID.EMAIL_PROTECTION, OID_MS_EFS]
            label = "Key Management"
        elif profile is CertProfile.SIGNATURE:
            names.append(x509.RFC822Name(self.upn(user)))
            usage = _key_usage(digital_signature=True)
            ekus = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
            label = "Digital Signature"
        elif profile is CertProfile.CARD_AUTHENTICATION:
            usage = _key_usage(digital_signature=True)
            ekus = [ExtendedKeyUsageOID.CLIENT_AUTH]
            label = "Card Authentication"
        else:
            usage = _key_usage(digital_signature=True)
            ekus = [OID_MS_SMARTCARD_LOGON, ExtendedKeyUsageOID.CLIENT_AUTH]
            label = "Authentication"
        builder = (
            _builder(
                _name(f"{user} ({label})", f"rdscard test PKI {self.realm}"),
                issuer_cert, issuer_cert.subject, public_key, not_before, not_after,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if sid is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(
                x509.ObjectIdentifier(OID_NTDS_CA_SECURITY_EXT), encode_sid_extension(sid)),
                critical=False)
        return _sign(builder, issuer_key)

    def untrusted_ca(self) -> tuple[x509.Certificate, PrivateKey]:
        """A self-signed CA outside this PKI's trust (created on first use)."""
        layout = self.layout
        if layout.untrusted_cert.exists():
            return load_certificate(layout.untrusted_cert), load_private_key(layout.untrusted_key)
        key = generate_key()
        cert = make_ca(f"{self.realm} Untrusted CA", "rdscard untrusted test CA", key,
                       path_length=0)
        write_private(layout.untrusted_key, key_pem(key))
        write_public(layout.untrusted_cert, pem(cert))
        return cert, key

    # -- files ------------------------------------------------------------------
    def save_user_certificate(
        self, user: str, profile: CertProfile, cert: x509.Certificate,
        key: PrivateKey | None = None,
    ) -> Path:
        """Store a user's certificate (and a software key) under ``users/<user>/``."""
        path = self.layout.user_cert(check_user_name(user), profile)
        if key is not None:
            write_private(self.layout.user_key(user, profile), key_pem(key))
        write_public(path, pem(cert))
        return path

    def create_software_user(
        self, user: str, *, key_type: str = "rsa2048", pkinit_san: bool = False
    ) -> tuple[x509.Certificate, PrivateKey]:
        """An authentication certificate with a software key, both saved to files."""
        key = generate_key(key_type)
        cert = self.issue_user_certificate(user, key.public_key(), pkinit_san=pkinit_san)
        self.save_user_certificate(user, CertProfile.AUTHENTICATION, cert, key)
        return cert, key

    def users(self) -> list[str]:
        """Users with a directory under ``users/``."""
        base = self.directory / "users"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
