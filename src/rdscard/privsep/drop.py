"""Giving up root for good: the network process's last privileged step.

After :func:`drop_privileges` the process runs as the unprivileged system
account with no supplementary groups, no capabilities (a set-user-ID change
away from 0 clears them all) and ``PR_SET_NO_NEW_PRIVS``, so no set-user-ID
program it might be made to run gives them back; it is not dumpable, so
other processes of that account cannot attach to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
from typing import Final

from rdscard.errors import ConfigError, RdscardError

PR_SET_DUMPABLE: Final = 4
PR_SET_NO_NEW_PRIVS: Final = 38


def system_account(name: str) -> pwd.struct_passwd:
    """The unprivileged account the network process runs as; ConfigError naming the fix."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(
            f"the account {name!r} for the network process does not exist: create it with "
            f"'useradd --system --no-create-home --shell /usr/sbin/nologin {name}' "
            "(scripts/install.sh does), set [server] user, or set "
            "[server] privilege_separation = false") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise ConfigError(f"the account {name!r} is privileged (uid or gid 0): "
                          "[server] user must be an unprivileged system account")
    return entry


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise RdscardError(f"prctl({option}) failed: {os.strerror(errno)}")


def drop_privileges(name: str) -> None:
    """Become ``name`` for good (uid, gid, no groups, no new privileges)."""
    entry = system_account(name)
    os.setgroups([])
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    os.chdir("/")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise RdscardError("privileges could not be dropped: setuid(0) still works")
