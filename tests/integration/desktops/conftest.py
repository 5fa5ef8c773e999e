"""Peers for real desktop sessions: accounts with homes, a PAM service that records
open and close, an rdscard server whose sign-ins start desktops, and clients.

Client side as in the sign-in tests: an isolated pcscd with vpcd and the
virtual PIV cards, xfreerdp ``/smartcard /smartcard-logon`` under Xvfb.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.session.pamd import shipped_service_file
from rdscard.testbed.cards import CardInThread
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import (  # noqa: F401 - fixtures
    PIN,
    CardFile,
    ecc_card,
    insert,
    pcscd,
    pki,
    rsa_card,
)
from tests.integration.rdp.conftest import ServerProcess

ALICE = "rdscard-dk-alice"
BOB = "rdscard-dk-bob"
WHITE = (255, 255, 255)
DESKTOP_STARTED = r"\[session (\d+)\] desktop started on display (:\d+)"


def ensure_home_account(name: str) -> pwd.struct_passwd:
    """A local account with a home directory (created once; safe when workers race)."""
    for _ in range(50):
        try:
            account = pwd.getpwnam(name)
            break
        except KeyError:
            created = subprocess.run(
                ["useradd", "--create-home", "--shell", "/bin/sh", name],
                capture_output=True, text=True)
            if created.returncode not in (0, 9):
                time.sleep(0.1)  # /etc/passwd is locked by a concurrent useradd
    else:
        raise RuntimeError(f"cannot create the local account {name}")
    home = Path(account.pw_dir)
    if not home.is_dir():
        home.mkdir(mode=0o750, parents=True, exist_ok=True)
        os.chown(home, account.pw_uid, account.pw_gid)
    return account


@dataclass
class PamRecorder:
    """A PAM service: rdscard's own stack plus a pam_exec line recording open and close."""

    service: str
    record: Path

    def lines(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []


@pytest.fixture
def pam_recorder(tmp_path: Path) -> Iterator[PamRecorder]:
    name = f"rdscard-test-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    record = Path(tempfile.mkdtemp(prefix="rdscard-pam-", dir="/tmp")) / "record"
    script = record.parent / "record.sh"
    script.write_text(f'#!/bin/sh\necho "$PAM_TYPE $PAM_USER $PAM_TTY" >> {record}\n')
    script.chmod(0o755)
    service = Path("/etc/pam.d") / name
    service.write_text(shipped_service_file().read_text()
                       + f"session optional pam_exec.so {script}\n")
    yield PamRecorder(name, record)
    service.unlink(missing_ok=True)
    shutil.rmtree(record.parent, ignore_errors=True)


@dataclass
class DesktopServer:
    server: ServerProcess
    run_dir: Path
    pam: PamRecorder

    def session(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``rdscard session ARGS`` against this server."""
        result = subprocess.run(
            [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
             str(self.server.state_dir), *args], capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"rdscard session {' '.join(args)}: {result.stderr}\n"
                                 f"{self.server.log[-4000:]}")
        return result

    def listing(self) -> dict[int, str]:
        """Session id -> the line of ``rdscard session list``."""
        rows = {}
        for line in self.session("list").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0].isdigit():
                rows[int(fields[0])] = line
        return rows

    def started(self, count: int = 1, timeout: float = 60) -> list[tuple[int, str]]:
        assert wait_for(lambda: len(re.findall(DESKTOP_STARTED, self.server.log)) >= count,
                        timeout), self.server.log[-6000:]
        return [(int(a), b) for a, b in re.findall(DESKTOP_STARTED, self.server.log)]


def start_desktop_server(tmp_path: Path, pki: RealmPki,  # noqa: F811 - not the fixture
                         pam: PamRecorder, *,
                         alice: str = ALICE, bob: str = BOB, extra: str = "",
                         logon: str = "") -> DesktopServer:
    """A server mapping the test cards of alice and bob to ``alice`` and ``bob``
    (tests that run at once use accounts of their own)."""
    ensure_home_account(alice)
    ensure_home_account(bob)
    state = tmp_path / "state"
    issuing = x509.load_pem_x509_certificate(pki.layout.issuing_cert.read_bytes())
    NtAuthStore(state / "ntauth").add(issuing)
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = tmp_path / "rdscard.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n'
        f'[sessions]\npam_service = "{pam.service}"\n{extra}'
        f'[logon]\nmode = "local"\n{logon}'
        f'[logon.accounts]\n"alice@example.test" = "{alice}"\n"bob@example.test" = "{bob}"\n'
    )
    return DesktopServer(ServerProcess(state, ("--config", str(config))), run_dir, pam)


@pytest.fixture
def desktop_servers(tmp_path: Path, pki: RealmPki,  # noqa: F811 - fixture
                    pam_recorder: PamRecorder) -> Iterator[Callable[..., DesktopServer]]:
    """Starts servers (``start(alice=..., bob=..., extra=...)``), stopped at the end."""
    started: list[DesktopServer] = []

    def start(**kwargs: str) -> DesktopServer:
        server = start_desktop_server(tmp_path / str(len(started)), pki, pam_recorder,
                                      **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.stop()
        shutil.rmtree(server.run_dir, ignore_errors=True)


def connect(server: DesktopServer, screen: VirtualScreen, daemon: IsolatedPcscd,
            *extra: str) -> XFreeRdp:
    """xfreerdp signing in with the card in the client's reader and the PIN."""
    return XFreeRdp(screen, "127.0.0.1", server.server.port, env=daemon.env,
                    extra_args=["/smartcard", "/smartcard-logon", f"/p:{PIN}", *extra])


def connect_both(server: DesktopServer, screen: VirtualScreen,
                 daemon: IsolatedPcscd) -> list[XFreeRdp]:
    """alice's client, then (once her desktop started) bob's, both redirecting both readers.

    One after the other: two sign-ins reading the same two cards of one
    client pcscd at once only measure that pcscd's sharing of its cards.
    """
    clients = [connect(server, screen, daemon, "/u:alice")]
    try:
        server.started(1)
        clients.append(connect(server, screen, daemon, "/u:bob"))
        server.started(2)
    except BaseException:
        for client in clients:
            client.close()
        raise
    return clients


@dataclass
class Seat:
    """The user's computer: a screen, a card in the reader, the client signed in."""

    server: DesktopServer
    daemon: IsolatedPcscd
    screen: VirtualScreen
    card: CardInThread
    client: XFreeRdp

    def reconnect(self) -> XFreeRdp:
        """Close the client and sign in again from the same computer."""
        self.client.close()
        self.client = connect(self.server, self.screen, self.daemon)
        return self.client


@contextlib.contextmanager
def seat(server: DesktopServer, daemon: IsolatedPcscd, card: object,
         *extra: str) -> Iterator[Seat]:
    """Insert ``card``, start the client's screen and sign in (xfreerdp arguments
    ``extra``); all undone at the end."""
    inserted = insert(card, daemon)
    screen = VirtualScreen(1088, 832).start()
    me = None
    try:
        me = Seat(server, daemon, screen, inserted, connect(server, screen, daemon, *extra))
        yield me
    finally:
        if me is not None:
            me.client.close()
        screen.close()
        inserted.remove()


def type_text(client: XFreeRdp, text: str) -> None:
    """Type ``text`` into the client's window (xdotool), as a user at the keyboard would.

    xdotool types a newline as a keysym the client's keyboard map lacks, so
    each one is a press of Return.
    """
    for index, line in enumerate(text.split("\n")):
        if index:
            client.type_keys("Return")
        if line:
            client.type_text(line)


def processes_of(uid: int) -> list[tuple[int, str]]:
    """(pid, command name) of every process running as ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        if uid_line.split()[1:2] == [str(uid)]:
            found.append((int(entry.name), comm))
    return found


def save_client_screen(client: XFreeRdp) -> Path:
    """Keep what the client showed (for a failing test's report)."""
    shot = Path(tempfile.mkdtemp(prefix="rdscard-shot-")) / "client.png"
    client.screen.screenshot().save(shot)
    print(f"the client's screen is in {shot}")
    return shot


def read_when_ready(path: Path, timeout: float = 20, needle: str = "",
                    client: XFreeRdp | None = None) -> str:
    """The text of ``path`` once it exists (and holds ``needle``)."""
    def ready() -> bool:
        return path.exists() and needle in path.read_text(errors="replace")
    if not wait_for(ready, timeout) and client is not None:
        save_client_screen(client)
    assert ready(), f"{path} did not appear" + (
        f" with {needle!r}: {path.read_text(errors='replace')!r}" if path.exists() else "")
    return path.read_text(errors="replace")


def account(name: str) -> pwd.struct_passwd:
    return pwd.getpwnam(name)


def terminal_shown(client: XFreeRdp, timeout: float = 30) -> bool:
    """The session's terminal (xterm's white page, not the logon panel) is in the client."""
    origin = client.window_origin()

    def white_block() -> bool:
        shot = client.screen.screenshot()
        return all(shot.getpixel((origin[0] + x, origin[1] + y)) == WHITE
                   for x in range(280, 330, 10) for y in range(280, 330, 10))

    if wait_for(white_block, timeout):
        return True
    save_client_screen(client)
    return False
