"""``rdscard demo``: the end-to-end demo on the embedded defaults.

Plays both computers on loopback, everything in a temporary directory: the
client computer (a test PKI, the project's virtual PIV card in a vpcd
reader of a private pcscd, the stock xfreerdp on a virtual X screen) and
the RD Session Host (``rdscard serve`` as a process of its own: as root, a
root monitor and an unprivileged network process, as it is deployed; the
demo follows its sessions through the control socket, as ``rdscard
session list`` does). It waits for the session, checks
the logon screen in a screenshot, types a PIN, then, on the desktop the
sign-in opened (as the local account ``rdscard-demo``), types
``pkcs11-tool -L`` into the session's terminal, which lists the client's
redirected card, and reports each step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.errors import RdscardError
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.screen.layout import count_pin_bullets
from rdscard.server.control_client import query
from rdscard.testbed.cards import CardInThread, wait_for_port
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port
from rdscard.xclient import VirtualScreen, XFreeRdp, logon_screen_visible, wait_for


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the end-to-end demo (server + xfreerdp on a virtual screen)",
        description=(
            "Start a server on loopback, connect the stock xfreerdp client to it on a "
            "virtual X screen, type a PIN and report what the client showed."
        ),
    )
    parser.add_argument(
        "--output", type=Path, default=Path("demo-output"), metavar="DIR",
        help="where to write the screenshots (default: demo-output)",
    )
    parser.set_defaults(handler=run)


LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
NETWORK_PROCESS = re.compile(r"network process (\d+): running as (\S+) without privileges")


class ServedServer:
    """``rdscard serve`` for the demo: its log collected, its sessions asked for."""

    def __init__(self, config_file: Path, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rdscard.cli.main", "serve", "--config", str(config_file),
             "--listen", "127.0.0.1:0", "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        self.port = 0

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def start(self) -> ServedServer:
        """Wait until it listens (and, as root, until the network process dropped root)."""
        def ready() -> bool:
            found = LISTENING.search(self.log)
            self.port = int(found.group(1)) if found else 0
            return bool(found) and (os.geteuid() != 0 or bool(NETWORK_PROCESS.search(self.log)))

        if not wait_for(lambda: ready() or self.process.poll() is not None, 30) or not ready():
            raise RdscardError("rdscard serve did not start:\n" + self.log)
        return self

    def sessions(self) -> list[dict[str, Any]]:
        """The live sessions, as the control socket describes them."""
        try:
            reply = query(self.state_dir, {"command": "list"})
        except OSError:
            return []
        found = reply.get("sessions")
        return found if isinstance(found, list) else []

    def session(self, session_id: int) -> dict[str, Any]:
        """One session's record (empty when it is gone)."""
        return next((s for s in self.sessions() if s.get("session_id") == session_id), {})

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


DEMO_PIN = "123456"


def _step(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Handler of ``rdscard demo``."""
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rdscard-demo-") as work:
        root = Path(work)
        with contextlib.ExitStack() as stack:
            client_env = _client_card(root, stack) if os.geteuid() == 0 else None
            if client_env is None:
                _step("not root: the client-side pcscd cannot start, so no smart card this time")
            desktop = client_env is not None
            account = _demo_account() if desktop else pwd.getpwuid(os.geteuid()).pw_name
            run_dir = root / "run"
            run_dir.mkdir(mode=0o755)
            root.chmod(0o755)  # the account reaches its socket directory below
            config_file = root / "rdscard.toml"
            config_file.write_text(
                f'[redirection]\nsocket_dir = "{run_dir}"\n'
                f'[sessions]\nenabled = {"true" if desktop else "false"}\n'
                f'[logon.accounts]\n"alice@example.test" = "{account}"\n')
            if client_env is not None:
                issuing = x509.load_pem_x509_certificate((root / "pki" / "issuing-ca.pem")
                                                         .read_bytes())
                NtAuthStore.in_state_dir(root / "state").add(issuing)
                _step("server side: the test PKI's issuing CA is in the NTAuth store; "
                      f"alice@example.test maps to the local account {account!r}")
            _step("starting rdscard serve on loopback")
            server = ServedServer(config_file, root / "state")
            stack.callback(server.stop)
            try:
                server.start()
                network = NETWORK_PROCESS.search(server.log)
                if network is not None:
                    _step(f"privilege separation: a root monitor, and the network process "
                          f"{network.group(1)} running as {network.group(2)!r} without "
                          "privileges")
                _step(f"server listening on 127.0.0.1:{server.port}")
                return _drive_client(server, output, client_env)
            except RdscardError:
                print(server.log[-6000:], file=sys.stderr)
                raise
    return 1


def _client_card(root: Path, stack: contextlib.ExitStack) -> dict[str, str]:
    """The client computer's side: a test PKI, a virtual PIV card in a vpcd reader."""
    _step("client side: creating a test PKI and alice's virtual PIV card (RSA-2048 keys)")
    pki = RealmPki.create(root / "pki", "EXAMPLE.TEST", "example.test")
    state = CardState.new(serial=0x2026, pin=DEMO_PIN.encode(), puk=b"12345678")
    card = VirtualPivCard(state)
    provision(PivClient(InProcessTransport(card)), pki, "alice", Credentials())
    daemon = IsolatedPcscd(root / "pcscd", free_tcp_port(2))
    daemon.start()
    stack.callback(daemon.stop)
    port = daemon.vpcd_ports()[0]
    wait_for_port("127.0.0.1", port)
    inserted = CardInThread(card, port)
    inserted.insert()
    stack.callback(inserted.remove)
    _step(f"client side: the card is in reader {daemon.reader_names()[0]!r} of a private pcscd")
    return daemon.env


def _drive_client(
    server: ServedServer, output: Path, client_env: dict[str, str] | None
) -> int:
    width, height = 1024, 768
    with VirtualScreen(width + 64, height + 64) as screen:
        extra = ["/smartcard"] if client_env is not None else []
        _step(f"virtual screen {screen.display}; connecting xfreerdp /sec:tls {' '.join(extra)}")
        client = XFreeRdp(screen, "127.0.0.1", server.port, size=(width, height),
                          extra_args=extra, env=client_env)
        try:
            def active() -> list[dict[str, Any]]:
                return [s for s in server.sessions() if s.get("phase") == "active"]

            if not wait_for(lambda: bool(active()), 20):
                raise RdscardError(
                    "the client did not reach the active session:\n" + client.output()
                )
            session = active()[0]
            _step(
                f"session {session['session_id']} active: client {session['client_name']!r}, "
                f"desktop {session['desktop']}, channels "
                f"{', '.join(session['channels']) or 'none'}"
            )
            _show_logon_screen(screen, client, output, width, height)
            if client_env is not None:
                session = _sign_in(screen, client, server, session["session_id"], output)
                _use_redirected_card(screen, client, session, output)
            _step("demo complete")
            return 0
        finally:
            client.close()


def _show_logon_screen(
    screen: VirtualScreen, client: XFreeRdp, output: Path, width: int, height: int
) -> None:
    time.sleep(1.0)
    shot = screen.screenshot()
    shot.save(output / "logon-screen.png")
    origin = client.window_origin()
    if not logon_screen_visible(shot, origin, width, height):
        raise RdscardError("the logon screen is not visible in the client's window")
    _step(f"the client shows the logon screen ({output / 'logon-screen.png'})")
    client.type_keys("1", "2", "3", "4")
    wait_for(lambda: count_pin_bullets(screen.screenshot(), width, height, origin) == 4, 10)
    shot = screen.screenshot()
    shot.save(output / "pin-typed.png")
    bullets = count_pin_bullets(shot, width, height, origin)
    _step(f"typed 4 PIN digits: the PIN field shows {bullets} masked characters "
          f"({output / 'pin-typed.png'})")
    if bullets != 4:
        raise RdscardError(f"expected 4 masked characters, saw {bullets}")


DEMO_ACCOUNT = "rdscard-demo"


def _demo_account() -> str:
    """The local account alice's desktop runs as (created with a home on first use)."""
    try:
        pwd.getpwnam(DEMO_ACCOUNT)
    except KeyError:
        _step(f"creating the local account {DEMO_ACCOUNT!r} for alice's desktop")
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", DEMO_ACCOUNT],
                       check=True, capture_output=True)
    return DEMO_ACCOUNT


def _sign_in(screen: VirtualScreen, client: XFreeRdp, server: ServedServer, session_id: int,
             output: Path) -> dict[str, Any]:
    client.type_keys("Escape", *DEMO_PIN, "Return")
    _step("cleared the field, typed the card's PIN and Enter")
    if not wait_for(lambda: server.session(session_id).get("phase") == "desktop", 40):
        raise RdscardError("the sign-in did not open a desktop (see the server log)")
    session = server.session(session_id)
    _step(f"signed in with the smart card as {session['account']!r} (UPN {session['user']}); "
          f"desktop on display {session['display']} running as {session['account']!r}")
    time.sleep(1.0)
    screen.screenshot().save(output / "desktop.png")
    _step(f"the client shows the session's desktop ({output / 'desktop.png'})")
    return session


def _use_redirected_card(
    screen: VirtualScreen, client: XFreeRdp, session: dict[str, Any], output: Path
) -> None:
    env = session["env"]
    if "PCSCLITE_CSOCK_NAME" not in env:
        raise RdscardError("the client's smart card was not redirected into the session")
    _step("the client's smart card is redirected: the session's PC/SC socket is "
          f"{env['PCSCLITE_CSOCK_NAME']}")
    home = Path(pwd.getpwnam(session["account"]).pw_dir)
    listing = home / "pkcs11-tool.txt"
    listing.unlink(missing_ok=True)
    command = f"id -un; pkcs11-tool -L 2>&1 | tee {listing}"
    client.type_text(command)
    client.type_keys("Return")
    _step(f"typed into the session's terminal, through xfreerdp: {command}")
    if not wait_for(lambda: listing.exists() and "token label" in listing.read_text(), 30):
        raise RdscardError("pkcs11-tool in the session did not list the client's card")
    time.sleep(0.5)
    screen.screenshot().save(output / "desktop-pkcs11-tool.png")
    for line in listing.read_text().splitlines():
        if line.strip():
            print(f"    {line}", flush=True)
    _step(f"the session's terminal shows it ({output / 'desktop-pkcs11-tool.png'})")
