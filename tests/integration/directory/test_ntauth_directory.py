"""NTAuth in Active Directory (Samba 4 AD DC): publish, follow, sign in, withdraw, refuse."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from rdscard.directory.ntauth import ntauth_dn
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.samba import SambaDc
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, CardFile, insert
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("samba-dc")]

ACCOUNT = "rdscard-alice"


def certutil(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rdscard.cli.main", "certutil",
                           "--config", str(config), *argv],
                          capture_output=True, text=True, timeout=120, check=False)


def ldif_values(ldif: str, attribute: str) -> list[bytes]:
    """The base64 values of ``attribute`` in ldbsearch's LDIF (folded lines joined)."""
    unfolded = ldif.replace("\n ", "")
    prefix = f"{attribute}:: "
    return [base64.b64decode(line[len(prefix):]) for line in unfolded.splitlines()
            if line.startswith(prefix)]


def write_config(tmp_path: Path, dc: SambaDc) -> Path:
    password = tmp_path / "ldap.pw"
    password.write_text(dc.admin_password + "\n")
    password.chmod(0o600)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[server]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        '[logon]\nmode = "local"\n'
        f'[logon.accounts]\n"alice@example.test" = "{ACCOUNT}"\n'
        "[directory]\nenabled = true\n"
        f'uris = ["{dc.ldaps_uri}"]\nbind_dn = "{dc.admin_upn}"\n'
        f'bind_password_file = "{password}"\nca_file = "{dc.tls_ca}"\n'
        "refresh_interval = 3600\n")
    return config


def sign_in(server: ServerProcess, pcscd: IsolatedPcscd, card_file: CardFile,
            expected: str) -> None:
    card = insert(card_file.card(), pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"], env=pcscd.env)
    try:
        assert wait_for(lambda: expected in server.log, timeout=40), (
            server.log + client.output())
    finally:
        client.close()
        screen.close()
        card.remove()


def test_dspublish_then_pulse_signs_in_and_withdrawing_the_ca_refuses(
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, pcscd: IsolatedPcscd,
    rsa_card: CardFile,
) -> None:
    ensure_account(ACCOUNT)
    config = write_config(tmp_path, samba_dc)
    dn = ntauth_dn(samba_dc.base_dn)
    issuing = pki.issuing_cert.public_bytes(serialization.Encoding.DER)

    # the object is not provisioned: -dspublish without -f says so, with -f creates it
    refused = certutil(config, "-dspublish", str(pki.layout.issuing_cert), "NTAuthCA")
    assert refused.returncode == 2 and "add -f" in refused.stderr, refused.stderr
    published = certutil(config, "-dspublish", "-f", str(pki.layout.issuing_cert), "NTAuthCA")
    assert published.returncode == 0, published.stderr
    assert f"published: {pki.issuing_cert.subject.rfc4514_string()} in {dn}" in published.stdout
    again = certutil(config, "-dspublish", "-f", str(pki.layout.issuing_cert), "NTAuthCA")
    assert "already published" in again.stdout, again.stderr

    # Samba's own view of its database
    ldif = samba_dc.ldbsearch(dn, "cACertificate", "objectClass")
    assert ldif_values(ldif, "cACertificate") == [issuing], ldif
    assert "objectClass: certificationAuthority" in ldif

    pulsed = certutil(config, "-pulse")
    assert pulsed.returncode == 0, pulsed.stderr
    assert "1 CAs (1 added, 0 removed)" in pulsed.stdout
    store = NtAuthStore.in_state_dir(tmp_path / "state")
    assert store.certificates() == [pki.issuing_cert]

    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    try:
        assert wait_for(lambda: "NTAuth refreshed from" in server.log, timeout=20), server.log
        sign_in(server, pcscd, rsa_card, "signed in:")

        # withdrawn in the directory with Samba's own tool (the placeholder keeps the
        # mandatory attribute), then followed by the host
        encoded = base64.b64encode(issuing).decode()
        samba_dc.ldbmodify(f"dn: {dn}\nchangetype: modify\nadd: cACertificate\n"
                           "cACertificate:: AA==\n-\ndelete: cACertificate\n"
                           f"cACertificate:: {encoded}\n-\n")
        pulsed = certutil(config, "-pulse")
        assert pulsed.returncode == 0, pulsed.stderr
        assert "0 CAs (0 added, 1 removed)" in pulsed.stdout
        assert store.certificates() == []
        sign_in(server, pcscd, rsa_card, "sign-in refused (not_in_ntauth)")
    finally:
        server.stop()
    records = [json.loads(line) for line in
               (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [(r["result"], r["reason"]) for r in records][-2:] == [
        ("success", ""), ("refused", "not_in_ntauth")], records


def test_viewdelstore_removes_a_ca_from_the_directory_and_the_next_pulse_stops_trusting_it(
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, pcscd: IsolatedPcscd,
    rsa_card: CardFile,
) -> None:
    ensure_account(ACCOUNT)
    config = write_config(tmp_path, samba_dc)
    dn = ntauth_dn(samba_dc.base_dn)
    url = f"ldap:///{dn}?cACertificate?base?objectClass=certificationAuthority"
    root = pki.root_cert.public_bytes(serialization.Encoding.DER)
    for ca in (pki.layout.issuing_cert, pki.layout.root_cert):
        published = certutil(config, "-dspublish", "-f", str(ca), "NTAuthCA")
        assert published.returncode == 0, published.stderr
    assert certutil(config, "-pulse").returncode == 0
    store = NtAuthStore.in_state_dir(tmp_path / "state")
    assert len(store.certificates()) == 2

    # -viewstore with the URL lists the object's CAs with Windows' thumbprint
    viewed = certutil(config, "-viewstore", url)
    assert viewed.returncode == 0, viewed.stderr
    thumbprint = pki.issuing_cert.fingerprint(hashes.SHA1()).hex()
    assert f"{dn}: 2 CAs" in viewed.stdout and f"Cert Hash(sha1): {thumbprint}" in viewed.stdout
    # without CERTID the list is shown and CERTID asked for; nothing is removed
    asked = certutil(config, "-viewdelstore", url)
    assert asked.returncode == 2 and "give the CERTID" in asked.stderr, asked.stderr
    assert "Certificate 1" in asked.stdout

    removed = certutil(config, "-viewdelstore", url, thumbprint.upper())
    assert removed.returncode == 0, removed.stderr
    assert f"removed {pki.issuing_cert.subject.rfc4514_string()} ({thumbprint}) from {dn}" \
        in removed.stdout
    assert ldif_values(samba_dc.ldbsearch(dn, "cACertificate"), "cACertificate") == [root]
    # the last CA, by its number: the mandatory attribute keeps the zero-byte placeholder
    last = certutil(config, "-viewdelstore", url, "0")
    assert last.returncode == 0, last.stderr
    assert ldif_values(samba_dc.ldbsearch(dn, "cACertificate"), "cACertificate") == [b"\x00"]

    pulsed = certutil(config, "-pulse")
    assert pulsed.returncode == 0, pulsed.stderr
    assert "0 CAs (0 added, 2 removed)" in pulsed.stdout
    assert store.certificates() == []
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    try:
        assert wait_for(lambda: "NTAuth refreshed from" in server.log, timeout=20), server.log
        sign_in(server, pcscd, rsa_card, "sign-in refused (not_in_ntauth)")
    finally:
        server.stop()
        samba_dc.ldbmodify(f"dn: {dn}\nchangetype: delete\n")
