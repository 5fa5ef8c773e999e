"""``rdscard demo``: the end-to-end demo on the embedded defaults.

Plays both computers on loopback, everything in a temporary directory: the
client computer (a test PKI, the project's virtual PIV card in a vpcd
reader of a private pcscd, the stock xfreerdp on a virtual X screen) and
the RD Session Host (an rdscard server). It waits for the session, checks
the logon screen in a screenshot, types a PIN, then, on the desktop the
sign-in opened (as the local account ``rdscard-demo``), types
``pkcs11-tool -L`` into the session's terminal, which lists the client's
redirected card, and reports each step.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import subprocess
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.config import Config
from rdscard.errors import RdscardError
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.screen.layout import count_pin_bullets
from rdscard.server.listener import RdpServer
from rdscard.server.sessions import SessionInfo
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


class BackgroundServer:
    """An :class:`RdpServer` running its own event loop in a thread."""

    def __init__(self, config: Config) -> None:
        self.server = RdpServer(config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdscard-server", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> BackgroundServer:
        """Start the server; returns once it listens."""
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Close every connection and stop the loop."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


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
            config = Config().with_overrides(listen="127.0.0.1:0", state_dir=root / "state")
            desktop = client_env is not None
            account = _demo_account() if desktop else pwd.getpwuid(os.geteuid()).pw_name
            run_dir = root / "run"
            run_dir.mkdir(mode=0o755)
            root.chmod(0o755)  # the account reaches its socket directory below
            config = replace(
                config,
                redirection=replace(config.redirection, socket_dir=run_dir),
                logon=replace(config.logon, accounts={"alice@example.test": account}),
                sessions=replace(config.sessions, enabled=desktop),
            )
            if client_env is not None:
                issuing = x509.load_pem_x509_certificate((root / "pki" / "issuing-ca.pem")
                                                         .read_bytes())
                NtAuthStore.in_state_dir(root / "state").add(issuing)
                _step("server side: the test PKI's issuing CA is in the NTAuth store; "
                      f"alice@example.test maps to the local account {account!r}")
            _step("starting the rdscard server on loopback")
            server = BackgroundServer(config).start()
            stack.callback(server.stop)
            _step(f"server listening on 127.0.0.1:{server.server.port}")
            return _drive_client(server, output, client_env)
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
    server: BackgroundServer, output: Path, client_env: dict[str, str] | None
) -> int:
    width, height = 1024, 768
    context = server.server.context
    assert context is not None
    with VirtualScreen(width + 64, height + 64) as screen:
        extra = ["/smartcard"] if client_env is not None else []
        _step(f"virtual screen {screen.display}; connecting xfreerdp /sec:tls {' '.join(extra)}")
        client = XFreeRdp(screen, "127.0.0.1", server.server.port, size=(width, height),
                          extra_args=extra, env=client_env)
        try:
            if not wait_for(lambda: any(s.phase == "active" for s in context.sessions), 20):
                raise RdscardError(
                    "the client did not reach the active session:\n" + client.output()
                )
            session = next(s for s in context.sessions if s.phase == "active")
            _step(
                f"session {session.session_id} active: client {session.client_name!r}, "
                f"desktop {session.desktop}, channels {', '.join(session.channels) or 'none'}"
            )
            _show_logon_screen(screen, client, output, width, height)
            if client_env is not None:
                _sign_in(screen, client, session, output)
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


def _sign_in(
    screen: VirtualScreen, client: XFreeRdp, session: SessionInfo, output: Path
) -> None:
    client.type_keys("Escape", *DEMO_PIN, "Return")
    _step("cleared the field, typed the card's PIN and Enter")
    if not wait_for(lambda: session.phase == "desktop", 40):
        raise RdscardError("the sign-in did not open a desktop (see the server log above)")
    _step(f"signed in with the smart card as {session.account!r} (UPN {session.user}); "
          f"desktop on display {session.display} running as {session.account!r}")
    time.sleep(1.0)
    screen.screenshot().save(output / "desktop.png")
    _step(f"the client shows the session's desktop ({output / 'desktop.png'})")


def _use_redirected_card(
    screen: VirtualScreen, client: XFreeRdp, session: SessionInfo, output: Path
) -> None:
    if not wait_for(lambda: "PCSCLITE_CSOCK_NAME" in session.env, 20):
        raise RdscardError("the client's smart card was not redirected into the session")
    _step("the client's smart card is redirected: the session's PC/SC socket is "
          f"{session.env['PCSCLITE_CSOCK_NAME']}")
    home = Path(pwd.getpwnam(session.account).pw_dir)
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
