"""NLA refusals: clients without smart card credentials, and a server that requires NLA."""

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
from tests.integration.nla.test_nla_xfreerdp3 import kdc, nla_server  # noqa: F401
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
