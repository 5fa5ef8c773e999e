"""NLA with the directory as the source of accounts (Samba 4.17 AD DC, read with the host's
keytab): FreeRDP 3's Kerberos principal and the card's UPN map through the directory to one
user, whose sAMAccountName is neither the principal's name nor the UPN's."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.directory.ntauth import ntauth_dn
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.samba import SambaDc
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, PUK, insert
from tests.integration.directory.test_kerberos_bind import keytab, service_account  # noqa: F401
from tests.integration.directory.test_ntauth_directory import certutil
from tests.integration.directory.test_ntauth_directory import write_config as admin_config
from tests.integration.directory.test_signin_accounts import directory_user
from tests.integration.nla.test_nla_xfreerdp3 import OPENSC, XFREERDP3
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("samba-dc")]

REALM = "EXAMPLE.TEST"
USER = "kim"  # the card's UPN kim@example.test, FreeRDP's principal kim@EXAMPLE.TEST
ACCOUNT = "rdscard-dkim"  # the directory user's sAMAccountName, and the local account


@pytest.fixture
def kdc(pki: RealmPki, tmp_path: Path) -> Iterator[MitKdc]:
    """The realm's MIT KDC for PKINIT and the host's TERMSRV key (the DC serves the directory)."""
    with MitKdc(tmp_path / "kdc", REALM, pki) as server:
        server.add_user(USER)
        # the sign-in's PKINIT asks for the directory account's own principal
        server.add_user(ACCOUNT, cert_match=r"<SAN>^kim@example\.test$")
        server.add_service("TERMSRV/localhost", tmp_path / "termsrv.keytab")
        yield server


def kim_card(pki: RealmPki) -> VirtualPivCard:
    state = CardState.new(serial=0x4242, pin=PIN.encode(), puk=PUK.encode())
    card = VirtualPivCard(state)
    provision(PivClient(InProcessTransport(card)), pki, USER, Credentials(),
              ProvisionOptions(key_type="rsa2048"))
    return card


def test_nla_principal_and_card_map_to_one_directory_user(
    tmp_path: Path, samba_dc: SambaDc, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
    service_account: str, keytab: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    directory_user(samba_dc, ACCOUNT, f"{USER}@example.test")
    ensure_account(ACCOUNT)
    (tmp_path / "admin").mkdir()
    publish = admin_config(tmp_path / "admin", samba_dc)
    published = certutil(publish, "-dspublish", "-f", str(pki.layout.issuing_cert), "NTAuthCA")
    assert published.returncode == 0, published.stderr
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        f'[logon]\nmode = "kerberos"\nroots = ["{pki.layout.root_cert}"]\n'
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'[logon.kdc]\nkrb5_config = "{kdc.krb5_conf}"\n'
        f'[nla]\nenabled = true\nrequire = true\nkeytab = "{tmp_path / "termsrv.keytab"}"\n'
        "[directory]\nenabled = true\naccounts = true\n"
        f'uris = ["{samba_dc.ldaps_uri}"]\nca_file = "{samba_dc.tls_ca}"\n'
        f'bind_method = "kerberos"\nkeytab = "{keytab}"\nbind_principal = "{service_account}"\n'
        "refresh_interval = 3600\ntimeout = 5\n")
    # the monitor's krb5.conf names the DC's KDC for its bind; kinit has its own
    monkeypatch.setenv("KRB5_CONFIG", str(samba_dc.krb5_conf))
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    card = kim_card(pki)
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = None
    try:
        assert wait_for(lambda: "NTAuth refreshed from" in server.log, timeout=20), server.log
        client = XFreeRdp(screen, "localhost", server.port, security="nla", program=XFREERDP3,
                          env={**pcscd.env, "KRB5_CONFIG": str(kdc.krb5_conf),
                               "KRB5CCNAME": f"FILE:{tmp_path / 'client.ccache'}"},
                          extra_args=["/smartcard", "/smartcard-logon",
                                      f"/kerberos:pkcs11-module:{OPENSC}", f"/p:{PIN}"])
        assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 90), \
            server.log + client.output()
        log = server.log
        assert f"NLA: {USER}@{REALM} authenticated by Kerberos (account {ACCOUNT})" in log, log
        assert f"signed in: {USER}@example.test as local account {ACCOUNT}" in log, log
        assert f"TGT for {ACCOUNT}@{REALM}" in log
        records = [json.loads(line) for line in
                   (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
        (success,) = [r for r in records if r["result"] == "success"]
        assert (success["account"], success["principal"]) == (ACCOUNT, f"{USER}@{REALM}")
    finally:
        if client is not None:
            client.close()
        screen.close()
        inserted.remove()
        server.stop()
        samba_dc.ldbmodify(f"dn: {ntauth_dn(samba_dc.base_dn)}\nchangetype: delete\n")
        samba_dc.samba_tool("user", "delete", ACCOUNT)
