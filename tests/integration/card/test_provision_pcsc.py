"""``rdscard card create --reader``: provisioning through pcscd with PIV commands only."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.pki.ca import CertProfile, RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import OPENSC_PKCS11, READER_0, insert, rdscard, run

pytestmark = pytest.mark.integration


def test_blank_card_in_a_reader_is_provisioned(pcscd: IsolatedPcscd, pki: RealmPki,
                                               tmp_path: Path) -> None:
    blank = VirtualPivCard(CardState.new(serial=0x5151))
    pin_file = tmp_path / "pin"
    pin_file.write_text("24680135\n")
    key_file = tmp_path / "mgmt"
    key_file.write_text("00112233445566778899aabbccddeeff\n")
    with insert(blank, pcscd):
        out = run(rdscard("card", "create", "--pki", str(pki.directory), "--user", "erin",
                          "--reader", READER_0, "--pin-file", str(pin_file), "--slots", "9a",
                          "--management-key-file", str(key_file),
                          "--management-algorithm", "aes128"), pcscd.env)
        assert "slot 9A: CN=erin (Authentication)" in out.stdout
        assert "24680135" not in out.stdout + out.stderr
        data = tmp_path / "data.bin"
        data.write_bytes(b"provisioned over PC/SC")
        run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", "24680135",
             "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "-i", str(data),
             "-o", str(tmp_path / "sig.bin")], pcscd.env)
        # The new AES-128 management key is in force: the factory key is refused.
        again = run(rdscard("card", "create", "--pki", str(pki.directory), "--user", "erin",
                            "--reader", READER_0, "--slots", "9a"), pcscd.env, check=False)
        assert again.returncode == 2 and "management key" in again.stderr
    cert = x509.load_pem_x509_certificate(
        pki.layout.user_cert("erin", CertProfile.AUTHENTICATION).read_bytes())
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify((tmp_path / "sig.bin").read_bytes(), data.read_bytes(), padding.PKCS1v15(),
                  hashes.SHA256())
