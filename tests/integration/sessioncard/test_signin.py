"""Smart card sign-in with single sign-on through xfreerdp /smartcard /smartcard-logon."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, CardFile, insert
from tests.integration.rdp.conftest import ServerProcess

pytestmark = pytest.mark.integration

ACCOUNT = "rdscard-alice"


@pytest.fixture(scope="module")
def local_account() -> str:
    """A local account for alice's UPN (created once, as the CI machine is ours)."""
    if subprocess.run(["id", ACCOUNT], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", ACCOUNT],
                       check=True)
    return ACCOUNT


def start_signin_server(tmp_path: Path, pki: RealmPki) -> ServerProcess:
    state = tmp_path / "state"
    issuing = x509.load_pem_x509_certificate(pki.layout.issuing_cert.read_bytes())
    NtAuthStore(state / "ntauth").add(issuing)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{tmp_path / "run"}"\n'
        '[logon]\nmode = "local"\n'
        f'[logon.accounts]\n"alice@example.test" = "{ACCOUNT}"\n'
    )
    return ServerProcess(state, ("--config", str(config)))


@pytest.fixture
def signin_server(tmp_path: Path, pki: RealmPki, local_account: str) -> Iterator[ServerProcess]:
    server = start_signin_server(tmp_path, pki)
    yield server
    server.stop()


def test_pin_from_the_client_signs_in_without_a_prompt(
    signin_server: ServerProcess, pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    card = insert(rsa_card.card(), pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", signin_server.port,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"], env=pcscd.env)
    try:
        assert wait_for(lambda: "signed in:" in signin_server.log, timeout=40), (
            signin_server.log + client.output()
        )
        match = re.search(r"\[session (\d+)\] signed in: alice@example.test as local account "
                          + ACCOUNT, signin_server.log)
        assert match, signin_server.log
        assert PIN not in signin_server.log
    finally:
        client.close()
        screen.close()
        card.remove()
