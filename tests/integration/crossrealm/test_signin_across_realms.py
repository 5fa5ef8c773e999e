"""Sign-in across domains through xfreerdp /smartcard-logon: a user of PARTNER.TEST signs in
on a host of EXAMPLE.TEST; the UPN's domain picks the realm, or a domain hint when allowed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.pki.ca import RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, insert
from tests.integration.crossrealm.conftest import (
    HOME_REALM,
    HOST_SERVICE,
    PARTNER_REALM,
    Realms,
    partner_card,
    trusting_server,
)
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account
from tests.integration.sessioncard.test_signin_refusals import attempt

pytestmark = pytest.mark.integration

ACCOUNT = "carol"


def sign_in_and_list_tickets(server: ServerProcess, pcscd: IsolatedPcscd,
                             card: VirtualPivCard, *extra: str) -> tuple[str, str]:
    """Sign in with /smartcard-logon; the result line and ``klist`` run in the session."""
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, env=pcscd.env,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}", *extra])
    pattern = re.compile(r"\[session (\d+)\] (signed in: .*|sign-in refused \(\w+\): .*)")
    try:
        assert wait_for(lambda: pattern.search(server.log) is not None, timeout=40), (
            server.log + client.output())
        found = pattern.search(server.log)
        assert found is not None
        if not found.group(2).startswith("signed in"):
            return found.group(2), ""
        result = subprocess.run(
            [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
             str(server.state_dir), "exec", found.group(1), "--", "klist"],
            capture_output=True, text=True, timeout=30)
        return found.group(2), result.stdout + result.stderr
    finally:
        client.close()
        screen.close()
        inserted.remove()


def test_a_partner_domain_user_signs_in_with_a_tgt_of_her_own_realm(
        tmp_path: Path, pki: RealmPki, partner_pki: RealmPki, realms: Realms,
        pcscd: IsolatedPcscd) -> None:
    ensure_account(ACCOUNT)
    server = trusting_server(
        tmp_path / "server", pki, partner_pki, realms,
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'"partner.test" = "{PARTNER_REALM}"\n'
        f'[logon.accounts]\n"carol@partner.test" = "{ACCOUNT}"\n')
    try:
        card = partner_card(partner_pki)
        result, tickets = sign_in_and_list_tickets(server, pcscd, card)
        assert result.startswith(f"signed in: carol@partner.test as local account {ACCOUNT}"), \
            server.log
        assert f"TGT for carol@{PARTNER_REALM}" in result
        assert f"Default principal: carol@{PARTNER_REALM}" in tickets, tickets
        assert f"krbtgt/{PARTNER_REALM}@{PARTNER_REALM}" in tickets
        # the TGT was checked against the host's key across the trust
        assert f"krbtgt/{HOME_REALM}@{PARTNER_REALM}" in tickets
        assert f"carol@{PARTNER_REALM} for {HOST_SERVICE}" in realms.home.log()
        audit = (server.state_dir / "audit.jsonl").read_text()
        assert '"upn": "carol@partner.test"' in audit and '"result": "success"' in audit
    finally:
        server.stop()


def test_an_unknown_domain_is_refused_then_a_domain_hint_picks_the_realm(
        tmp_path: Path, pki: RealmPki, partner_pki: RealmPki, realms: Realms,
        pcscd: IsolatedPcscd) -> None:
    ensure_account(ACCOUNT)
    # partner.test is not in domain_realms: only the NetBIOS-style PARTNER of partner.corp
    # (the partner's other DNS domain) leads to the realm
    table = ('[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
             f'"partner.corp" = "{PARTNER_REALM}"\n'
             f'[logon.accounts]\n"carol@partner.test" = "{ACCOUNT}"\n')
    strict = trusting_server(tmp_path / "strict", pki, partner_pki, realms, table)
    card = partner_card(partner_pki)
    try:
        result, _ = attempt(strict, pcscd, card)
        assert result.startswith("sign-in refused (unknown_domain)"), result
        assert "partner.test" in result
        assert card.state.pin_retries_left == card.state.pin_retries_limit
        audit = (strict.state_dir / "audit.jsonl").read_text()
        assert '"reason": "unknown_domain"' in audit
    finally:
        strict.stop()
    hints = trusting_server(tmp_path / "hints", pki, partner_pki, realms,
                            "allow_domain_hints = true\n" + table)
    try:
        result, tickets = sign_in_and_list_tickets(hints, pcscd, card, "/d:PARTNER")
        assert result.startswith(f"signed in: carol@partner.test as local account {ACCOUNT}"), \
            hints.log
        assert f"TGT for carol@{PARTNER_REALM}" in result
        assert f"Default principal: carol@{PARTNER_REALM}" in tickets, tickets
    finally:
        hints.stop()
