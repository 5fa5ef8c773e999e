"""Finding and ending every process of one desktop session.

Two ways, picked at run time by :func:`choose_tracker`:

- :class:`CgroupTracker` - a cgroup v2 group ``rdscard/session-<id>`` under
  the first writable v2 hierarchy (``/sys/fs/cgroup/unified`` on hybrid
  hosts, ``/sys/fs/cgroup`` where it is the v2 root). Every child of the
  leader moves itself in before it drops privileges, and nothing the user
  runs can leave it (moving needs write access to the root-owned
  ``cgroup.procs``). Ending uses ``cgroup.kill`` where the kernel has it
  (5.14+), else a signal to each member.
- :class:`ScanTracker` - where no v2 hierarchy is writable: the leader is a
  child subreaper (orphans of the session are re-parented to it), so the
  session is every descendant of the leader, every member of the process
  groups and sessions it started, and every process of the account whose
  environment carries the session's ``RDSCARD_SESSION_TAG``.

Both only list and signal; reaping belongs to the leader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

TAG_VARIABLE = "RDSCARD_SESSION_TAG"
CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
CGROUP_PARENT = "rdscard"
MODE_VARIABLE = "RDSCARD_SESSION_TRACKING"

log = logging.getLogger(__name__)


class SessionTracker(Protocol):
    """Where a session's processes are and how to end them."""

    description: str

    def enter(self) -> None:
        """Called in each forked child (still root): join the session's group."""

    def add(self, pid: int) -> None:
        """The leader started ``pid`` (a process group and session leader of its own)."""

    def members(self) -> set[int]:
        """Live (not zombie) processes of the session."""

    def signal_all(self, signum: int) -> None:
        """Send ``signum`` to every member."""

    def close(self) -> None:
        """Forget the session (remove its cgroup); call once members() is empty."""


def _stat_fields(pid: int) -> tuple[str, int, int, int] | None:
    """State, parent pid, process group and session of ``pid`` from /proc, or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if len(fields) < 4:
        return None
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def has_tag(pid: int, tag: str) -> bool:
    """Does ``pid``'s environment hold ``RDSCARD_SESSION_TAG=tag``?"""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{TAG_VARIABLE}={tag}".encode() in environ.split(b"\0")


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


class CgroupTracker:
    """The session's processes are the members of one cgroup v2 group."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"cgroup {path}"
        self._kill_file = path / "cgroup.kill"

    def enter(self) -> None:
        """Move the calling process into the group."""
        (self.path / "cgroup.procs").write_text(f"{os.getpid()}\n")

    def add(self, pid: int) -> None:
        """Children join by themselves in :meth:`enter`."""

    def members(self) -> set[int]:
        """The group's live processes."""
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return set()
        return {pid for pid in map(int, text.split()) if _alive(pid)}

    def signal_all(self, signum: int) -> None:
        """``cgroup.kill`` for SIGKILL when the kernel has it, else one signal per member."""
        if signum == signal.SIGKILL and self._kill_file.exists():
            try:
                self._kill_file.write_text("1\n")
                return
            except OSError as exc:
                log.warning("cannot write %s (%s); killing each process instead",
                            self._kill_file, exc.strerror)
        for pid in self.members():
            _kill(pid, signum)

    def close(self) -> None:
        """Remove the group (it must be empty)."""
        for _ in range(20):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)  # the last exiting members are still being released
        log.warning("cannot remove %s: processes are still in it", self.path)


class ScanTracker:
    """The session's processes, found by scanning /proc (no usable cgroup v2)."""

    def __init__(self, uid: int, tag: str, leader: int | None = None) -> None:
        self.uid = uid
        self.tag = tag
        self.leader = os.getpid() if leader is None else leader
        self.started: set[int] = set()
        self.description = "process scan (descendants, process groups, environment tag)"

    def enter(self) -> None:
        """Nothing to join: children are found by ancestry, group and tag."""

    def add(self, pid: int) -> None:
        """Remember a process group and session the leader started."""
        self.started.add(pid)

    def members(self) -> set[int]:
        """Descendants of the leader, the started groups/sessions and tagged processes."""
        table: dict[int, tuple[str, int, int, int]] = {}
        for pid in _pids():
            fields = _stat_fields(pid)
            if fields is not None:
                table[pid] = fields
        found: set[int] = set()
        for pid, (state, _ppid, pgrp, sid) in table.items():
            if pid == self.leader or state in ("Z", "X"):
                continue
            if (pgrp in self.started or sid in self.started
                    or _descends(pid, self.leader, table)):
                found.add(pid)
                continue
            try:
                owner = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            if owner == self.uid and has_tag(pid, self.tag):
                found.add(pid)
        return found

    def signal_all(self, signum: int) -> None:
        """Signal every member found by a scan."""
        for pid in self.members():
            _kill(pid, signum)

    def close(self) -> None:
        """Nothing to remove."""


def _descends(pid: int, ancestor: int, table: dict[int, tuple[str, int, int, int]]) -> bool:
    seen = 0
    while pid in table and seen < 4096:
        parent = table[pid][1]
        if parent == ancestor:
            return True
        if parent <= 1:
            return False
        pid = parent
        seen += 1
    return False


def is_cgroup2_root(path: Path) -> bool:
    """Is ``path`` a mounted cgroup v2 hierarchy (v1 ones have no cgroup.controllers)?"""
    return (path / "cgroup.controllers").is_file() and (path / "cgroup.procs").is_file()


def choose_tracker(session_id: int, uid: int, tag: str, *,
                   roots: Iterable[Path] = CGROUP_ROOTS,
                   unique: Callable[[], str] = lambda: str(os.getpid()),
                   mode: str | None = None) -> SessionTracker:
    """A cgroup v2 group for the session where one can be made, else the /proc scan.

    The group is ``<root>/rdscard/session-<id>``; when that name is taken
    (another server's session with the same id) ``session-<id>.<unique>``.
    ``mode`` (default: the ``RDSCARD_SESSION_TRACKING`` environment variable)
    is ``auto``, or ``scan`` to skip cgroups.
    """
    mode = mode if mode is not None else os.environ.get(MODE_VARIABLE, "auto")
    if mode not in ("auto", "scan"):
        log.warning("%s=%s is neither auto nor scan: using auto", MODE_VARIABLE, mode)
    if mode == "scan":
        return ScanTracker(uid, tag)
    for root in roots:
        if not is_cgroup2_root(root):
            continue
        parent = root / CGROUP_PARENT
        try:
            parent.mkdir(exist_ok=True)
            path = parent / f"session-{session_id}"
            try:
                path.mkdir()
            except FileExistsError:
                path = parent / f"session-{session_id}.{unique()}"
                path.mkdir()
        except OSError as exc:
            log.debug("cgroup v2 at %s not usable: %s", root, exc)
            continue
        if not (path / "cgroup.procs").exists():
            # A plain directory where cgroupfs was expected: not usable.
            with contextlib.suppress(OSError):
                path.rmdir()
            continue
        return CgroupTracker(path)
    return ScanTracker(uid, tag)


def end_all(tracker: SessionTracker, *, grace: float = 2.0,
            reap: Callable[[], object] = lambda: None, kill_wait: float = 5.0) -> set[int]:
    """SIGTERM every member, wait up to ``grace``, SIGKILL the rest; the survivors.

    ``reap`` is called while waiting so the leader can collect its children.
    """
    members = tracker.members()
    if members:
        tracker.signal_all(signal.SIGTERM)
        # Stopped processes act on SIGTERM only once continued.
        tracker.signal_all(signal.SIGCONT)
    deadline = time.monotonic() + grace
    while members and time.monotonic() < deadline:
        time.sleep(0.02)
        reap()
        members = tracker.members()
    if members:
        log.info("%d process(es) still running %.1f s after SIGTERM: killing them",
                 len(members), grace)
    deadline = time.monotonic() + kill_wait
    while members and time.monotonic() < deadline:
        tracker.signal_all(signal.SIGKILL)
        time.sleep(0.05)
        reap()
        members = tracker.members()
    return members
