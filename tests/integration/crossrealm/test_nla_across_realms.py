"""Network Level Authentication across the trust: FreeRDP 3 with a PARTNER.TEST user's card
gets a TGT in PARTNER.TEST, a cross-realm TGT and a ticket for TERMSRV/localhost in
EXAMPLE.TEST, whose keytab is the host's; the host then signs her in with the delegated PIN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdscard.pki.ca import RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.trust import client_config
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, insert
from tests.integration.crossrealm.conftest import (
    HOME_REALM,
    PARTNER_REALM,
    Realms,
    partner_card,
    trusting_server,
)
from tests.integration.nla.test_nla_xfreerdp3 import OPENSC, XFREERDP3
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = pytest.mark.integration

ACCOUNT = "carol"


def test_a_partner_user_signs_in_under_nla_with_a_ticket_across_the_trust(
        tmp_path: Path, pki: RealmPki, partner_pki: RealmPki, realms: Realms,
        pcscd: IsolatedPcscd) -> None:
    ensure_account(ACCOUNT)
    realms.home.add_service("TERMSRV/localhost", realms.keytab)
    server = trusting_server(
        tmp_path / "server", pki, partner_pki, realms,
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'"partner.test" = "{PARTNER_REALM}"\n'
        f'[logon.accounts]\n"carol@partner.test" = "{ACCOUNT}"\n',
        extra=f'[nla]\nenabled = true\nrequire = true\nkeytab = "{realms.keytab}"\n')
    card = partner_card(partner_pki)
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    # the client trusts the partner realm's KDC by its root
    client_conf = client_config(tmp_path / "client-krb5.conf", [realms.home, realms.partner],
                                anchors=[partner_pki.layout.root_cert, pki.layout.root_cert],
                                hosts={"localhost": HOME_REALM})
    env = {**pcscd.env, "KRB5_CONFIG": str(client_conf),
           "KRB5CCNAME": f"FILE:{tmp_path / 'client.ccache'}"}
    client = XFreeRdp(screen, "localhost", server.port, security="nla", env=env,
                      program=XFREERDP3, extra_args=[
                          "/smartcard", "/smartcard-logon", f"/kerberos:pkcs11-module:{OPENSC}",
                          f"/p:{PIN}"])
    try:
        assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 90), \
            server.log + client.output()
        log = server.log
        assert f"NLA: carol@{PARTNER_REALM} authenticated by Kerberos (account {ACCOUNT})" \
            in log, log + client.output()
        assert f"signed in: carol@partner.test as local account {ACCOUNT}" in log, log
        assert f"TGT for carol@{PARTNER_REALM}" in log
        # the service ticket came from the host's realm, through the trust
        home = realms.home.log()
        assert f"carol@{PARTNER_REALM} for TERMSRV/localhost@{HOME_REALM}" in home, home
        records = [json.loads(line) for line in
                   (server.state_dir / "audit.jsonl").read_text().splitlines()]
        (success,) = [r for r in records if r["result"] == "success"]
        assert success["principal"] == f"carol@{PARTNER_REALM}"
        assert success["upn"] == "carol@partner.test"
        assert card.state.pin_retries_left == card.state.pin_retries_limit
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()
