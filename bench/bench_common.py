"""Shared pieces of the redirection benchmarks: process accounting, percentiles, the server.

CPU time is read from ``/proc/PID/task/*/schedstat`` (nanoseconds on the CPU,
summed over the threads alive at the time of reading), which is fine-grained
enough for per-call figures of a few microseconds; resident memory from
``/proc/PID/status``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
REDIRECTED = re.compile(
    r"\[session (\d+)\] smart card redirected: programs in the session use (\S+)"
)


def sched_ns(pid: int) -> tuple[int, int]:
    """Nanoseconds ``pid`` (all its current threads) spent on a CPU, and runnable but waiting."""
    running = waiting = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listing and reading
        running += int(fields[0])
        waiting += int(fields[1])
    return running, waiting


def cpu_ns(pid: int) -> int:
    """Nanoseconds ``pid`` (all its current threads) spent on a CPU."""
    return sched_ns(pid)[0]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


NETWORK_PROCESS = re.compile(r"network process (\d+): running as")


class ServerProcess:
    """``rdscard serve`` on a free loopback port with a configuration file; log collected."""

    def __init__(self, directory: Path, config_text: str, *, profile: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        """``profile``: run the server under cProfile, its statistics written there on stop;
        ``env``: added to the server's environment (``RDSCARD_PURE_PYTHON``)."""
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "rdscard.toml"
        config.write_text(config_text)
        self.state_dir = directory / "state"
        python = [sys.executable]
        if profile is not None:
            python += ["-m", "cProfile", "-o", str(profile)]
        self.process = subprocess.Popen(
            [*python, "-m", "rdscard.cli.main", "serve", "--listen", "127.0.0.1:0",
             "--state-dir", str(self.state_dir), "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.pid = self.process.pid
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.port = 0
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while self.port == 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("rdscard serve did not start:\n" + self.log)
            time.sleep(0.05)
        # With privilege separation (root) the work is the network process's, not the
        # monitor's: figures are read from it.
        self.monitor_pid = self.process.pid
        while os.geteuid() == 0 and "privilege_separation = false" not in config_text:
            found = NETWORK_PROCESS.search(self.log)
            if found:
                self.pid = int(found.group(1))
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no network process:\n" + self.log)
            time.sleep(0.02)

    def _collect(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                # keep the head and the tail only: a thousand sessions log a lot
                if len(self._lines) < 200000:
                    self._lines.append(line)
            match = LISTENING.search(line)
            if match and self.port == 0:
                self.port = int(match.group(1))

    @property
    def log(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def redirected_sockets(self) -> dict[int, Path]:
        """Session id -> its pcsc-lite socket, for every redirection logged so far."""
        return {int(m.group(1)): Path(m.group(2)) for m in REDIRECTED.finditer(self.log)}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
