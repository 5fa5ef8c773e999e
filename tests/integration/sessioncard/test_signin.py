"""Smart card sign-in with single sign-on through xfreerdp /smartcard /smartcard-logon."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.screen import layout
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, CardFile, insert
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.conftest import ensure_account

pytestmark = pytest.mark.integration

ACCOUNT = "rdscard-alice"


@pytest.fixture(scope="module")
def local_account() -> str:
    """A local account for alice's UPN (created once, as the CI machine is ours)."""
    return ensure_account(ACCOUNT)


def start_signin_server(tmp_path: Path, pki: RealmPki) -> ServerProcess:
    state = tmp_path / "state"
    issuing = x509.load_pem_x509_certificate(pki.layout.issuing_cert.read_bytes())
    NtAuthStore(state / "ntauth").add(issuing)
    # the session's account must reach its socket: not under pytest's private tmp_path
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
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


def session_run(server: ServerProcess, session: int, *command: str) -> str:
    argv = [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
            str(server.state_dir), "exec", str(session), "--", *command]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def signed_in_session(server: ServerProcess) -> int:
    match = re.search(r"\[session (\d+)\] signed in: ", server.log)
    assert match, server.log
    return int(match.group(1))


def test_signed_in_session_runs_as_the_account_and_the_card_kept_its_tries(
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
        session = signed_in_session(signin_server)
        assert session_run(signin_server, session, "id", "-un").strip() == ACCOUNT
        status = session_run(signin_server, session, "yubico-piv-tool", "-r", "Virtual",
                             "-a", "status")
        assert "PIN tries left:\t3" in status or "PIN tries left: 3" in status, status
        origin = client.window_origin()
        shot = screen.screenshot()
        pin = layout.pin_box(1024, 768)
        pixel = shot.getpixel((origin[0] + pin.right - 8, origin[1] + pin.top + 8))
        assert not layout.near(pixel, layout.PIN_BOX_FILL), "the PIN field is gone"
    finally:
        client.close()
        screen.close()
        card.remove()


def test_wrong_pin_from_the_client_costs_one_try_then_typing_the_pin_signs_in(
    signin_server: ServerProcess, pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    card = insert(rsa_card.card(), pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", signin_server.port,
                      extra_args=["/smartcard", "/smartcard-logon", "/p:97531"], env=pcscd.env)
    try:
        assert wait_for(lambda: "sign-in refused (wrong_pin)" in signin_server.log, 40), (
            signin_server.log
        )
        assert "wrong PIN: 2 tries left" in signin_server.log  # exactly one try spent
        origin = client.window_origin()
        status = layout.status_box(1024, 768)
        assert wait_for(lambda: layout.near(
            screen.screenshot().getpixel((origin[0] + status.left + 3, origin[1] + status.top + 3)),
            layout.ERROR_FILL), timeout=10), "the error is shown on the logon screen"
        client.type_keys(*PIN, "Return")
        assert wait_for(lambda: "signed in:" in signin_server.log, timeout=40), signin_server.log
        assert "97531" not in signin_server.log
    finally:
        client.close()
        screen.close()
        card.remove()


def removal_server(tmp_path: Path, pki: RealmPki, policy: str) -> ServerProcess:
    server = start_signin_server(tmp_path, pki)
    server.stop()
    config = tmp_path / "rdscard.toml"
    config.write_text(config.read_text().replace(
        '[logon]\nmode = "local"\n', f'[logon]\nmode = "local"\ncard_removal = "{policy}"\n'))
    return ServerProcess(tmp_path / "state", ("--config", str(config)))


def test_card_removal_locks_then_the_card_and_pin_unlock(
    tmp_path: Path, pki: RealmPki, local_account: str, pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = removal_server(tmp_path, pki, "lock")
    card = insert(rsa_card.card(), pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"], env=pcscd.env)
    try:
        assert wait_for(lambda: "signed in:" in server.log, timeout=40), server.log
        card.remove()
        assert wait_for(lambda: "card removal policy lock" in server.log, timeout=20)
        origin = client.window_origin()
        pin = layout.pin_box(1024, 768)
        assert wait_for(lambda: layout.near(
            screen.screenshot().getpixel((origin[0] + pin.right - 8, origin[1] + pin.top + 8)),
            layout.PIN_BOX_FILL), timeout=10), "the locked session shows the PIN field"
        card.insert()
        client.type_keys(*PIN, "Return")
        assert wait_for(lambda: server.log.count("signed in:") == 2, timeout=40), server.log
    finally:
        client.close()
        screen.close()
        card.remove()
        server.stop()


def test_card_removal_disconnects_with_a_reason(
    tmp_path: Path, pki: RealmPki, local_account: str, pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = removal_server(tmp_path, pki, "disconnect")
    card = insert(rsa_card.card(), pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"], env=pcscd.env)
    try:
        assert wait_for(lambda: "signed in:" in server.log, timeout=40), server.log
        card.remove()
        assert wait_for(lambda: client.process.poll() is not None, timeout=20), (
            "xfreerdp should end when the session is disconnected"
        )
        assert "card removal policy disconnect" in server.log
        assert "ERRINFO_RPC_INITIATED_DISCONNECT" in client.output()
    finally:
        client.close()
        screen.close()
        server.stop()


def test_with_two_cards_the_user_name_from_the_client_picks_the_card(
    tmp_path: Path, pki: RealmPki, local_account: str, pcscd: IsolatedPcscd,
    rsa_card: CardFile, ecc_card: CardFile,
) -> None:
    ensure_account("bob")
    server = start_signin_server(tmp_path, pki)
    server.stop()
    config = tmp_path / "rdscard.toml"
    config.write_text(config.read_text() + '"bob@example.test" = "bob"\n')
    server = ServerProcess(tmp_path / "state", ("--config", str(config)))
    alice = insert(rsa_card.card(), pcscd, 0)
    bob = insert(ecc_card.card(), pcscd, 1)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, env=pcscd.env,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}", "/u:bob"])
    try:
        assert wait_for(lambda: "signed in:" in server.log, timeout=40), server.log
        assert "signed in: bob@example.test as local account bob" in server.log
    finally:
        client.close()
        screen.close()
        alice.remove()
        bob.remove()
        server.stop()
