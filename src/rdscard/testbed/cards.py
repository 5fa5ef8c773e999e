"""Put virtual cards into vpcd readers: in a thread of this process, or as a separate process.

Insertion is the card connecting to the reader's vpcd port; removal is the
card disconnecting (INTEROP-NOTES 6). :class:`CardInThread` is fast and lets
a test reach the card object; :class:`VirtualCardProcess` runs
``rdscard card insert`` so that stopping the process removes the card, as a
user pressing Ctrl-C would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from rdscard.card.vpcd import VpcdCard, serve_card_to_vpcd
from rdscard.testbed.pcscd import PeerError
from rdscard.testbed.ports import is_listening


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until the vpcd driver listens on local ``port`` (``host`` names it in errors)."""
    deadline = time.monotonic() + timeout
    while not is_listening(port):
        if time.monotonic() > deadline:
            raise PeerError(
                f"cannot reach vpcd at {host}:{port}: is pcscd running with the vpcd driver?"
            )
        time.sleep(0.02)


class CardInThread:
    """Serve ``card`` to the vpcd reader at ``host:port`` from a background thread.

    Uses :func:`rdscard.card.vpcd.serve_card_to_vpcd`. :meth:`remove` (or
    leaving the ``with`` block) disconnects, which pcscd reports as removal.
    """

    def __init__(self, card: VpcdCard, port: int, host: str = "127.0.0.1") -> None:
        self.card = card
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None

    def insert(self) -> None:
        if self._thread is not None:
            raise RuntimeError("card already inserted")
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=f"vpcd-card-{self.port}",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise PeerError("the card thread did not start")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        stop = asyncio.Event()
        self._stop = stop

        async def main() -> None:
            self._ready.set()
            await serve_card_to_vpcd(self.card, self.host, self.port, stop=stop, retry=True)

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the test through .error
            self.error = exc
            self._ready.set()
        finally:
            loop.close()

    def remove(self) -> None:
        """Disconnect the card and wait for the thread to end."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already finished
                loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        if thread.is_alive():
            raise PeerError(f"the card on vpcd port {self.port} did not stop")

    def __enter__(self) -> Self:
        if self._thread is None:  # not inserted yet
            self.insert()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


class VirtualCardProcess:
    """``rdscard card insert --state FILE --vpcd 127.0.0.1:PORT`` as a child process."""

    def __init__(
        self, state: Path, port: int, host: str = "127.0.0.1", *, log: Path | None = None
    ) -> None:
        self.state = Path(state)
        self.host = host
        self.port = port
        self.log_path = log or self.state.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rdscard.cli.main", "-v", "card", "insert",
                 "--state", str(self.state), "--vpcd", f"{self.host}:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> int | None:
        """Interrupt the process (SIGINT, as Ctrl-C) and return its exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        return process.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
