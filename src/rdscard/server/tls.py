"""TLS for the RDP listener (MS-RDPBCGR 5.4.5.1: TLS as the external security protocol).

The certificate and key come from the configuration; with none configured a
self-signed certificate is generated in the state directory on first start
and reused afterwards. Only TLS 1.2 and newer are offered.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from rdscard.errors import ConfigError
from rdscard.private_files import make_private_dir, open_private_file

log = logging.getLogger("rdscard.tls")

GENERATED_CERT_NAME = "tls/server-cert.pem"
GENERATED_KEY_NAME = "tls/server-key.pem"
#: ``[server] certificate_type = "rsa"``: a generated RSA certificate lives beside the EC one.
GENERATED_RSA_CERT_NAME = "tls/server-cert-rsa.pem"
GENERATED_RSA_KEY_NAME = "tls/server-key-rsa.pem"


@dataclass(frozen=True)
class ServerCertificate:
    """The certificate the server presents and where it came from."""

    cert_path: Path
    key_path: Path
    fingerprint_sha256: str
    generated: bool


def _fingerprint(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    digest = cert.fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def _write_private(path: Path, data: bytes) -> None:
    make_private_dir(path.parent)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = open_private_file(tmp, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def generate_self_signed(cert_path: Path, key_path: Path, host_name: str,
                         key_type: str = "ec") -> None:
    """Write a new self-signed server certificate valid for ten years.

    ``key_type`` "ec" gives ECDSA P-256; "rsa" an RSA-2048 key, for clients
    that take no other (rdesktop 1.9).
    """
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048) if key_type == "rsa"
        else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def certificate_paths(state_dir: Path, cert_path: Path | None, key_path: Path | None,
                      key_type: str = "ec") -> tuple[Path, Path]:
    """Where the server's certificate and key are: configured, or generated."""
    if cert_path is not None and key_path is not None:
        return cert_path, key_path
    if key_type == "rsa":
        return state_dir / GENERATED_RSA_CERT_NAME, state_dir / GENERATED_RSA_KEY_NAME
    return state_dir / GENERATED_CERT_NAME, state_dir / GENERATED_KEY_NAME


def server_public_key(cert_path: Path) -> bytes:
    """The DER SubjectPublicKeyInfo of the certificate in ``cert_path`` (PEM)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_server_certificate(
    state_dir: Path, cert_path: Path | None, key_path: Path | None, host_name: str = "",
    key_type: str = "ec",
) -> ServerCertificate:
    """The configured certificate, or the generated one (created on first use)."""
    generated = False
    if cert_path is None or key_path is None:
        cert_path, key_path = certificate_paths(state_dir, None, None, key_type)
        if not (cert_path.exists() and key_path.exists()):
            generate_self_signed(cert_path, key_path, host_name or socket.gethostname(),
                                 key_type)
            generated = True
    try:
        cert_pem = cert_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the TLS certificate {cert_path}: {exc.strerror}; "
            "fix server.certificate or remove it to use a generated one"
        ) from None
    try:
        fingerprint = _fingerprint(cert_pem)
    except ValueError:
        raise ConfigError(f"{cert_path} is not a PEM certificate (server.certificate)") from None
    return ServerCertificate(cert_path, key_path, fingerprint, generated)


#: OpenSSL 3.0's SSL_OP_CLEANSE_PLAINTEXT (not named by Python's ssl module).
SSL_OP_CLEANSE_PLAINTEXT = 0x00000002


def server_ssl_context(cert: ServerCertificate) -> ssl.SSLContext:
    """A server-side TLS context: TLS 1.2+, the server certificate loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ssl.OPENSSL_VERSION_INFO >= (3, 0):
        # The Client Info PDU carries the PIN in TLS plaintext: without this, OpenSSL keeps
        # each decrypted record in its read buffer after handing it over (SSL_CTX_set_options).
        context.options |= SSL_OP_CLEANSE_PLAINTEXT
    try:
        context.load_cert_chain(cert.cert_path, cert.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {cert.cert_path} with key {cert.key_path}: {exc}"
        ) from None
    return context
