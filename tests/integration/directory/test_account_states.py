"""Directory users that may not sign in, and compatibility mode (Samba 4 AD DC, xfreerdp
/smartcard-logon): an account locked out by failed binds, an expired one (``samba-tool user
setexpiry``), a weakly mapped certificate that signs in with the warning audited, and one
older than its account beyond certificate_backdating_compensation (KB5014754). Each refused
card keeps its PIN tries."""

from __future__ import annotations

import datetime
import json
import ssl
from pathlib import Path

import ldap3
import pytest
from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.directory.accounts import UF_ACCOUNTDISABLE, DirectoryAccounts
from rdscard.directory.ntauth import DirectoryNtAuth, ntauth_dn
from rdscard.directory.settings import DirectoryConfig
from rdscard.pki.ca import BACKDATE, RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.samba import SambaDc
from rdscard.xclient import wait_for
from tests.integration.card.conftest import PIN, PUK
from tests.integration.directory.test_ntauth_directory import certutil
from tests.integration.directory.test_signin_accounts import attempt, directory_user
from tests.integration.directory.test_signin_accounts import write_config as accounts_config
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("samba-dc")]

FRANK = "rdscard-dfrank"   # locked out
GRACE = "rdscard-dgrace"   # expired
HEIDI = "rdscard-dheidi"   # weakly mapped, younger than the allowance: signs in
IVAN = "rdscard-divan"     # weakly mapped, issued long before the account: refused
JUDY = "rdscard-djudy"     # looked up on a kept connection
ALLOWANCE = 2 * 3600       # above the test PKI's one-hour backdating of notBefore


def card_for(pki: RealmPki, user: str, serial: int,
             issued: datetime.datetime | None = None) -> tuple[VirtualPivCard, x509.Certificate]:
    """A card whose sign-in certificate (no SID extension) has ``issued`` as its notBefore."""
    card = VirtualPivCard(CardState.new(serial=serial, pin=PIN.encode(), puk=PUK.encode()))
    client = PivClient(InProcessTransport(card))
    result = provision(client, pki, user, Credentials(),
                       ProvisionOptions(key_type="p256", slots=(KeyRef.AUTHENTICATION,)))
    cert = result.certificates[KeyRef.AUTHENTICATION]
    if issued is not None:
        cert = pki.issue_user_certificate(user, cert.public_key(),  # type: ignore[arg-type]
                                          pkinit_san=True, now=issued + BACKDATE)
        client.authenticate_admin()
        client.write_certificate(KeyRef.AUTHENTICATION, cert)
    return card, cert


def lock_out(dc: SambaDc, upn: str) -> None:
    """Two wrong passwords over LDAPS with a lockout threshold of two, as a user mistyping."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT,
                    ca_certs_file=str(dc.tls_ca))
    for _ in range(2):
        conn = ldap3.Connection(ldap3.Server("localhost", port=636, use_ssl=True, tls=tls),
                                user=upn, password="not.the.password")
        assert not conn.bind()


def write_config(tmp_path: Path, dc: SambaDc) -> Path:
    config = accounts_config(tmp_path, dc, "compatibility")
    config.write_text(config.read_text().replace(
        'strong_mapping = "compatibility"\n',
        f'strong_mapping = "compatibility"\ncertificate_backdating_compensation = {ALLOWANCE}\n'))
    return config


def computed(dc: SambaDc, name: str, attribute: str) -> str:
    ldif = dc.ldbsearch(f"CN={name},CN=Users,{dc.base_dn}", attribute)
    (value,) = [line.split(": ", 1)[1] for line in ldif.splitlines()
                if line.startswith(f"{attribute}: ")]
    return value


def test_locked_out_expired_and_older_certificates_keep_their_pin_tries_and_a_weak_mapping_signs_in_with_a_warning(  # noqa: E501
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, pcscd: IsolatedPcscd,
) -> None:
    for name, upn in ((FRANK, "frank"), (GRACE, "grace"), (HEIDI, "heidi"), (IVAN, "ivan")):
        directory_user(samba_dc, name, f"{upn}@example.test")
        ensure_account(name)
    # the cards are issued after the accounts: notBefore is the test PKI's hour earlier,
    # within the allowance; ivan's certificate is four hours older than his account
    now = datetime.datetime.now(datetime.UTC)
    frank, _ = card_for(pki, "frank", 0x3101)
    grace, _ = card_for(pki, "grace", 0x3102)
    heidi, heidi_cert = card_for(pki, "heidi", 0x3103)
    ivan, ivan_cert = card_for(pki, "ivan", 0x3104, issued=now - datetime.timedelta(hours=4))
    created = datetime.datetime.strptime(computed(samba_dc, IVAN, "whenCreated"),
                                         "%Y%m%d%H%M%S.0Z").replace(tzinfo=datetime.UTC)
    assert ivan_cert.not_valid_before_utc + datetime.timedelta(seconds=ALLOWANCE) < created
    assert heidi_cert.not_valid_before_utc + datetime.timedelta(seconds=ALLOWANCE) > created

    samba_dc.samba_tool("user", "setexpiry", GRACE, "--days=0")
    samba_dc.samba_tool("domain", "passwordsettings", "set", "--account-lockout-threshold=2")
    config = write_config(tmp_path, samba_dc)
    published = certutil(config, "-dspublish", "-f", str(pki.layout.issuing_cert), "NTAuthCA")
    assert published.returncode == 0, published.stderr
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    try:
        lock_out(samba_dc, "frank@example.test")
        # Samba's view: the constructed attribute carries UF_LOCKOUT (0x10)
        assert int(computed(samba_dc, FRANK, "msDS-User-Account-Control-Computed")) & 0x10
        assert wait_for(lambda: "NTAuth refreshed from" in server.log, timeout=20), server.log

        attempt(server, pcscd, frank, "sign-in refused (account_locked)")
        attempt(server, pcscd, grace, "sign-in refused (account_expired)")
        attempt(server, pcscd, heidi, "signed in:")
        assert f"signed in: heidi@example.test as local account {HEIDI}" in server.log
        assert "only weakly mapped" in server.log
        attempt(server, pcscd, ivan, "sign-in refused (certificate_predates_account)")
        for card in (frank, grace, ivan):
            assert card.state.pin_retries_left == 3
    finally:
        server.stop()
        samba_dc.samba_tool("domain", "passwordsettings", "set",
                            "--account-lockout-threshold=0")
        samba_dc.ldbmodify(f"dn: {ntauth_dn(samba_dc.base_dn)}\nchangetype: delete\n")
    records = [json.loads(line) for line in
               (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [(r["result"], r["reason"], r["account"]) for r in records] == [
        ("refused", "account_locked", FRANK), ("refused", "account_expired", GRACE),
        ("success", "", HEIDI), ("refused", "certificate_predates_account", IVAN),
    ], records
    assert "only weakly mapped to rdscard-dheidi" in records[2]["warning"]
    assert "before the account was created" in server.log


def test_the_kept_connection_sees_changes_at_once_and_is_replaced_after_a_dc_restart(
    tmp_path: Path, samba_dc: SambaDc,
) -> None:
    directory_user(samba_dc, JUDY, "judy@example.test")
    password = tmp_path / "ldap.pw"
    password.write_text(samba_dc.admin_password)
    password.chmod(0o600)
    config = DirectoryConfig(enabled=True, uris=(samba_dc.ldaps_uri,), accounts=True,
                             bind_dn=samba_dc.admin_upn, bind_password_file=password,
                             ca_file=samba_dc.tls_ca)
    opened: list[ldap3.Connection] = []

    def connect() -> ldap3.Connection:
        opened.append(DirectoryNtAuth(config).connect())
        return opened[-1]

    accounts = DirectoryAccounts(config, connect)
    try:
        first = accounts.find("judy@example.test")
        assert first is not None and not first.user_account_control & UF_ACCOUNTDISABLE
        samba_dc.samba_tool("user", "disable", JUDY)
        second = accounts.find("judy@example.test")  # the same connection, a new search
        assert second is not None and second.user_account_control & UF_ACCOUNTDISABLE
        assert len(opened) == 1
        samba_dc.stop()
        samba_dc.start()
        third = accounts.find("judy@example.test")
        assert third is not None and third.dn == first.dn
        assert len(opened) == 2 and opened[0].closed
    finally:
        accounts.close()
