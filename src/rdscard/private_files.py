"""Private directories and files: what holds trust or audit data is the server's alone.

The state directory (``[server] state_dir``) and what is made inside it
(the NTAuth store, the TLS key, the audit log) are created 0700 (files
0600) by whichever command makes them first: ``rdscard ntauth add`` before
the first ``rdscard serve`` must not leave a world-readable directory
behind. Directories that already exist are left as they are; only
:func:`tighten` changes one.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600

log = logging.getLogger("rdscard.private_files")


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents, each made here with mode 0700 (umask aside)."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs to set
        os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def open_private_file(path: Path, flags: int) -> int:
    """``os.open`` creating ``path`` with mode 0600 (and fixing a looser existing one)."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def tighten(path: Path) -> None:
    """Make an existing directory of ours 0700 when others may read it (logged)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        os.chmod(path, DIR_MODE)
        log.warning("state directory %s was mode %o: made it %o", path, mode, DIR_MODE)


__all__ = ["DIR_MODE", "FILE_MODE", "make_private_dir", "open_private_file", "tighten"]
