"""Programs inside an RDP session use the card in the client's reader (xfreerdp /smartcard)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rdscard.pki.ca import CertProfile, RealmPki
from tests.integration.card.conftest import OPENSC_PKCS11, PIN, READER_0, WAIT_SCRIPT
from tests.integration.sessioncard.conftest import RedirectedSession

pytestmark = pytest.mark.integration


def test_opensc_in_the_session_sees_the_clients_reader_and_card(
    redirected: RedirectedSession,
) -> None:
    listing = redirected.run("opensc-tool", "-l").stdout
    line = next(row for row in listing.splitlines() if READER_0 in row)
    assert "Yes" in line
    name = redirected.run("opensc-tool", "-r", "0", "-n").stdout
    assert name.strip() == "Personal Identity Verification Card"
    status = redirected.run("yubico-piv-tool", "-r", "Virtual", "-a", "status").stdout
    assert "CHUID" in status or "Slot 9a" in status


def test_pkcs11_signs_in_the_session_with_the_clients_card(
    redirected: RedirectedSession, pki: RealmPki, tmp_path: Path
) -> None:
    objects = redirected.run(
        "pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "-O"
    ).stdout
    assert "Certificate for PIV Authentication" in objects
    data = tmp_path / "in.bin"
    out = tmp_path / "sig.bin"
    data.write_bytes(b"signed inside the session")
    os.chmod(tmp_path, 0o755)
    redirected.run(
        "pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "--sign",
        "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "-i", str(data), "-o", str(out),
    )
    cert_path = pki.layout.user_cert("alice", CertProfile.AUTHENTICATION)
    public = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(out.read_bytes(), data.read_bytes(), padding.PKCS1v15(), hashes.SHA256())


def _session_waiter(redirected: RedirectedSession, want: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
            str(redirected.server.state_dir), "exec", str(redirected.session), "--",
            sys.executable, "-c", WAIT_SCRIPT, READER_0, want, "20"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_card_removal_and_insertion_wake_a_waiting_program(
    redirected: RedirectedSession,
) -> None:
    waiter = _session_waiter(redirected, "empty")
    time.sleep(1.0)
    redirected.card.remove()
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0 and out.strip() == "empty", err
    waiter = _session_waiter(redirected, "present")
    time.sleep(1.0)
    redirected.card.insert()
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0 and out.strip() == "present", err


def test_closing_the_client_ends_a_waiting_program_promptly(
    redirected: RedirectedSession,
) -> None:
    waiter = _session_waiter(redirected, "empty")
    time.sleep(1.0)
    redirected.client.close()
    started = time.monotonic()
    out, _ = waiter.communicate(timeout=30)
    assert time.monotonic() - started < 3.0
    assert out.strip() != "empty"  # it ended with an error, not a card removal
    assert redirected.server.process.poll() is None  # the server stays up


def test_session_socket_is_private(redirected: RedirectedSession) -> None:
    directory = redirected.socket.parent
    mode = directory.stat().st_mode
    assert stat.S_IMODE(mode) == 0o700
    assert stat.S_ISSOCK(redirected.socket.stat().st_mode)
    # another user cannot reach it: the directory stops them, the peer check would too
    probe = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "env", f"PCSCLITE_CSOCK_NAME={redirected.socket}", "opensc-tool", "-l"],
        capture_output=True, text=True, timeout=30,
    )
    assert READER_0 not in probe.stdout


PYSCARD_SCRIPT = """
from smartcard.scard import *
hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
assert hresult == SCARD_S_SUCCESS, SCardGetErrorMessage(hresult)
hresult, readers = SCardListReaders(ctx, [])
assert hresult == SCARD_S_SUCCESS, SCardGetErrorMessage(hresult)
print("readers", readers)
hresult, card, protocol = SCardConnect(ctx, readers[0], SCARD_SHARE_SHARED,
                                       SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
assert hresult == SCARD_S_SUCCESS, SCardGetErrorMessage(hresult)
select = [0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00]
hresult, response = SCardTransmit(card, protocol, select)
assert hresult == SCARD_S_SUCCESS, SCardGetErrorMessage(hresult)
print("sw", bytes(response[-2:]).hex())
hresult, reader, state, proto, atr = SCardStatus(card)
print("status", reader, bytes(atr).hex())
SCardDisconnect(card, SCARD_LEAVE_CARD)
SCardReleaseContext(ctx)
"""


def test_pyscard_lists_connects_and_transmits_in_the_session(
    redirected: RedirectedSession,
) -> None:
    out = redirected.run(sys.executable, "-c", PYSCARD_SCRIPT).stdout
    assert f"readers ['{READER_0}', " in out
    assert "sw 9000" in out
    assert f"status {READER_0} 3bf8" in out


def test_pkcs11_decrypts_and_passes_its_self_test_in_the_session(
    redirected: RedirectedSession, pki: RealmPki, tmp_path: Path
) -> None:
    cert_path = pki.layout.user_cert("alice", CertProfile.KEY_MANAGEMENT)
    public = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    secret = b"for the key management key only"
    encrypted, decrypted = tmp_path / "enc.bin", tmp_path / "dec.bin"
    encrypted.write_bytes(public.encrypt(secret, padding.PKCS1v15()))
    os.chmod(tmp_path, 0o755)
    redirected.run(
        "pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN, "--decrypt",
        "--mechanism", "RSA-PKCS", "--id", "03", "-i", str(encrypted), "-o", str(decrypted),
    )
    assert decrypted.read_bytes() == secret
    test = redirected.run("pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", PIN,
                          "--test", check=False)
    assert "No errors" in test.stdout, test.stdout + test.stderr


LARGE_OBJECT_SCRIPT = """
from rdscard.pki.piv_client import DEFAULT_MANAGEMENT_KEY, PivClient
from rdscard.pki.piv_codec import Algorithm
from rdscard.pki.transport import PcscTransport
with PcscTransport(None) as transport:
    client = PivClient(transport)
    client.select()
    client.authenticate_admin(bytearray(DEFAULT_MANAGEMENT_KEY), Algorithm.TDES)
    for size in (3000, 20000):
        value = bytes(range(251)) * (size // 251) + bytes(size % 251)
        client.put_data(0x5FC106, value)  # the security object: chained writes
        # One extended GET DATA: the whole object in one response (Le 0000)
        response = transport.transmit(bytes.fromhex("00CB3FFF0000055C035FC1060000"))
        body, sw = response[:-2], response[-2:].hex()
        print("object", size, sw, len(body), body.endswith(value))
"""


def test_large_responses_cross_in_the_clients_large_chunks(
    redirected: RedirectedSession,
) -> None:
    # The server lets the client send chunks of up to 16256 bytes (VCChunkSize), which
    # xfreerdp uses: a 3 KB response is one chunk, a 20 KB one two; both arrive whole.
    out = redirected.run(sys.executable, "-c", LARGE_OBJECT_SCRIPT).stdout
    # 53 82 LL LL and the value
    assert "object 3000 9000 3004 True" in out and "object 20000 9000 20004 True" in out, out
