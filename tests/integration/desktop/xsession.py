"""A session-like X server for the desktop tests: Xvfb run as a local account.

As the session start will do it: Xvfb runs as the (non-root) account with
``-nolisten tcp`` and an Xauthority file holding one MIT-MAGIC-COOKIE-1
cookie, on the display number it picks itself (``-displayfd``); the test
process (root) connects as the server would, with the cookie bytes. Programs
of the session (xterm, xev) run as the account too.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ACCOUNT = "rdscard-xtest"


def ensure_account(name: str = ACCOUNT) -> pwd.struct_passwd:
    """The local account ``name``, created once; safe when test workers race to create it."""
    for _ in range(50):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            created = subprocess.run(
                ["useradd", "--no-create-home", "--shell", "/bin/sh", name],
                capture_output=True, text=True,
            )
            if created.returncode not in (0, 9):  # 9: another worker was first
                time.sleep(0.1)  # /etc/passwd is locked by a concurrent useradd
    raise RuntimeError(f"cannot create the local account {name}")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms until it holds; AssertionError naming ``what`` if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class UserXServer:
    """Xvfb as ``account`` with a fresh cookie; programs of the session as the account too."""

    def __init__(
        self, account: pwd.struct_passwd, width: int = 1280, height: int = 800
    ) -> None:
        self.account = account
        self.width = width
        self.height = height
        self.cookie = secrets.token_bytes(16)
        self.home = Path(tempfile.mkdtemp(prefix="rdscard-xtest-"))
        os.chown(self.home, account.pw_uid, account.pw_gid)
        self.home.chmod(0o700)
        self.authfile = self.home / "Xauthority"
        self.display = ""
        self._xvfb: subprocess.Popen[bytes] | None = None
        self._programs: list[subprocess.Popen[bytes]] = []

    def _as_user(self) -> dict[str, object]:
        return {
            "user": self.account.pw_uid,
            "group": self.account.pw_gid,
            "extra_groups": [],
            "cwd": self.home,
        }

    def start(self) -> UserXServer:
        """Start Xvfb; returns once it accepts clients."""
        Path("/tmp/.X11-unix").mkdir(mode=0o1777, exist_ok=True)
        # Xvfb loads every cookie of its -auth file at start, whatever display
        # the entry names; the display number is not known yet, so the first
        # entry names :0 and the clients' entry is added once Xvfb has chosen.
        xauth_input = f"add :0 MIT-MAGIC-COOKIE-1 {self.cookie.hex()}\n"
        subprocess.run(
            ["xauth", "-q", "-f", str(self.authfile)], input=xauth_input.encode(), check=True
        )
        os.chown(self.authfile, self.account.pw_uid, self.account.pw_gid)
        read_fd, write_fd = os.pipe()
        self._xvfb = subprocess.Popen(  # type: ignore[call-overload]
            [
                "Xvfb", "-displayfd", str(write_fd), "-auth", str(self.authfile),
                "-nolisten", "tcp", "-screen", "0", f"{self.width}x{self.height}x24",
            ],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._as_user(),
        )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as reader:
            number = reader.readline().strip()
        if not number:
            self.close()
            raise RuntimeError("Xvfb did not start (no display number reported)")
        self.display = f":{int(number)}"
        # Now the real display number is known: the session's programs use it.
        subprocess.run(
            ["xauth", "-q", "-f", str(self.authfile), "add", self.display,
             "MIT-MAGIC-COOKIE-1", self.cookie.hex()],
            check=True,
        )
        os.chown(self.authfile, self.account.pw_uid, self.account.pw_gid)
        return self

    @property
    def pid(self) -> int:
        """Xvfb's process id."""
        assert self._xvfb is not None
        return self._xvfb.pid

    def env(self) -> dict[str, str]:
        """The environment of a program in the session."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "USER": self.account.pw_name,
            "DISPLAY": self.display,
            "XAUTHORITY": str(self.authfile),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "SHELL": "/bin/sh",
        }

    def run_program(
        self, argv: Sequence[str], *, stdout: int | None = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        """Start a program of the session as the account; stopped by close()."""
        program = subprocess.Popen(  # type: ignore[call-overload]
            list(argv), env=self.env(), stdout=stdout, stderr=subprocess.DEVNULL,
            **self._as_user(),
        )
        self._programs.append(program)
        return program  # type: ignore[no-any-return]

    def user_file(self, name: str) -> Path:
        """A path in the account's (0700) directory."""
        return self.home / name

    def kill_server(self) -> None:
        """Kill Xvfb abruptly (a crashed X server)."""
        if self._xvfb is not None:
            self._xvfb.kill()
            self._xvfb.wait()

    def close(self) -> None:
        """Stop the programs and Xvfb, remove the directory."""
        for program in self._programs:
            program.terminate()
        for program in self._programs:
            try:
                program.wait(5)
            except subprocess.TimeoutExpired:
                program.kill()
                program.wait()
        self._programs.clear()
        if self._xvfb is not None:
            self._xvfb.terminate()
            try:
                self._xvfb.wait(5)
            except subprocess.TimeoutExpired:
                self._xvfb.kill()
                self._xvfb.wait()
            self._xvfb = None
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> UserXServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
