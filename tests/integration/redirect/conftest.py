"""Peers for the redirection tests: an isolated pcscd with vpcd and the virtual PIV card
behind our own pcsc-lite socket, served by ``python -m rdscard.redirect.local_backend``.

The chain is: real program -> our socket -> PcscliteService -> LocalPcscBackend ->
isolated pcscd -> vpcd -> virtual card. The service runs in a subprocess because
libpcsclite reads PCSCLITE_CSOCK_NAME once per process: the service's process
points at the isolated pcscd, the programs under test at our socket.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rdscard.testbed.pcscd import IsolatedPcscd, PeerError
from tests.integration.card.conftest import (  # noqa: F401 - fixtures used by these tests
    ecc_card,
    pcscd,
    pki,
    rsa_card,
)

START_TIMEOUT = 20.0


@dataclass
class RedirectedSocket:
    """Our pcsc-lite socket in front of an isolated pcscd, served by a child process."""

    directory: Path
    process: subprocess.Popen[str]
    upstream: IsolatedPcscd
    log_lines: list[str] = field(default_factory=list)

    @property
    def socket_path(self) -> Path:
        return self.directory / "pcscd.comm"

    @property
    def env(self) -> dict[str, str]:
        """What a program needs to use our socket instead of a pcscd."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    def log(self) -> str:
        return "".join(self.log_lines)


def start_local_service(upstream: IsolatedPcscd, directory: Path, *, uid: int = 0,
                        gid: int = 0, verbose: bool = True) -> RedirectedSocket:
    """Start the local-backend service for ``upstream`` and wait until it is ready."""
    env = {**os.environ, **upstream.env, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rdscard.redirect.local_backend", "--socket-dir", str(directory),
         "--uid", str(uid), "--gid", str(gid), *(["-v"] if verbose else [])],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )
    service = RedirectedSocket(directory, process, upstream)
    assert process.stderr is not None and process.stdout is not None
    pump = threading.Thread(target=_pump, args=(process.stderr, service.log_lines), daemon=True)
    pump.start()
    ready = threading.Event()
    line: list[str] = []

    def wait_ready() -> None:
        assert process.stdout is not None
        line.append(process.stdout.readline())
        ready.set()

    threading.Thread(target=wait_ready, daemon=True).start()
    if not ready.wait(START_TIMEOUT) or not line[0].startswith("ready "):
        stop_local_service(service)
        raise PeerError("the pcsc-lite service did not start:\n" + service.log())
    return service


def _pump(stream: object, sink: list[str]) -> None:
    for text in stream:  # type: ignore[attr-defined]
        sink.append(text)


def stop_local_service(service: RedirectedSocket) -> int:
    process = service.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


class Lines:
    """The stdout lines of a child process, read with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.queue.put(line.strip())

    def next(self, timeout: float = 20) -> str:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s") from None


@pytest.fixture
def redirected(pcscd: IsolatedPcscd, tmp_path: Path) -> Iterator[RedirectedSocket]:  # noqa: F811
    """Our socket (owned by root) in front of this test's own pcscd."""
    service = start_local_service(pcscd, tmp_path / "session")
    try:
        yield service
    finally:
        status = stop_local_service(service)
        assert status == 0, f"the service exited with {status}:\n{service.log()}"
        assert "Traceback" not in service.log(), service.log()
        assert not service.directory.exists()
