"""Privilege separation: the network side of a real server runs unprivileged.

``rdscard serve`` started as root is a monitor (root) and a network process
that gives up root before it reads a byte from the network. Proved here on a
real sign-in through xfreerdp: the network process's credentials, and that a
process holding exactly those credentials (what arbitrary code execution in
it would get) can read neither the TLS key, nor the audit log, nor the
trust store.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.pki.ca import RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import PIN, CardFile, insert
from tests.integration.rdp.conftest import ServerProcess
from tests.integration.sessioncard.test_signin import (  # noqa: F401 - fixture
    local_account,
    start_signin_server,
)

pytestmark = pytest.mark.integration

NETWORK = re.compile(r"network process (\d+): running as (\S+) without privileges")


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.fixture
def signed_in(tmp_path: Path, pki: RealmPki, local_account: str,  # noqa: F811
              pcscd: IsolatedPcscd,
              rsa_card: CardFile) -> Iterator[ServerProcess]:
    server = start_signin_server(tmp_path, pki)
    card = insert(rsa_card.card(), pcscd)
    screen = VirtualScreen(1088, 832).start()
    client = XFreeRdp(screen, "127.0.0.1", server.port,
                      extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}"], env=pcscd.env)
    try:
        assert wait_for(lambda: "signed in:" in server.log, timeout=40), \
            server.log + client.output()
        yield server
    finally:
        client.close()
        screen.close()
        card.remove()
        server.stop()


def test_the_network_process_runs_unprivileged_and_cannot_read_the_monitors_secrets(
        signed_in: ServerProcess) -> None:
    server = signed_in
    found = NETWORK.search(server.log)
    assert found, server.log
    pid, user = int(found.group(1)), found.group(2)
    account = pwd.getpwnam(user)
    assert account.pw_uid != 0
    network = status_of(pid)
    assert network["Uid"].split() == [str(account.pw_uid)] * 4
    assert network["Gid"].split() == [str(account.pw_gid)] * 4
    assert network["Groups"] == ""
    assert int(network["CapEff"], 16) == int(network["CapPrm"], 16) == 0
    assert network["NoNewPrivs"] == "1"
    assert status_of(server.process.pid)["Uid"].split()[0] == "0"  # the monitor

    state = server.state_dir
    secrets = [state / "tls" / "server-key.pem", state / "audit.jsonl",
               *sorted((state / "ntauth").iterdir())]
    for path in [state, *secrets]:
        info = os.stat(path)
        assert info.st_uid == 0, path
        assert stat.S_IMODE(info.st_mode) & 0o077 == 0, (path, oct(info.st_mode))
    assert '"result": "success"' in (state / "audit.jsonl").read_text()

    def as_network_process() -> None:
        os.setgroups([])
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)

    probe = 'for p; do if head -c1 "$p" >/dev/null 2>&1; then echo READ "$p"; ' \
            'else echo DENIED "$p"; fi; done'
    ran = subprocess.run(["/bin/sh", "-c", probe, "sh", *map(str, secrets)],
                         capture_output=True, text=True, preexec_fn=as_network_process,
                         cwd="/", check=False)
    assert ran.stdout.split() == [w for p in secrets for w in ("DENIED", str(p))], \
        ran.stdout + ran.stderr
    assert "first imported without privileges" not in server.log
    assert PIN not in server.log


def test_the_monitor_ends_when_its_network_process_dies(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state")
    try:
        assert wait_for(lambda: NETWORK.search(server.log) is not None, timeout=20), server.log
        found = NETWORK.search(server.log)
        assert found is not None
        os.kill(int(found.group(1)), 9)
        assert server.process.wait(20) != 0
        assert "the network process ended with status -9" in server.log
        assert not (server.state_dir / "control.sock").exists()
    finally:
        server.stop()
