"""Peers for the RDP server tests: a real ``rdscard serve`` process and Xvfb screens."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.xclient import VirtualScreen

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
#: The network process serves (privilege separation), or there is none (it is off).
READY = re.compile(r"network process \d+: running as|privilege separation is off")


class ServerProcess:
    """``rdscard [-v] serve`` on a free loopback port, its log collected."""

    def __init__(
        self, state_dir: Path, extra_args: tuple[str, ...] = (), *, verbose: bool = True
    ) -> None:
        """``verbose``: log debug lines too (``-v``); benchmarks run as deployed, without."""
        self.state_dir = state_dir
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rdscard.cli.main", *(["-v"] if verbose else []), "serve",
             "--listen", "127.0.0.1:0", "--state-dir", str(state_dir), *extra_args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._port: int | None = None
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while self._port is None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("rdscard serve did not start:\n" + self.log)
            time.sleep(0.05)
        # As root the network process listens first, then loads every module and drops
        # its privileges before it serves anyone: wait for that (seconds under load).
        while os.geteuid() == 0 and not READY.search(self.log):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("rdscard serve did not drop its privileges:\n" + self.log)
            time.sleep(0.05)

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self._lines.append(line)
            match = LISTENING.search(line)
            if match and self._port is None:
                self._port = int(match.group(1))

    @property
    def port(self) -> int:
        assert self._port is not None
        return self._port

    @property
    def log(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        """Wait until ``pattern`` matches ``count`` log lines; returns the matches."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log.splitlines() if regex.search(line)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def rdp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests of a module."""
    server = ServerProcess(tmp_path_factory.mktemp("rdscard-state"))
    yield server
    server.stop()
    assert server.process.returncode == 0, server.log


@pytest.fixture
def screen() -> Iterator[VirtualScreen]:
    """A fresh Xvfb screen for one client."""
    with VirtualScreen(1088, 832) as virtual:
        yield virtual
