"""``rdscard demo``: the end-to-end demo on the embedded defaults.

Starts an rdscard server on loopback (state in a temporary directory), a
virtual X screen and the stock xfreerdp client connected to it over TLS;
waits for the session to become active, types a PIN into the client's
window and reports what the client showed, with screenshots.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rdscard.config import Config
from rdscard.errors import RdscardError
from rdscard.screen.layout import count_pin_bullets
from rdscard.server.listener import RdpServer
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


def _step(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Handler of ``rdscard demo``."""
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rdscard-demo-") as state:
        config = Config().with_overrides(listen="127.0.0.1:0", state_dir=state)
        _step("starting the rdscard server on loopback")
        server = BackgroundServer(config).start()
        port = server.server.port
        _step(f"server listening on 127.0.0.1:{port}")
        try:
            return _drive_client(server, port, output)
        finally:
            server.stop()


def _drive_client(server: BackgroundServer, port: int, output: Path) -> int:
    width, height = 1024, 768
    with VirtualScreen(width + 64, height + 64) as screen:
        _step(f"virtual screen {screen.display} started; connecting xfreerdp /sec:tls")
        client = XFreeRdp(screen, "127.0.0.1", port, size=(width, height))
        try:
            sessions = server.server.context
            assert sessions is not None
            active = wait_for(
                lambda: any(s.phase == "active" for s in sessions.sessions), timeout=20
            )
            if not active:
                raise RdscardError(
                    "the client did not reach the active session:\n" + client.output()
                )
            session = next(s for s in sessions.sessions if s.phase == "active")
            _step(
                f"session {session.session_id} active: client {session.client_name!r}, "
                f"desktop {session.desktop}, channels {', '.join(session.channels) or 'none'}"
            )
            time.sleep(1.0)
            shot = screen.screenshot()
            shot.save(output / "logon-screen.png")
            origin = client.window_origin()
            if not logon_screen_visible(shot, origin, width, height):
                raise RdscardError("the logon screen is not visible in the client's window")
            _step(f"the client shows the logon screen ({output / 'logon-screen.png'})")
            client.type_keys("1", "2", "3", "4")
            wait_for(
                lambda: count_pin_bullets(screen.screenshot(), width, height, origin) == 4,
                timeout=10,
            )
            shot = screen.screenshot()
            shot.save(output / "pin-typed.png")
            bullets = count_pin_bullets(shot, width, height, origin)
            _step(
                f"typed 4 PIN digits: the PIN field shows {bullets} masked characters "
                f"({output / 'pin-typed.png'})"
            )
            if bullets != 4:
                raise RdscardError(f"expected 4 masked characters, saw {bullets}")
            _step("demo complete: the stock client connected over TLS and used the logon screen")
            return 0
        finally:
            client.close()
