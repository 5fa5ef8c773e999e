"""``[logon.kdc] card_roots`` through the whole server: xfreerdp signs in with a card carrying
the realm's root, on a host whose configuration holds no root; the roots are read over the
redirected card and the TGT is checked against the host's keytab."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.pki.msroots import write_roots
from rdscard.pki.piv_client import PivClient
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import insert
from tests.integration.logon.conftest import LOGON_PIN, logon_card_state  # noqa: F401
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.test_signin import ACCOUNT, local_account  # noqa: F401
from tests.integration.sessioncard.test_signin_kerberos import REALM, kdc  # noqa: F401

pytestmark = pytest.mark.integration

HOST = "host/rdscard-host.example.test"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def server_with_card_roots(tmp_path: Path, pki: RealmPki, kdc: MitKdc, run_dir: Path,  # noqa: F811
                           keytab: Path) -> ServerProcess:
    """A host whose NTAuth holds the issuing CA and which has no root configured."""
    state = tmp_path / "state"
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        '[logon]\nmode = "kerberos"\n'
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'[logon.accounts]\n"alice@example.test" = "{ACCOUNT}"\n'
        f'[logon.kdc]\nkrb5_config = "{kdc.krb5_conf}"\ncard_roots = true\n'
        f'validate_keytab = "{keytab}"\nvalidate_principal = "{HOST}"\n'
    )
    return ServerProcess(state, ("--config", str(config)))


def card_with_root(path: Path, pki: RealmPki) -> VirtualPivCard:
    card = VirtualPivCard(CardState.load(path))
    client = PivClient(InProcessTransport(card))
    client.select()
    client.authenticate_admin()
    write_roots(client, [pki.root_cert])
    return card


def sign_in(server: ServerProcess, card: VirtualPivCard, pcscd: IsolatedPcscd) -> str:
    """xfreerdp with the card and its PIN; returns the server's log once the attempt ended."""
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, env=pcscd.env, extra_args=[
        "/smartcard", "/smartcard-logon", f"/p:{LOGON_PIN.decode()}"])
    try:
        assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 60), \
            server.log
        return server.log
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()


def test_xfreerdp_signs_in_with_the_root_on_its_card(
        tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
        logon_card_state: Path, local_account: str, run_dir: Path) -> None:  # noqa: F811
    keytab = tmp_path / "host.keytab"
    kdc.add_service(HOST, keytab)
    card = card_with_root(logon_card_state, pki)
    log = sign_in(server_with_card_roots(tmp_path, pki, kdc, run_dir, keytab), card, pcscd)
    assert re.search(rf"signed in: alice@example.test as local account {ACCOUNT} .*TGT for "
                     rf"alice@{REALM}", log), log
    assert card.state.pin_retries_left == 3
    root = pki.root_cert.public_bytes(Encoding.DER)
    for where in (tmp_path / "state", run_dir):
        for path in where.rglob("*"):
            if path.is_file():
                assert root not in path.read_bytes(), path


def test_a_stale_host_keytab_refuses_the_sign_in(
        tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
        logon_card_state: Path, local_account: str, run_dir: Path) -> None:  # noqa: F811
    stale = tmp_path / "stale.keytab"
    kdc.add_service(HOST, stale)
    kdc.kadmin(f"ktadd -k {tmp_path / 'new.keytab'} {HOST}@{REALM}")
    card = card_with_root(logon_card_state, pki)
    log = sign_in(server_with_card_roots(tmp_path, pki, kdc, run_dir, stale), card, pcscd)
    assert "sign-in refused (tgt_unverified)" in log, log
    assert "signed in:" not in log
    assert card.state.pin_retries_left == 3
    audit = (tmp_path / "state" / "audit.jsonl").read_text()
    assert '"reason": "tgt_unverified"' in audit
