"""Starting a program as the session's account, from the root session leader.

Each child: resets the signals Python changed, becomes a session and process
group leader (``setsid``), joins the session's cgroup while still root, gets
the account's groups (``initgroups``), gid and uid, moves to the home
directory and execs. A failure before ``exec`` (a program that does not
exist, a home directory it cannot enter) comes back to the leader through a
close-on-exec pipe, so the caller gets a :class:`SpawnError` instead of a
child that exits 127.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rdscard.errors import RdscardError

_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT,
                  signal.SIGHUP, signal.SIGCHLD)


class SpawnError(RdscardError):
    """A program could not be started as the account; ``errno`` says why."""

    def __init__(self, program: str, code: int, reason: str) -> None:
        self.program = program
        self.errno = code
        super().__init__(f"cannot run {program}: {reason}")


@dataclass(frozen=True)
class Account:
    """The local account a session runs as."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str

    @classmethod
    def from_pwd(cls, entry: pwd.struct_passwd) -> Account:
        """From a password database entry (an empty shell means /bin/sh)."""
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir,
                   entry.pw_shell or "/bin/sh")


def _close_other_fds(keep: Sequence[int]) -> None:
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)


def _become(account: Account) -> None:
    os.initgroups(account.name, account.gid)
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)


def _child(account: Account, argv: list[str], env: Mapping[str, str], report: int,
           enter: Callable[[], None], output: int | None, output_file: str | None,
           keep: Sequence[int], resolve: bool) -> None:
    for signum in _RESET_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.setsid()
    enter()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(output if output is not None else null, 1)
    os.dup2(output if output is not None else null, 2)
    _become(account)
    if output_file is not None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        try:
            log_fd = os.open(output_file, flags, 0o600)
        except OSError:
            log_fd = null
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    os.chdir(account.home)
    os.umask(0o022)
    _close_other_fds([report, *keep])
    for fd in keep:
        os.set_inheritable(fd, True)
    if resolve:
        found = shutil.which(argv[0], path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "not found in PATH " + env.get("PATH", ""))
        argv = [found, *argv[1:]]
    os.execvpe(argv[0], argv, dict(env))


def spawn_as(account: Account, argv: Sequence[str], env: Mapping[str, str], *,
             enter: Callable[[], None] = lambda: None, output: int | None = None,
             output_file: str | None = None, keep: Sequence[int] = (),
             resolve: bool = False) -> int:
    """Fork and exec ``argv`` as ``account``; the child's pid.

    ``enter`` runs in the child while it is still root (joining a cgroup).
    Standard output and error go to ``output`` (a descriptor), or to
    ``output_file`` opened as the account, else to /dev/null. ``keep`` lists
    descriptors the program inherits. With ``resolve``, ``argv[0]`` is looked
    up in ``env``'s PATH as the account, so a missing program is a
    :class:`SpawnError` with ``errno.ENOENT``.
    """
    argv = list(argv)
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            _child(account, argv, env, report_w, enter, output, output_file, keep, resolve)
        except BaseException as exc:
            code = getattr(exc, "errno", None) or 0
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            try:
                os.write(report_w, f"{code}\0{reason}".encode(errors="replace")[:4000])
            finally:
                os._exit(127)
        os._exit(127)
    os.close(report_w)
    chunks = []
    while chunk := os.read(report_r, 4096):
        chunks.append(chunk)
    os.close(report_r)
    if not chunks:
        return pid
    os.waitpid(pid, 0)
    code_text, _, reason = b"".join(chunks).decode(errors="replace").partition("\0")
    raise SpawnError(argv[0], int(code_text or 0), reason)


def find_program_as(account: Account, program: str, path: str) -> str | None:
    """Where ``program`` is found in ``path`` for ``account`` (None: nowhere).

    Runs the lookup in a child with the account's identity, so that
    permissions are the account's, not root's.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child exits
        status = 1
        try:
            os.close(read_end)
            _become(account)
            found = shutil.which(program, path=path)
            if found is not None:
                os.write(write_end, found.encode())
                status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not chunks:
        return None
    return b"".join(chunks).decode(errors="replace")
