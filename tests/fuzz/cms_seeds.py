"""Seeds of the ``cms_envelope`` fuzz target: envelopes sealed by :func:`rdscard.efs.cms.seal`.

The envelopes are generated once and kept as files (``seeds/cms-*.der``)
with the test keys that open them (``seeds/cms-rsa2048.key``,
``seeds/cms-p256.key``, made for this purpose only): RSA-OAEP and ECDH
encryption are randomised, and a campaign is reproducible only when its
seeds are the same bytes each run. Regenerate with
``python -m tests.fuzz.cms_seeds``.
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from rdscard.efs import cms
from rdscard.secret import Secret

SEEDS: Final = Path(__file__).with_name("seeds")
#: The master key every seed envelope holds (a fixed test value).
MASTER: Final = bytes(range(64))
#: (file name, recipients by key type): a card's 9D and a recovery agent of the other type,
#: and each type alone (an all-RSA envelope is version 0, one with ECDH version 2).
ENVELOPES: Final = (
    ("cms-rsa-card-p256-agent.der", ("rsa2048", "p256")),
    ("cms-p256-card-rsa-agent.der", ("p256", "rsa2048")),
    ("cms-rsa.der", ("rsa2048",)),
    ("cms-p256.der", ("p256",)),
)

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _certificate(key: Key, name: str) -> x509.Certificate:
    """A self-signed key-management certificate (keyEncipherment or keyAgreement)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    rsa_key = isinstance(key, rsa.RSAPrivateKey)
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=rsa_key,
        data_encipherment=False, key_agreement=not rsa_key, key_cert_sign=False,
        crl_sign=False, encipher_only=False, decipher_only=False)
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(0x5EED0000 + len(name))
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(usage, critical=True)
            .sign(key if rsa_key else ec.generate_private_key(ec.SECP256R1()),
                  hashes.SHA256()))


def generate() -> None:
    """Write new test keys and the seed envelopes sealed for them."""
    SEEDS.mkdir(exist_ok=True)
    keys: dict[str, Key] = {"rsa2048": rsa.generate_private_key(65537, 2048),
                            "p256": ec.generate_private_key(ec.SECP256R1())}
    certs = {kind: _certificate(key, f"fuzz seed {kind}") for kind, key in keys.items()}
    for kind, key in keys.items():
        (SEEDS / f"cms-{kind}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    for name, kinds in ENVELOPES:
        (SEEDS / name).write_bytes(cms.seal(Secret(MASTER), [certs[k] for k in kinds]))


@functools.cache
def keys() -> dict[str, Key]:
    """The test keys that open the seed envelopes, by key type."""
    out: dict[str, Key] = {}
    for kind in ("rsa2048", "p256"):
        key = serialization.load_pem_private_key((SEEDS / f"cms-{kind}.key").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        out[kind] = key
    return out


def envelopes() -> tuple[bytes, ...]:
    return tuple((SEEDS / name).read_bytes() for name, _kinds in ENVELOPES)


if __name__ == "__main__":
    generate()
