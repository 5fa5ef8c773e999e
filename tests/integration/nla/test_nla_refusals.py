"""NLA refusals: clients without smart card credentials, a server that requires NLA,
principals without an account or with another card."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.pki.ca import RealmPki
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import insert
from tests.integration.logon.conftest import LOGON_PIN, logon_card_state  # noqa: F401
from tests.integration.nla.test_nla_xfreerdp3 import (  # noqa: F401
    OPENSC,
    REALM,
    XFREERDP3,
    client_env,
    kdc,
    nla_server,
)
from tests.integration.sessioncard.test_signin import ACCOUNT, local_account  # noqa: F401

pytestmark = pytest.mark.integration


def audit(server_state: Path) -> list[dict[str, str]]:
    path = server_state / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_xfreerdp2_password_credentials_under_nla_are_refused_cleanly(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    """xfreerdp 2.11.7 has NTLM only under NLA: no Kerberos, no TSSmartCardCreds."""
    server = nla_server(tmp_path, pki, kdc)
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "localhost", server.port, security="nla", env=pcscd.env,
                      extra_args=["/smartcard", "/smartcard-logon", "/u:alice",
                                  f"/p:{LOGON_PIN.decode()}"])
    try:
        assert wait_for(lambda: "NLA refused" in server.log, 30), server.log
        assert wait_for(lambda: client.process.poll() is not None, 20), client.output()
        assert "Kerberos refused the client's token" in server.log
        assert "session active" not in server.log and "signed in:" not in server.log
        assert card.state.pin_retries_left == 3  # no PIN try spent
        records = audit(server.state_dir)
        assert [r["reason"] for r in records] == ["nla_failed"]
        assert LOGON_PIN not in server.log.encode()
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()


def test_tls_still_signs_in_when_nla_is_offered_but_not_required(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    server = nla_server(tmp_path, pki, kdc)
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, security="tls", env=pcscd.env,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{LOGON_PIN.decode()}"])
    try:
        assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 60), \
            server.log
        assert re.search(rf"signed in: alice@example.test as local account {ACCOUNT}",
                         server.log), server.log
        assert "selected TLS" in server.log
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()


def test_require_nla_refuses_a_tls_only_client_before_any_screen(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc,  # noqa: F811
) -> None:
    server = nla_server(tmp_path, pki, kdc, require=True)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, security="tls")
    try:
        assert wait_for(lambda: client.process.poll() is not None, 30), client.output()
        assert "sent HYBRID_REQUIRED_BY_SERVER" in server.log, server.log
        assert "session active" not in server.log
        assert "HYBRID_REQUIRED_BY_SERVER" in client.output() or \
            "ERRCONNECT" in client.output() or client.process.returncode != 0
    finally:
        client.close()
        screen.close()
        server.stop()


def test_an_unmapped_principal_gets_access_denied_in_the_early_user_authorization_result(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
    logon_card_state: Path,  # noqa: F811
) -> None:
    """alice@EXAMPLE.TEST has no [logon.accounts] entry and there is no account 'alice'."""
    server = nla_server(tmp_path, pki, kdc, accounts={})
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "localhost", server.port, security="ext",
                      env=client_env(kdc, pcscd, tmp_path), program=XFREERDP3, extra_args=[
                          "/smartcard", "/smartcard-logon", f"/kerberos:pkcs11-module:{OPENSC}",
                          f"/p:{LOGON_PIN.decode()}"])
    try:
        assert wait_for(lambda: "NLA refused" in server.log, 60), server.log + client.output()
        assert wait_for(lambda: client.process.poll() is not None, 20), client.output()
        assert "selected CredSSP-EX" in server.log
        assert re.search(rf"NLA refused \(alice@{REALM}\), answered ACCESS_DENIED: "
                         rf"no local account 'alice' for alice@{REALM}", server.log), server.log
        assert "session active" not in server.log and "signed in:" not in server.log
        assert card.state.pin_retries_left == 3  # the client's PKINIT only
        records = audit(server.state_dir)
        assert [(r["reason"], r["principal"]) for r in records] == [
            ("nla_failed", f"alice@{REALM}")]
        assert LOGON_PIN not in server.log.encode()
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()


def test_a_card_mapping_to_another_account_than_the_kerberos_principal_is_refused(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    """The principal alice@EXAMPLE.TEST maps through corp.test to 'nobody', the card's UPN
    alice@example.test to the test account: NLA succeeds, the sign-in is refused."""
    server = nla_server(tmp_path, pki, kdc, domains=("corp.test", "example.test"),
                        accounts={"alice@corp.test": "nobody", "alice@example.test": ACCOUNT})
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "localhost", server.port, security="nla",
                      env=client_env(kdc, pcscd, tmp_path), program=XFREERDP3, extra_args=[
                          "/smartcard", "/smartcard-logon", f"/kerberos:pkcs11-module:{OPENSC}",
                          f"/p:{LOGON_PIN.decode()}"])
    try:
        assert wait_for(lambda: "refused" in server.log or "signed in:" in server.log, 90), \
            server.log + client.output()
        assert wait_for(lambda: any(r["reason"] == "nla_mismatch"
                                    for r in audit(server.state_dir)), 20), server.log
        assert f"NLA: alice@{REALM} authenticated by Kerberos (account nobody)" in server.log
        assert "signed in:" not in server.log
        records = audit(server.state_dir)
        assert [(r["reason"], r["principal"], r["upn"]) for r in records] == [
            ("nla_mismatch", f"alice@{REALM}", "alice@example.test")]
        assert card.state.pin_retries_left == 3  # refused before the host's PIN check
        assert LOGON_PIN not in server.log.encode()
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()
