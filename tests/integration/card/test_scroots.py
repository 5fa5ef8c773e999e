"""``rdscard certutil -scroots`` through pcscd and vpcd, checked by OpenSC, yubico-piv-tool,
libykpiv's own msroots functions and OpenSSL."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from rdscard.card.piv import VirtualPivCard
from rdscard.pki.ca import RealmPki, generate_key, make_ca, pem
from rdscard.pki.msroots import MSROOTS_OBJECTS, encode_roots, sha1
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import (
    OPENSC_PKCS11,
    READER_0,
    CardFile,
    insert,
    rdscard,
    run,
)

pytestmark = pytest.mark.integration

#: libykpiv's ykpiv_util_read_msroots / ykpiv_util_write_msroots, called through ctypes in a
#: process of its own (libpcsclite reads PCSCLITE_CSOCK_NAME once per process).
YKPIV = r"""
import ctypes, sys
lib = ctypes.CDLL("libykpiv.so.2")
state = ctypes.c_void_p()
assert lib.ykpiv_init(ctypes.byref(state), 0) == 0
rc = lib.ykpiv_connect(state, sys.argv[1].encode())
assert rc == 0, f"ykpiv_connect {rc}"
if sys.argv[2] == "read":
    data, size = ctypes.POINTER(ctypes.c_ubyte)(), ctypes.c_size_t()
    rc = lib.ykpiv_util_read_msroots(state, ctypes.byref(data), ctypes.byref(size))
    print(f"rc {rc}")
    if rc == 0:
        sys.stdout.write(bytes(data[:size.value]).hex() + "\n")
else:
    assert lib.ykpiv_authenticate(state, None) == 0  # the factory management key
    blob = open(sys.argv[3], "rb").read()
    buf = (ctypes.c_ubyte * len(blob)).from_buffer_copy(blob)
    print(f"rc {lib.ykpiv_util_write_msroots(state, buf, ctypes.c_size_t(len(blob)))}")
lib.ykpiv_disconnect(state)
"""


def ykpiv(pcscd: IsolatedPcscd, *args: str) -> tuple[int, bytes]:
    out = run([sys.executable, "-c", YKPIV, READER_0, *args], pcscd.env).stdout.split()
    return int(out[1]), bytes.fromhex(out[2]) if len(out) > 2 else b""


def listings(pcscd: IsolatedPcscd) -> tuple[str, str]:
    """What OpenSC and yubico-piv-tool show of the card (no PIN)."""
    objects = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "-O"], pcscd.env).stdout
    objects = re.sub(r"(Data|Profile) object \d+", r"\1 object", objects)  # handles
    assert "Certificate for PIV Authentication" in objects
    status = run(["yubico-piv-tool", "-r", READER_0, "-a", "status"], pcscd.env).stdout
    return objects, status


@pytest.fixture(scope="module")
def roots_file(pki: RealmPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The realm's root and ten more: about 4.5 KB of PKCS #7, two msroots objects."""
    more = [make_ca(f"Extra Root {n}", "rdscard scroots test", generate_key("p256"))
            for n in range(10)]
    path = tmp_path_factory.mktemp("roots") / "roots.pem"
    path.write_bytes(b"".join(pem(c) for c in [pki.root_cert, *more]))
    return path


def test_scroots_update_and_delete_as_real_peers_see_them(
        pcscd: IsolatedPcscd, rsa_card: CardFile, roots_file: Path, tmp_path: Path) -> None:
    roots = x509.load_pem_x509_certificates(roots_file.read_bytes())
    card: VirtualPivCard = rsa_card.card()
    state = ["--state-dir", str(tmp_path / "state")]
    with insert(card, pcscd):
        before = listings(pcscd)
        assert ykpiv(pcscd, "read")[0] != 0  # no msroots: libykpiv cannot fetch 5FFF11

        done = run(rdscard("certutil", "-scroots", "update", str(roots_file), READER_0),
                   pcscd.env)
        assert f"wrote {len(roots)} roots to the card" in done.stdout
        assert "in 5FFF11, 5FFF12)" in done.stdout
        ours = {t: card.state.data_objects[t] for t in MSROOTS_OBJECTS[:2]}
        assert MSROOTS_OBJECTS[2] not in card.state.data_objects

        info = run(rdscard("certutil", *state, "-scinfo", "--reader", READER_0), pcscd.env,
                   check=False)
        assert info.returncode == 1  # this host trusts nothing: the roots change no verdict
        assert f"roots on the card (msroots): {len(roots)} ====" in info.stdout
        for cert in roots:
            assert f"Cert Hash(sha1): {sha1(cert)}" in info.stdout
        assert "would be refused: not_in_ntauth" in info.stdout
        assert "used by this host: no ([logon.kdc] card_roots is off" in info.stdout
        config = tmp_path / "rdscard.toml"
        config.write_text('[logon]\nmode = "kerberos"\n'
                          '[logon.kdc]\ncard_roots = true\nvalidate_keytab = "/etc/host.kt"\n')
        info = run(rdscard("certutil", *state, "--config", str(config), "-scinfo", "--reader",
                           READER_0), pcscd.env, check=False)
        assert ("used by this host: yes: [logon.kdc] card_roots, for the KDC's certificate, "
                "the ticket checked against /etc/host.kt") in info.stdout

        # OpenSC and yubico-piv-tool see the card exactly as before
        assert listings(pcscd) == before
        # libykpiv reads our msroots, and it is a PKCS #7 that OpenSSL reads
        rc, blob = ykpiv(pcscd, "read")
        assert rc == 0
        p7 = tmp_path / "msroots.p7b"
        p7.write_bytes(blob)
        printed = run(["openssl", "pkcs7", "-inform", "DER", "-print_certs", "-in", str(p7)],
                      {}).stdout
        assert {c.fingerprint(hashes.SHA256()) for c in x509.load_pem_x509_certificates(
            printed.encode())} == {c.fingerprint(hashes.SHA256()) for c in roots}

        # libykpiv writes the same file into the same objects, byte for byte
        run(rdscard("certutil", "-scroots", "delete", READER_0), pcscd.env)
        assert not any(t in card.state.data_objects for t in MSROOTS_OBJECTS)
        p7.write_bytes(encode_roots(roots))
        assert ykpiv(pcscd, "write", str(p7))[0] == 0
        assert {t: card.state.data_objects.get(t) for t in MSROOTS_OBJECTS[:2]} == ours
        view = run(rdscard("certutil", "-scroots", "view", READER_0), pcscd.env).stdout
        assert f"roots on the card (msroots): {len(roots)}" in view
        # -scroots save: the roots libykpiv wrote, in a file OpenSSL reads
        saved = tmp_path / "saved.p7b"
        done = run(rdscard("certutil", "-scroots", "save", f"@{saved}", READER_0), pcscd.env)
        assert f"saved {len(roots)} roots from the card to {saved}" in done.stdout
        assert saved.read_bytes() == p7.read_bytes()
        printed = run(["openssl", "pkcs7", "-inform", "DER", "-print_certs", "-in", str(saved)],
                      {}).stdout
        assert {c.fingerprint(hashes.SHA256()) for c in x509.load_pem_x509_certificates(
            printed.encode())} == {c.fingerprint(hashes.SHA256()) for c in roots}

        gone = run(rdscard("certutil", "-scroots", "delete", READER_0), pcscd.env)
        assert f"deleted the roots on the card (msroots, {len(roots)} before)" in gone.stdout
        info = run(rdscard("certutil", *state, "-scinfo", "--reader", READER_0), pcscd.env,
                   check=False)
        assert "roots on the card (msroots): 0 ================\nnone" in info.stdout
        assert ykpiv(pcscd, "read")[0] != 0
        assert listings(pcscd) == before
        assert card.state.pin_retries_left == 3


def test_scroots_update_with_a_wrong_management_key_changes_nothing(
        pcscd: IsolatedPcscd, rsa_card: CardFile, pki: RealmPki, tmp_path: Path) -> None:
    card = rsa_card.card()
    key = tmp_path / "mgm.hex"
    key.write_text("00" * 24)
    with insert(card, pcscd):
        result = run(rdscard("certutil", "-scroots", "update", str(pki.layout.root_cert),
                             READER_0, "--management-key-file", str(key)), pcscd.env,
                     check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "wrong management key" in result.stderr
    assert not any(t in card.state.data_objects for t in MSROOTS_OBJECTS)
