"""Peers for the session leader tests: local accounts with homes, a PAM service
that records each session's open and close, and a /proc view of what an
account runs.

The tests run as root (as on the CI machine): the leader opens PAM sessions
and starts programs as the accounts.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rdscard.session.pamd import shipped_service_file

ALICE = "rdscard-sl-a"
BOB = "rdscard-sl-b"
CAROL = "rdscard-sl-c"
NO_HOME = "rdscard-sl-nohome"
RUNTIME_BASE = Path("/run/rdscard-test-session")
T = TypeVar("T")


def ensure_account(name: str, *, home: bool = True) -> pwd.struct_passwd:
    """The local account ``name``, created once (safe when test workers race)."""
    args = (["--create-home"] if home
            else ["--no-create-home", "--home-dir", f"/nonexistent/{name}"])
    for _ in range(50):
        try:
            account = pwd.getpwnam(name)
            break
        except KeyError:
            created = subprocess.run(["useradd", *args, "--shell", "/bin/sh", name],
                                     capture_output=True, text=True)
            if created.returncode not in (0, 9):  # 9: another worker was first
                time.sleep(0.1)  # /etc/passwd is locked by a concurrent useradd
    else:
        raise RuntimeError(f"cannot create the local account {name}")
    if home and not Path(account.pw_dir).is_dir():
        Path(account.pw_dir).mkdir(mode=0o750, parents=True, exist_ok=True)
        os.chown(account.pw_dir, account.pw_uid, account.pw_gid)
    return account


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to its end in a fresh event loop."""
    return asyncio.run(coroutine)


@dataclass
class PamRecorder:
    """A PAM service: the shipped stack plus pam_exec lines writing open/close USER."""

    service: str
    record: Path

    def lines(self) -> list[str]:
        """What pam_exec recorded so far."""
        return self.record.read_text().split("\n")[:-1] if self.record.exists() else []


@pytest.fixture
def pam_service(tmp_path: Path) -> Iterator[PamRecorder]:
    """A PAM service of its own for one test, removed afterwards."""
    name = f"rdscard-test-{uuid.uuid4().hex[:12]}"
    record = tmp_path / "pam-record"
    script = tmp_path / "pam-record.sh"
    script.write_text(
        "#!/bin/sh\n"
        'case "$PAM_TYPE" in\n'
        f'  open_session) echo "open $PAM_USER" >> {record} ;;\n'
        f'  close_session) echo "close $PAM_USER" >> {record} ;;\n'
        "esac\n"
        "exit 0\n")
    script.chmod(0o755)
    service = Path("/etc/pam.d") / name
    service.write_text(shipped_service_file().read_text()
                       + f"session optional pam_exec.so {script}\n")
    try:
        yield PamRecorder(name, record)
    finally:
        service.unlink(missing_ok=True)


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A runtime directory path (not created) every account can reach."""
    RUNTIME_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
    RUNTIME_BASE.chmod(0o755)
    path = RUNTIME_BASE / uuid.uuid4().hex[:12]
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def uid_of(pid: int) -> int:
    """The real uid of ``pid`` (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def alive(pid: int) -> bool:
    """Is ``pid`` a live (not zombie) process?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def session_processes(uid: int, display: str, pids: set[int] = frozenset()) -> set[int]:
    """Live processes of ``uid`` that belong to the session on ``display``.

    A process belongs when its environment has that DISPLAY, its command line
    names the display (the X server), or it is one of ``pids``.
    """
    found = {pid for pid in pids if alive(pid)}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"DISPLAY={display}".encode() in environ or display.encode() in cmdline:
            found.add(int(entry))
    return found


def xdpyinfo(display: str, xauthority: str, *, user: str | None = None) -> int:
    """xdpyinfo's exit status for ``display`` with ``xauthority`` (as ``user`` if given)."""
    argv = ["xdpyinfo", "-display", display]
    if user is not None:
        argv = ["runuser", "-u", user, "--", "env", f"XAUTHORITY={xauthority}", *argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XAUTHORITY": xauthority}
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode
