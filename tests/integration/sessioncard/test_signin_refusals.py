"""Sign-in refusals: each named on the server's log and on the logon screen, none costs a try."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, PUK, insert
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = pytest.mark.integration

HINTED_ACCOUNT = "bob"


def make_card(pki: RealmPki, user: str, **options: bool) -> tuple[VirtualPivCard, CardState]:
    state = CardState.new(serial=0x3000, pin=PIN.encode(), puk=PUK.encode())
    card = VirtualPivCard(state)
    provision(PivClient(InProcessTransport(card)), pki, user, Credentials(),
              ProvisionOptions(key_type="p256", **options))
    return card, state


def server_for(tmp_path: Path, pki: RealmPki, logon: str) -> ServerProcess:
    state = tmp_path / "state"
    issuing = x509.load_pem_x509_certificate(pki.layout.issuing_cert.read_bytes())
    NtAuthStore(state / "ntauth").add(issuing)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(f'[redirection]\nsocket_dir = "{run_dir}"\n[logon]\n{logon}')
    return ServerProcess(state, ("--config", str(config)))


def attempt(server: ServerProcess, pcscd: IsolatedPcscd, card: VirtualPivCard,
            *extra: str) -> tuple[str, str]:
    """Connect with /smartcard-logon and the right PIN; returns (result line, server log)."""
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, env=pcscd.env,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}", *extra])
    pattern = re.compile(r"(signed in: .*|sign-in refused \(\w+\): .*)")
    try:
        assert wait_for(lambda: pattern.search(server.log) is not None, timeout=40), (
            server.log + client.output()
        )
        found = pattern.search(server.log)
        assert found is not None
        return found.group(1), server.log
    finally:
        client.close()
        screen.close()
        inserted.remove()


@pytest.fixture
def local_server(tmp_path: Path, pki: RealmPki) -> Iterator[ServerProcess]:
    server = server_for(tmp_path, pki, 'mode = "local"\n[logon.domain_realms]\n'
                        '"example.test" = "EXAMPLE.TEST"\n[logon.accounts]\n'
                        '"alice@example.test" = "root"\n')
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"untrusted": True}, "not_in_ntauth"),
        ({"expired": True}, "expired"),
        ({"upn": False}, "no_upn"),
    ],
)
def test_certificate_refusals_cost_no_try(
    local_server: ServerProcess, pcscd: IsolatedPcscd, pki: RealmPki,
    options: dict[str, bool], reason: str,
) -> None:
    card, state = make_card(pki, "alice", **options)
    result, log = attempt(local_server, pcscd, card)
    assert result.startswith(f"sign-in refused ({reason})"), result
    assert state.pin_retries_left == state.pin_retries_limit  # the PIN was never sent
    assert PIN not in log


def test_blocked_card_says_how_to_unblock(
    local_server: ServerProcess, pcscd: IsolatedPcscd, pki: RealmPki
) -> None:
    card, state = make_card(pki, "alice")
    state.pin_retries_left = 0
    result, _ = attempt(local_server, pcscd, card)
    assert result.startswith("sign-in refused (pin_blocked)") and "PUK" in result, result


def test_unresolvable_upn_domain_is_refused_then_accepted_with_a_domain_hint(
    tmp_path: Path, pcscd: IsolatedPcscd, pki: RealmPki
) -> None:
    ensure_account(HINTED_ACCOUNT)
    realms = '[logon.domain_realms]\n"corp.test" = "EXAMPLE.TEST"\n'
    (tmp_path / "strict").mkdir()
    strict = server_for(tmp_path / "strict", pki, f'mode = "local"\n{realms}')
    try:
        card, _ = make_card(pki, HINTED_ACCOUNT)
        result, _ = attempt(strict, pcscd, card)
        assert result.startswith("sign-in refused (unknown_domain)"), result
    finally:
        strict.stop()
    (tmp_path / "hints").mkdir()
    hints = server_for(tmp_path / "hints", pki,
                       f'mode = "local"\nallow_domain_hints = true\n{realms}')
    try:
        card, _ = make_card(pki, HINTED_ACCOUNT)
        result, _ = attempt(hints, pcscd, card, "/d:CORP", f"/u:{HINTED_ACCOUNT}")
        assert result.startswith(f"signed in: {HINTED_ACCOUNT}@example.test as local account "
                                 f"{HINTED_ACCOUNT}"), result
    finally:
        hints.stop()


class VanishingCard(VirtualPivCard):
    """A card pulled out of the reader at the moment the PIN reaches it."""

    def transmit(self, apdu: bytes) -> bytes:
        if len(apdu) > 5 and apdu[1] == 0x20 and apdu[3] == 0x80:  # VERIFY with a PIN
            raise ConnectionResetError("card pulled out")
        return super().transmit(apdu)


def test_card_removed_during_sign_in_is_refused_clearly(
    local_server: ServerProcess, pcscd: IsolatedPcscd, pki: RealmPki
) -> None:
    state = CardState.new(serial=0x3001, pin=PIN.encode(), puk=PUK.encode())
    provision(PivClient(InProcessTransport(VirtualPivCard(state))), pki, "alice", Credentials(),
              ProvisionOptions(key_type="p256"))
    card = VanishingCard(state)
    result, _ = attempt(local_server, pcscd, card)
    assert result.startswith("sign-in refused (card_error)"), result
    assert state.pin_retries_left == state.pin_retries_limit
    audit = (local_server.state_dir / "audit.jsonl").read_text()
    assert '"result": "refused"' in audit and '"reason": "card_error"' in audit


def test_kdc_down_is_refused_clearly(
    tmp_path: Path, pcscd: IsolatedPcscd, pki: RealmPki
) -> None:
    from rdscard.testbed.kdc import MitKdc

    with MitKdc(tmp_path / "kdc", "EXAMPLE.TEST", pki) as kdc:
        kdc.add_user("alice")
        krb5_conf = kdc.krb5_conf
    # the KDC is stopped now: its configuration points at a port nobody listens on
    server = server_for(tmp_path, pki, f'mode = "kerberos"\nroots = ["{pki.layout.root_cert}"]\n'
                        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
                        '[logon.accounts]\n"alice@example.test" = "root"\n'
                        f'[logon.kdc]\nkrb5_config = "{krb5_conf}"\ntimeout = 20.0\n')
    try:
        card, _ = make_card(pki, "alice")
        result, _ = attempt(server, pcscd, card)
        assert result.startswith("sign-in refused (kdc_unreachable)"), result
        audit = (server.state_dir / "audit.jsonl").read_text()
        assert '"reason": "kdc_unreachable"' in audit
    finally:
        server.stop()
