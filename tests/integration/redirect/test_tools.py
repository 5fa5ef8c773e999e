"""Unmodified PC/SC tools use the virtual PIV card through our pcsc-lite socket."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from rdscard.pki.ca import CertProfile, RealmPki
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import (
    OPENSC_PKCS11,
    PIN,
    READER_0,
    REALM,
    CardFile,
    insert,
    run,
)
from tests.integration.redirect.conftest import RedirectedSocket

pytestmark = pytest.mark.integration

ID_AUTH = "01"  # OpenSC's PIV id of key 9A


def _public_key(pki: RealmPki, user: str) -> object:
    cert = x509.load_pem_x509_certificate(
        pki.layout.user_cert(user, CertProfile.AUTHENTICATION).read_bytes()
    )
    return cert.public_key()


def test_opensc_tool_lists_the_reader_and_names_the_piv_card(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile
) -> None:
    with insert(rsa_card.card(), pcscd):
        listing = run(["opensc-tool", "-l"], redirected.env).stdout
        line = next(row for row in listing.splitlines() if READER_0 in row)
        assert "Yes" in line  # card present, read from our reader table
        name = run(["opensc-tool", "-r", "0", "-n"], redirected.env).stdout
        assert name.strip() == "Personal Identity Verification Card"
    # the programs' connections went away: the service logged their cleanup, no error
    assert "closing the connection" not in redirected.log()


def test_pkcs11_lists_slots_and_objects(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile
) -> None:
    with insert(rsa_card.card(), pcscd):
        slots = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "-L"], redirected.env).stdout
        assert "token label        : alice (Authentication)" in slots
        objects = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "-O"],
                      redirected.env).stdout
        assert "Certificate for PIV Authentication" in objects
        assert objects.count("Private Key Object; RSA") == 2
        assert "CN=alice (Authentication)" in objects


@pytest.mark.parametrize("card_name", ["rsa_card", "ecc_card"])
def test_signatures_through_the_socket_verify_with_the_certificate(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, pki: RealmPki, tmp_path: Path,
    card_name: str, request: pytest.FixtureRequest,
) -> None:
    card: CardFile = request.getfixturevalue(card_name)
    data = b"signed through the session's pcsc-lite socket"
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    mechanism = "SHA256-RSA-PKCS" if card.key_type.startswith("rsa") else "ECDSA-SHA256"
    extra = [] if card.key_type.startswith("rsa") else ["--signature-format", "openssl"]
    with insert(card.card(), pcscd):
        run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "--sign",
             "--mechanism", mechanism, "--id", ID_AUTH, "-i", str(src), "-o", str(out), *extra],
            redirected.env)
    public = _public_key(pki, card.user)
    signature = out.read_bytes()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def test_yubico_piv_tool_status(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile
) -> None:
    with insert(rsa_card.card(), pcscd):
        status = run(["yubico-piv-tool", "-r", READER_0, "-a", "status"], redirected.env).stdout
    assert "Slot 9a" in status
    assert "alice (Authentication)" in status


def test_the_key_management_key_decrypts_through_the_socket(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile, pki: RealmPki,
    tmp_path: Path,
) -> None:
    cert = x509.load_pem_x509_certificate(
        pki.layout.user_cert("alice", CertProfile.KEY_MANAGEMENT).read_bytes()
    )
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    secret = b"a file key wrapped for the card"
    (tmp_path / "cipher.bin").write_bytes(public.encrypt(secret, padding.PKCS1v15()))
    with insert(rsa_card.card(), pcscd):
        run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "--decrypt",
             "--mechanism", "RSA-PKCS", "--id", "03", "-i", str(tmp_path / "cipher.bin"),
             "-o", str(tmp_path / "plain.bin")], redirected.env)
    assert (tmp_path / "plain.bin").read_bytes() == secret


def test_kinit_gets_a_tgt_by_pkinit_through_the_socket(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile, pki: RealmPki,
    tmp_path: Path,
) -> None:
    with MitKdc(tmp_path / "kdc", REALM, pki) as kdc:
        principal = kdc.add_user("alice")
        env = {**kdc.env, **redirected.env}
        with insert(rsa_card.card(), pcscd):
            result = run(["kinit", "-X", f"X509_user_identity=PKCS11:{OPENSC_PKCS11}",
                          principal], env, stdin=PIN + "\n", check=False)
            assert result.returncode == 0, result.stderr + "\n" + kdc.log()
        tickets = run(["klist"], env).stdout
    assert f"Default principal: {principal}" in tickets
    assert f"krbtgt/{REALM}@{REALM}" in tickets


def test_pkcs11_tool_self_test_passes_through_the_socket(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile
) -> None:
    with insert(rsa_card.card(), pcscd):
        result = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN,
                      "--test"], redirected.env)
    assert "No errors" in result.stdout
    assert "RSA-PKCS: OK" in result.stdout
