"""OpenSC sees the virtual card as a PIV card and uses its keys through PKCS#11."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA

from rdscard.pki.ca import CertProfile, RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import (
    OPENSC_PKCS11,
    PIN,
    READER_0,
    CardFile,
    insert,
    run,
)

pytestmark = pytest.mark.integration

# OpenSC's PIV driver numbers the keys 01 (9A), 02 (9C), 03 (9D), 04 (9E).
ID_AUTH = "01"
ID_KEYMGMT = "03"


def _cert(pki: RealmPki, user: str, profile: CertProfile) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.layout.user_cert(user, profile).read_bytes())


def _sign(pcscd: IsolatedPcscd, tmp_path: Path, mechanism: str, data: bytes, key_id: str,
          *extra: str) -> bytes:
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "--sign",
         "--mechanism", mechanism, "--id", key_id, "-i", str(src), "-o", str(out), *extra],
        pcscd.env)
    return out.read_bytes()


def test_opensc_tool_sees_a_piv_card(pcscd: IsolatedPcscd, rsa_card: CardFile) -> None:
    with insert(rsa_card.card(), pcscd):
        listing = run(["opensc-tool", "-l"], pcscd.env).stdout
        line = next(row for row in listing.splitlines() if READER_0 in row)
        assert "Yes" in line  # card present
        name = run(["opensc-tool", "-r", "0", "-n"], pcscd.env).stdout
        assert name.strip() == "Personal Identity Verification Card"


def test_pkcs11_lists_token_certificates_and_keys(pcscd: IsolatedPcscd,
                                                  rsa_card: CardFile) -> None:
    with insert(rsa_card.card(), pcscd):
        slots = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "-L"], pcscd.env).stdout
        assert "token label        : alice (Authentication)" in slots
        assert "token manufacturer : piv_II" in slots
        objects = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "-O"],
                      pcscd.env).stdout
        assert "Certificate for PIV Authentication" in objects
        assert "Certificate for Key Management" in objects
        assert "label:      Certificate for Digital Signature" not in objects  # 9C is empty
        assert objects.count("Private Key Object; RSA") == 2
        assert objects.count("Public Key Object; RSA 2048 bits") == 2
        assert "CN=alice (Authentication)" in objects


def test_rsa_signatures_verify_with_the_certificate(pcscd: IsolatedPcscd, rsa_card: CardFile,
                                                    pki: RealmPki, tmp_path: Path) -> None:
    public = _cert(pki, "alice", CertProfile.AUTHENTICATION).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    data = b"sign me with the card"
    with insert(rsa_card.card(), pcscd):
        raw = _sign(pcscd, tmp_path, "RSA-PKCS", data, ID_AUTH)
        hashed = _sign(pcscd, tmp_path, "SHA256-RSA-PKCS", data, ID_AUTH)
    assert public.recover_data_from_signature(raw, padding.PKCS1v15(), None) == data
    public.verify(hashed, data, padding.PKCS1v15(), hashes.SHA256())


def test_ecdsa_signature_verifies_with_the_certificate(pcscd: IsolatedPcscd, ecc_card: CardFile,
                                                       pki: RealmPki, tmp_path: Path) -> None:
    public = _cert(pki, "bob", CertProfile.AUTHENTICATION).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    digest = hashlib.sha256(b"sign me with the P-256 card").digest()
    with insert(ecc_card.card(), pcscd):
        signature = _sign(pcscd, tmp_path, "ECDSA", digest, ID_AUTH,
                          "--signature-format", "openssl")
    public.verify(signature, digest, ECDSA(utils.Prehashed(hashes.SHA256())))


def test_key_management_key_decrypts(pcscd: IsolatedPcscd, rsa_card: CardFile, pki: RealmPki,
                                     tmp_path: Path) -> None:
    public = _cert(pki, "alice", CertProfile.KEY_MANAGEMENT).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    secret = b"a file key wrapped for the card"
    (tmp_path / "cipher.bin").write_bytes(public.encrypt(secret, padding.PKCS1v15()))
    with insert(rsa_card.card(), pcscd):
        run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "--decrypt",
             "--mechanism", "RSA-PKCS", "--id", ID_KEYMGMT, "-i", str(tmp_path / "cipher.bin"),
             "-o", str(tmp_path / "plain.bin")], pcscd.env)
    assert (tmp_path / "plain.bin").read_bytes() == secret
