"""An isolated pcscd with the vpcd virtual reader driver, one per test.

pcscd 1.9.9 always listens on ``/run/pcscd/pcscd.comm`` and refuses to start
when another daemon owns it, so each instance runs in a private mount
namespace in which ``/run/pcscd`` is a bind mount of its own directory: the
socket then shows up outside as ``DIR/pcscd.comm`` and clients reach it with
``PCSCLITE_CSOCK_NAME``. A system pcscd, if any, is left alone. Needs root
(``unshare -m`` and ``mount``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from rdscard.errors import RdscardError

VPCD_DRIVER: Final = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
START_TIMEOUT: Final = 15.0


class PeerError(RdscardError):
    """A test peer could not be started; the message says why and what to install."""


def require_program(program: str, package: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        raise PeerError(f"{program} not found: install the Debian package {package}")
    return path


class IsolatedPcscd:
    """``pcscd -f`` in its own mount namespace, serving vpcd readers on ``vpcd_port``.

    The vpcd driver gives its reader line two readers, "Virtual PCD 00 00" on
    ``vpcd_port`` and "Virtual PCD 00 01" on ``vpcd_port + 1`` (pick both free
    with ``free_tcp_port(2)``); it listens on every interface, as the driver
    decides. Use as a context manager; :attr:`env` is what a client process
    needs in its environment.
    """

    slots: Final = 2

    def __init__(self, directory: Path, vpcd_port: int, *, debug: bool = False) -> None:
        self.directory = Path(directory)
        self.vpcd_port = vpcd_port
        self.debug = debug
        self.process: subprocess.Popen[bytes] | None = None
        self._log: object = None

    # -- paths and environment -------------------------------------------------
    @property
    def socket_path(self) -> Path:
        return self.directory / "pcscd.comm"

    @property
    def reader_conf(self) -> Path:
        return self.directory / "reader.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "pcscd.log"

    @property
    def env(self) -> dict[str, str]:
        """Environment entries that point libpcsclite at this daemon."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    def vpcd_ports(self) -> list[int]:
        """The TCP port of each vpcd reader, in reader order."""
        return [self.vpcd_port + i for i in range(self.slots)]

    def reader_names(self) -> list[str]:
        """The PC/SC names pcscd gives the vpcd readers (first reader line, slot n)."""
        return [f"Virtual PCD 00 {i:02X}" for i in range(self.slots)]

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle ----------------------------------------------------------------
    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # The port goes in both places: CHANNELID for the driver's lookup and the
        # DEVICENAME suffix, which is what this driver version parses.
        self.reader_conf.write_text(
            'FRIENDLYNAME "Virtual PCD"\n'
            f"DEVICENAME   /dev/null:{self.vpcd_port}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.vpcd_port:04X}\n"
        )

    def start(self) -> None:
        """Start the daemon and wait until its socket accepts connections."""
        if os.geteuid() != 0:
            raise PeerError("an isolated pcscd needs root (a private mount namespace)")
        pcscd = require_program("pcscd", "pcscd")
        unshare = require_program("unshare", "util-linux")
        if not VPCD_DRIVER.exists():
            raise PeerError(f"{VPCD_DRIVER} missing: install the Debian package vsmartcard-vpcd")
        self._write_config()
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = f"{shlex.quote(pcscd)} -f -c {shlex.quote(str(self.reader_conf))}"
        if self.debug:
            args += " -d"
        script = (
            "mkdir -p /run/pcscd && "
            f"mount --bind {shlex.quote(str(self.directory))} /run/pcscd && "
            f"exec {args}"
        )
        log = self.log_path.open("wb")
        self._log = log
        self.process = subprocess.Popen(
            [unshare, "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._accepts():
            if self.process.poll() is not None:
                raise PeerError(f"pcscd exited with status {self.process.returncode}:\n"
                                + self.log())
            if time.monotonic() > deadline:
                self.stop()
                raise PeerError("pcscd did not open its socket in time:\n" + self.log())
            time.sleep(0.02)

    def _accepts(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and remove its socket."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log = self._log
        self._log = None
        if log is not None:
            log.close()  # type: ignore[attr-defined]
        for name in ("pcscd.comm", "pcscd.pid"):
            (self.directory / name).unlink(missing_ok=True)

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
