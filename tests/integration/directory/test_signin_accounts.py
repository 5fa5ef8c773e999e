"""The directory as the source of accounts (Samba 4 AD DC): users made with samba-tool sign in
through xfreerdp /smartcard-logon as their sAMAccountName, a disabled one is refused before
its PIN, and a sign-in still works from the monitor's cache while no DC answers."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.directory.accounts import DirectoryAccounts
from rdscard.directory.ntauth import ntauth_dn
from rdscard.directory.settings import DirectoryConfig
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.samba import SambaDc
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, PUK, CardFile, insert
from tests.integration.directory.test_ntauth_directory import certutil
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("samba-dc")]

ALICE = "rdscard-dalice"
BOB = "rdscard-dbob"
CAROL = "rdscard-dcarol"
DAVE = "rdscard-ddave"
ERIN = "rdscard-derin"
USER_PASSWORD = "Us3r.Pass.Word"


def directory_user(dc: SambaDc, name: str, upn: str) -> None:
    """A user made as an administrator would, with ``upn`` as its userPrincipalName."""
    dc.samba_tool("user", "create", name, USER_PASSWORD)
    dc.ldbmodify(f"dn: CN={name},CN=Users,{dc.base_dn}\nchangetype: modify\n"
                 f"replace: userPrincipalName\nuserPrincipalName: {upn}\n")


def write_config(tmp_path: Path, dc: SambaDc, strong_mapping: str = "off") -> Path:
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
        "[directory]\nenabled = true\naccounts = true\naccount_cache_lifetime = 600\n"
        f'strong_mapping = "{strong_mapping}"\n'
        f'uris = ["{dc.ldaps_uri}"]\nbind_dn = "{dc.admin_upn}"\n'
        f'bind_password_file = "{password}"\nca_file = "{dc.tls_ca}"\n'
        "refresh_interval = 3600\ntimeout = 3\n")
    return config


def attempt(server: ServerProcess, pcscd: IsolatedPcscd, card: VirtualPivCard,
            done: str, count: int = 1) -> None:
    runner = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"], env=pcscd.env)
    try:
        assert wait_for(lambda: server.log.count(done) >= count, timeout=40), (
            server.log + client.output())
    finally:
        client.close()
        screen.close()
        runner.remove()


def test_directory_users_sign_in_as_their_account_and_a_disabled_one_keeps_its_pin_tries(
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, pcscd: IsolatedPcscd,
    rsa_card: CardFile, ecc_card: CardFile,
) -> None:
    # alice's card names alice@example.test, bob's bob@example.test (the test PKI's UPNs)
    directory_user(samba_dc, ALICE, "alice@example.test")
    directory_user(samba_dc, BOB, "bob@example.test")
    samba_dc.samba_tool("user", "disable", BOB)
    ensure_account(ALICE)
    ensure_account(BOB)  # exists locally too: only the directory refuses bob
    config = write_config(tmp_path, samba_dc)
    published = certutil(config, "-dspublish", "-f", str(pki.layout.issuing_cert), "NTAuthCA")
    assert published.returncode == 0, published.stderr
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    try:
        assert wait_for(lambda: "NTAuth refreshed from" in server.log, timeout=20), server.log
        attempt(server, pcscd, rsa_card.card(), "signed in:")
        assert f"signed in: alice@example.test as local account {ALICE}" in server.log

        bob = ecc_card.card()
        tries = bob.state.pin_retries_left
        attempt(server, pcscd, bob, "sign-in refused (account_disabled)")
        assert bob.state.pin_retries_left == tries == 3

        # no DC answers: alice still signs in from the monitor's cache, and it says so
        samba_dc.stop()
        try:
            attempt(server, pcscd, rsa_card.card(), "signed in:", count=2)
            assert f"signs in with the directory account {ALICE} as read" in server.log
        finally:
            samba_dc.start()
    finally:
        server.stop()
        samba_dc.ldbmodify(f"dn: {ntauth_dn(samba_dc.base_dn)}\nchangetype: delete\n")
    records = [json.loads(line) for line in
               (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [(r["result"], r["reason"], r["account"], r["upn"]) for r in records] == [
        ("success", "", ALICE, "alice@example.test"),
        ("refused", "account_disabled", BOB, "bob@example.test"),
        ("success", "", ALICE, "alice@example.test"),
    ], records


def test_the_implicit_upn_finds_the_account_by_its_sam_account_name(
    samba_dc: SambaDc,
) -> None:
    directory_user(samba_dc, CAROL, "carol.other@elsewhere.test")
    password = Path(tempfile.mkdtemp()) / "pw"
    password.write_text(samba_dc.admin_password)
    password.chmod(0o600)
    config = DirectoryConfig(enabled=True, uris=(samba_dc.ldaps_uri,), accounts=True,
                             bind_dn=samba_dc.admin_upn, bind_password_file=password,
                             ca_file=samba_dc.tls_ca)
    accounts = DirectoryAccounts(config)
    implicit = accounts.find(f"{CAROL}@EXAMPLE.test")
    assert implicit is not None and implicit.sam_account_name == CAROL
    assert implicit.user_principal_name == "carol.other@elsewhere.test"
    assert implicit.object_sid.startswith("S-1-5-21-")
    explicit = accounts.find("Carol.Other@elsewhere.test")
    assert explicit is not None and explicit.dn == implicit.dn
    assert accounts.find(f"{CAROL}@elsewhere.test") is None  # not the domain's DNS name


def provisioned(pki: RealmPki, user: str,
                sid: str | None) -> tuple[VirtualPivCard, x509.Certificate]:
    state = CardState.new(serial=0x2000 + len(user), pin=PIN.encode(), puk=PUK.encode())
    card = VirtualPivCard(state)
    result = provision(PivClient(InProcessTransport(card)), pki, user, Credentials(),
                       ProvisionOptions(key_type="p256", slots=(KeyRef.AUTHENTICATION,),
                                        sid=sid))
    return card, result.certificates[KeyRef.AUTHENTICATION]


def object_sid(dc: SambaDc, name: str) -> str:
    """The user's objectSid as Samba's own ldbsearch shows it."""
    ldif = dc.ldbsearch(f"CN={name},CN=Users,{dc.base_dn}", "objectSid")
    (sid,) = [line.split(": ", 1)[1] for line in ldif.splitlines()
              if line.startswith("objectSid: ")]
    return sid


def test_full_strong_mapping_takes_the_sid_extension_or_alt_security_identities(
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, pcscd: IsolatedPcscd,
) -> None:
    directory_user(samba_dc, DAVE, "dave@example.test")
    directory_user(samba_dc, ERIN, "erin@example.test")
    ensure_account(DAVE)
    ensure_account(ERIN)
    dave, _ = provisioned(pki, "dave", object_sid(samba_dc, DAVE))
    erin, cert = provisioned(pki, "erin", None)
    config = write_config(tmp_path, samba_dc, "full")
    published = certutil(config, "-dspublish", "-f", str(pki.layout.issuing_cert), "NTAuthCA")
    assert published.returncode == 0, published.stderr
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    try:
        assert wait_for(lambda: "NTAuth refreshed from" in server.log, timeout=20), server.log
        attempt(server, pcscd, dave, "signed in:")
        assert f"signed in: dave@example.test as local account {DAVE}" in server.log

        attempt(server, pcscd, erin, "sign-in refused (weak_mapping)")
        assert erin.state.pin_retries_left == 3

        # the administrator maps erin's certificate explicitly (X509IssuerSerial)
        issuer = ",".join(rdn.rfc4514_string() for rdn in cert.issuer.rdns)
        serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
        samba_dc.ldbmodify(
            f"dn: CN={ERIN},CN=Users,{samba_dc.base_dn}\nchangetype: modify\n"
            "add: altSecurityIdentities\n"
            f"altSecurityIdentities: X509:<I>{issuer}<SR>{serial[::-1].hex().upper()}\n")
        attempt(server, pcscd, erin, "signed in:", count=2)
        assert f"signed in: erin@example.test as local account {ERIN}" in server.log
        assert erin.state.pin_retries_left == 3
    finally:
        server.stop()
        samba_dc.ldbmodify(f"dn: {ntauth_dn(samba_dc.base_dn)}\nchangetype: delete\n")
    records = [json.loads(line) for line in
               (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [(r["result"], r["reason"], r["account"]) for r in records] == [
        ("success", "", DAVE), ("refused", "weak_mapping", ERIN), ("success", "", ERIN),
    ], records
