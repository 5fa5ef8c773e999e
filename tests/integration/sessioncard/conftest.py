"""Peers for smart card redirection through a real RDP session.

Client side: an isolated pcscd with vpcd readers and the project's virtual
PIV card; xfreerdp with ``/smartcard`` under Xvfb, its libpcsclite pointed
at that pcscd. Server side: a real ``rdscard serve`` whose per-session
socket directory lives in the test's temporary directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rdscard.testbed.cards import CardInThread
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import (  # noqa: F401 - fixtures
    CardFile,
    ecc_card,
    insert,
    pcscd,
    pki,
    rsa_card,
)
from tests.integration.rdp.conftest import ServerProcess

REDIRECTED = r"\[session (\d+)\] smart card redirected: programs in the session use (\S+)"


@dataclass
class RedirectedSession:
    """A live RDP session whose client redirects a reader with a virtual card in it."""

    server: ServerProcess
    client: XFreeRdp
    session: int
    socket: Path
    card: CardInThread
    pcscd: IsolatedPcscd

    def run(self, *command: str, check: bool = True, timeout: float = 60,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside the session with ``rdscard session exec``."""
        argv = [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
                str(self.server.state_dir), "exec", str(self.session), "--", *command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                input=stdin)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode} in the session\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"server log:\n{self.server.log[-4000:]}"
            )
        return result


def start_server(tmp_path: Path) -> ServerProcess:
    config = tmp_path / "rdscard.toml"
    config.write_text(f'[redirection]\nsocket_dir = "{tmp_path / "run"}"\n')
    return ServerProcess(tmp_path / "state", ("--config", str(config)))


def connect_with_card(server: ServerProcess, screen: VirtualScreen,
                      daemon: IsolatedPcscd) -> tuple[XFreeRdp, int, Path]:
    before = {int(m.group(1)) for m in re.finditer(REDIRECTED, server.log)}
    client = XFreeRdp(screen, "127.0.0.1", server.port, extra_args=["/smartcard"],
                      env=daemon.env)
    found: list[tuple[int, Path]] = []

    def redirected() -> bool:
        for match in re.finditer(REDIRECTED, server.log):
            if int(match.group(1)) not in before:
                found.append((int(match.group(1)), Path(match.group(2))))
                return True
        return False

    assert wait_for(redirected, timeout=30), (
        f"the client's smart card was not redirected\nserver:\n{server.log}\n"
        f"client:\n{client.output()}"
    )
    return client, found[0][0], found[0][1]


@pytest.fixture
def redirected(tmp_path: Path, pcscd: IsolatedPcscd,  # noqa: F811 - fixture
               rsa_card: CardFile) -> Iterator[RedirectedSession]:  # noqa: F811
    card = insert(rsa_card.card(), pcscd)
    server = start_server(tmp_path)
    screen = VirtualScreen(1088, 832).start()
    client = None
    try:
        client, session, socket = connect_with_card(server, screen, pcscd)
        yield RedirectedSession(server, client, session, socket, card, pcscd)
    finally:
        if client is not None:
            client.close()
        screen.close()
        card.remove()
        server.stop()


def ensure_account(name: str) -> str:
    """Create the local account ``name`` once; safe when test workers race to create it."""
    for _ in range(50):
        if subprocess.run(["id", name], capture_output=True).returncode == 0:
            return name
        created = subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name],
                                 capture_output=True, text=True)
        if created.returncode in (0, 9):  # 9: it exists (another worker was first)
            continue
        time.sleep(0.1)  # /etc/passwd is locked by a concurrent useradd
    raise RuntimeError(f"cannot create the local account {name}")
