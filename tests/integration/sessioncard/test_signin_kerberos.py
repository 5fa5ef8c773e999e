"""Kerberos mode: the sign-in gets a TGT by PKINIT with the redirected card; SSO; no PIN leaks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import insert
from tests.integration.logon.conftest import LOGON_PIN, client_program, logon_card_state  # noqa: F401
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.test_signin import ACCOUNT, local_account  # noqa: F401

pytestmark = pytest.mark.integration

REALM = "EXAMPLE.TEST"


@pytest.fixture
def kdc(pki: RealmPki, tmp_path: Path) -> Iterator[MitKdc]:
    with MitKdc(tmp_path / "kdc", REALM, pki) as server:
        server.add_user("alice")
        yield server


def kerberos_server(tmp_path: Path, pki: RealmPki, kdc: MitKdc) -> tuple[ServerProcess, Path]:
    state = tmp_path / "state"
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        f'[logon]\nmode = "kerberos"\nroots = ["{pki.layout.root_cert}"]\n'
        '[logon.domain_realms]\n"example.test" = "EXAMPLE.TEST"\n'
        f'[logon.accounts]\n"alice@example.test" = "{ACCOUNT}"\n'
        f'[logon.kdc]\nkrb5_config = "{kdc.krb5_conf}"\n'
    )
    return ServerProcess(state, ("--config", str(config))), run_dir


def proc_texts(skip: set[int]) -> list[bytes]:
    """argv and environment of every process but the client-side ones in ``skip``.

    Client programs (any test's: tests run two at a time) are skipped too: they
    are given the PIN on their command line, which is the client's business.
    """
    texts: list[bytes] = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in skip or client_program(pid):
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    texts.append(f.read())
            except OSError:
                continue
    return texts


def test_kerberos_sign_in_gets_a_tgt_with_no_prompt_and_no_pin_anywhere(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    server, run_dir = kerberos_server(tmp_path, pki, kdc)
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port, env=pcscd.env, extra_args=[
        "/smartcard", "/smartcard-logon", f"/p:{LOGON_PIN.decode()}"])
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:  # the server side's processes while the sign-in runs
        while not stop.is_set():
            seen.extend(proc_texts({client.process.pid}))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        try:
            assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 60)
        finally:
            stop.set()
            watcher.join()
        match = re.search(r"\[session (\d+)\] signed in: alice@example.test as local account "
                          rf"{ACCOUNT} .*TGT for alice@{REALM}", server.log)
        assert match, server.log
        session = match.group(1)
        klist = subprocess.run(
            [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
             str(server.state_dir), "exec", session, "--", "klist"],
            capture_output=True, text=True, timeout=30)
        assert f"Default principal: alice@{REALM}" in klist.stdout, klist.stdout + klist.stderr
        assert card.state.pin_retries_left == 3  # a correct PIN consumed no try
        audit = (server.state_dir / "audit.jsonl").read_text()
        assert '"result": "success"' in audit and '"upn": "alice@example.test"' in audit
        forms = (LOGON_PIN, LOGON_PIN.decode("ascii").encode("utf-16-le"), LOGON_PIN.hex().encode())
        for text in [server.log.encode(), *seen]:
            assert not any(form in text for form in forms)
        for root in (server.state_dir, run_dir):
            for path in root.rglob("*"):
                if path.is_file():
                    data = path.read_bytes()
                    assert not any(form in data for form in forms), path
    finally:
        client.close()
        screen.close()
        inserted.remove()
        server.stop()
