"""NLA refusals against real peers: an expired service ticket, a TLS man in the middle.

Both are refused inside CredSSP, before the client delegates its PIN: the
server answers errorCode STATUS_LOGON_FAILURE (with the Kerberos error token
saying why, when the acceptor made one), audits ``nla_failed`` and no PIN
try is spent; other connections carry on.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import gssapi
import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.pdu.credssp import NtStatus, TsRequest
from rdscard.pki.ca import RealmPki
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import insert
from tests.integration.logon.conftest import LOGON_PIN, logon_card_state  # noqa: F401
from tests.integration.nla.credssp_peers import NONCE, CredSspClient, TlsProxy, initiator
from tests.integration.nla.test_nla_refusals import audit
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

PASSWORD = "kerberos-test-password"
#: The lifetime of the short-lived tickets, seconds.
SHORT_LIFE = 3


def xfreerdp3(screen: VirtualScreen, port: int, kdc: MitKdc,  # noqa: F811
              pcscd: IsolatedPcscd, tmp_path: Path) -> XFreeRdp:
    """xfreerdp3 with the virtual card: PKINIT, then NLA to localhost:``port``."""
    return XFreeRdp(screen, "localhost", port, security="nla",
                    env=client_env(kdc, pcscd, tmp_path), program=XFREERDP3, extra_args=[
                        "/smartcard", "/smartcard-logon", f"/kerberos:pkcs11-module:{OPENSC}",
                        f"/p:{LOGON_PIN.decode()}"])


def short_lived_ccache(kdc: MitKdc, tmp_path: Path) -> Path:  # noqa: F811
    """bob's TGT, valid for SHORT_LIFE seconds."""
    principal = kdc.add_password_user("bob", PASSWORD)
    ccache = tmp_path / "bob.ccache"
    subprocess.run(["kinit", "-l", f"{SHORT_LIFE}s", "-c", f"FILE:{ccache}", principal],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                   timeout=30, env={**os.environ, **kdc.env})
    return ccache


def test_an_expired_service_ticket_is_refused_while_another_client_signs_in(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
    logon_card_state: Path, local_account: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bob's AP-REQ for TERMSRV/localhost carries a ticket that has expired when it arrives.

    The acceptor forgives clock skew at a ticket's end (krb5.conf ``clockskew``,
    5 minutes by default): the server's is 1 second here, so that the ticket
    is expired for it seconds after its end time.
    """
    server_krb5 = tmp_path / "server-krb5.conf"
    server_krb5.write_text(kdc.krb5_conf.read_text().replace(
        "[libdefaults]\n", "[libdefaults]\n    clockskew = 1\n", 1))
    monkeypatch.setenv("KRB5_CONFIG", str(server_krb5))
    server = nla_server(tmp_path, pki, kdc)
    ccache = short_lived_ccache(kdc, tmp_path)
    issued = time.monotonic()
    stale = CredSspClient(server.port)  # connected before the ticket expires, idle since
    context = initiator(ccache)
    token = context.step()  # the AP-REQ, with the service ticket
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client: XFreeRdp | None = None
    try:
        time.sleep(max(0.0, issued + SHORT_LIFE + 1 + 1.5 - time.monotonic()))
        # A valid client starts now and signs in while the stale one is refused.
        client = xfreerdp3(screen, server.port, kdc, pcscd, tmp_path)
        stale.send(TsRequest(6, (token,), client_nonce=NONCE))
        reply = stale.receive()
        assert reply is not None and reply.error_code == NtStatus.STATUS_LOGON_FAILURE, reply
        assert stale.receive() is None  # and the connection ends
        # The acceptor's KRB-ERROR comes with the errorCode: the client's Kerberos reads why.
        assert len(reply.nego_tokens) == 1, reply
        with pytest.raises(gssapi.exceptions.GSSError, match="Ticket expired"):
            context.step(reply.nego_tokens[0])
        assert wait_for(lambda: "NLA refused" in server.log, 10), server.log
        assert "Kerberos refused the client's token" in server.log
        assert "Ticket expired" in server.log, server.log
        assert wait_for(lambda: "signed in:" in server.log or "refused (" in server.log, 90), \
            server.log + client.output()
        assert f"signed in: alice@example.test as local account {ACCOUNT}" in server.log, \
            server.log
        records = audit(server.state_dir)
        assert sorted((r["reason"], r["result"]) for r in records if r["reason"]) == \
            [("nla_failed", "refused")], records
        assert [r["principal"] for r in records if r["result"] == "success"] == \
            [f"alice@{REALM}"]
        assert card.state.pin_retries_left == 3  # the client's PKINIT and the host's check
    finally:
        stale.close()
        if client is not None:
            client.close()
        screen.close()
        inserted.remove()
        server.stop()


def test_pub_key_auth_through_a_tls_man_in_the_middle_is_refused(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """MIT's initiator binds pubKeyAuth to the key the proxy presented: refused.

    The same client straight to the server gets the server's own proof back.
    """
    monkeypatch.setenv("KRB5_CONFIG", str(kdc.krb5_conf))
    server = nla_server(tmp_path, pki, kdc)
    principal = kdc.add_password_user("bob", PASSWORD)
    ccache = tmp_path / "bob.ccache"
    kdc.kinit_password(principal, PASSWORD, ccache)
    try:
        with TlsProxy(server.port, tmp_path) as proxy:
            direct = CredSspClient(server.port)
            try:
                reply = direct.authenticate(initiator(ccache))
                assert reply is not None and reply.pub_key_auth is not None, reply
                assert reply.error_code is None
            finally:
                direct.close()
            relayed = CredSspClient(proxy.port)
            try:
                assert relayed.peer_key != direct.peer_key  # the proxy's own key
                reply = relayed.authenticate(initiator(ccache))
                assert reply is not None and reply.error_code == NtStatus.STATUS_LOGON_FAILURE
                assert reply.pub_key_auth is None
                assert relayed.receive() is None
            finally:
                relayed.close()
            assert proxy.relayed == 1
        assert wait_for(lambda: "NLA refused" in server.log, 10), server.log
        assert f"NLA refused (bob@{REALM})" in server.log, server.log
        assert "does not match the server's TLS public key" in server.log
        records = audit(server.state_dir)
        assert [(r["reason"], r["principal"]) for r in records] == \
            [("nla_failed", f"bob@{REALM}")], records
    finally:
        server.stop()


def test_xfreerdp3_through_a_tls_man_in_the_middle_is_refused_without_a_pin_try(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    """xfreerdp3 /cert:ignore trusts the proxy's certificate; its pubKeyAuth then binds
    the proxy's key, which the server refuses before any PIN is delegated."""
    server = nla_server(tmp_path, pki, kdc)
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    proxy = TlsProxy(server.port, tmp_path)
    client = xfreerdp3(screen, proxy.port, kdc, pcscd, tmp_path)
    try:
        assert wait_for(lambda: "NLA refused" in server.log or "signed in:" in server.log, 90), \
            server.log + client.output()
        assert wait_for(lambda: client.process.poll() is not None, 20), client.output()
        assert proxy.relayed == 1
        assert f"NLA refused (alice@{REALM})" in server.log, server.log
        assert "does not match the server's TLS public key" in server.log
        assert "signed in:" not in server.log and "session active" not in server.log
        records = audit(server.state_dir)
        assert [(r["reason"], r["principal"]) for r in records] == \
            [("nla_failed", f"alice@{REALM}")], records
        assert card.state.pin_retries_left == 3  # the client's PKINIT only
        assert LOGON_PIN not in server.log.encode()
    finally:
        client.close()
        proxy.close()
        screen.close()
        inserted.remove()
        server.stop()
