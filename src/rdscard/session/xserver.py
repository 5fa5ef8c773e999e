"""The session's X server: display numbers, the Xauthority file, the command line.

A display number is free when nothing holds it: no ``/tmp/.X<N>-lock``, no
socket ``/tmp/.X11-unix/X<N>`` (path or abstract), and no other session
leader holding its lock under ``/run/rdscard/displays`` (the leader keeps
that lock for the session's life, so two leaders never pick the same
number between probing and the X server binding it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

X11_UNIX = Path("/tmp/.X11-unix")
DISPLAY_LOCKS = Path("/run/rdscard/displays")
COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"
FAMILY_WILD = 0xFFFF


def lock_file(display: int) -> Path:
    """The X server's own lock file for ``display``."""
    return Path(f"/tmp/.X{display}-lock")


def socket_path(display: int) -> Path:
    """The X server's UNIX socket for ``display``."""
    return X11_UNIX / f"X{display}"


def display_in_use(display: int) -> bool:
    """Does anything (a lock file, a socket, an abstract socket) hold ``display``?"""
    if lock_file(display).exists() or os.path.lexists(socket_path(display)):
        return True
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.bind(f"\0{socket_path(display)}")
    except OSError:
        return True
    finally:
        probe.close()
    return False


@dataclass
class DisplayReservation:
    """A display number held for one session (its lock is released by :meth:`release`)."""

    number: int
    _fd: int

    @property
    def name(self) -> str:
        """``:N``."""
        return f":{self.number}"

    def release(self) -> None:
        """Let other sessions use the number again."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def reserve_display(first: int, last: int,
                    lock_dir: Path = DISPLAY_LOCKS) -> DisplayReservation | None:
    """The lowest free display number in ``first..last``, locked; None when all are taken."""
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    for number in range(first, last + 1):
        if display_in_use(number):
            continue
        fd = os.open(lock_dir / f"{number}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if display_in_use(number):  # taken between the probe and the lock
            os.close(fd)
            continue
        return DisplayReservation(number, fd)
    return None


def remove_leftovers(display: int, uid: int) -> None:
    """Remove the lock file and socket a killed X server of ``uid`` left behind."""
    for path in (lock_file(display), socket_path(display)):
        with contextlib.suppress(OSError):
            if os.lstat(path).st_uid == uid:
                path.unlink()


def ensure_x11_unix(path: Path = X11_UNIX) -> str | None:
    """Make the X socket directory root-owned with mode 1777; a warning text if it is not."""
    try:
        path.mkdir(mode=0o755)
        os.chmod(path, 0o1777)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory: remove it so X servers can make their sockets"
    if info.st_uid != 0:
        return f"{path} is owned by uid {info.st_uid}, not root: chown root {path}"
    if stat.S_IMODE(info.st_mode) != 0o1777:
        os.chmod(path, 0o1777)
    return None


def xauth_entry(display: int, cookie: bytes) -> bytes:
    """One Xauthority record: MIT-MAGIC-COOKIE-1 for display ``display`` on any address.

    The format is libXau's: family (2 bytes, big endian), then address,
    display number, auth name and auth data, each a 2-byte length and bytes.
    """
    def counted(data: bytes) -> bytes:
        return struct.pack(">H", len(data)) + data

    return (struct.pack(">H", FAMILY_WILD) + counted(b"") + counted(str(display).encode())
            + counted(COOKIE_NAME) + counted(cookie))


def write_xauthority(path: Path, display: int, cookie: bytes, uid: int, gid: int) -> None:
    """Create ``path`` (mode 0600, owned by ``uid``) with the display's cookie."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.write(fd, xauth_entry(display, cookie))
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def x_server_argv(prefix: Sequence[str], display: int, width: int, height: int,
                  xauthority: str, displayfd: int) -> list[str]:
    """The X server's command line: ``prefix`` plus display, size, no TCP, auth, displayfd.

    The server writes its display number on ``displayfd`` when it accepts
    connections (and again after each reset): keep the pipe open and drained.
    """
    name = os.path.basename(prefix[0])
    argv = [*prefix, f":{display}"]
    if name in ("Xvnc", "Xtigervnc"):
        argv += ["-geometry", f"{width}x{height}", "-depth", "24"]
    else:
        argv += ["-screen", "0", f"{width}x{height}x24"]
    # -noreset: without it the server resets when its last client leaves
    # (setxkbmap, before the desktop connects), forgetting the keyboard layout.
    return [*argv, "-nolisten", "tcp", "-noreset", "-auth", xauthority,
            "-displayfd", str(displayfd)]
