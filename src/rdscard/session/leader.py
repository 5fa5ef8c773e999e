"""The privileged session leader: ``python -m rdscard.session.leader``.

Started as root by the server, one per desktop session, with pipes on its
standard input and output. Protocol: newline-delimited JSON.

- stdin, first line: the :class:`~rdscard.session.spec.LeaderSpec`.
- stdin, afterwards: ``{"command": "logoff"}``. End of input (the server
  went away) also logs the session off.
- stdout, events: ``{"event": "display", "display": ":12", "cookie": hex,
  "xauthority": path, "x_pid": n}`` once the X server accepts connections;
  ``{"event": "started", "pid": n}`` once the session command runs;
  ``{"event": "ended", "reason": text, "exit_status": n or null}`` at the
  end; ``{"event": "error", "message": text}`` when the session cannot
  start (the leader has undone everything and exits 1).
- stderr: the leader's log, in the server's format, each line prefixed
  ``[session N]``.

The leader reads nothing secret: the card, PIN and Kerberos work happened in
the server; the spec carries names and paths only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import pwd
import secrets
import selectors
import shutil
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

from rdscard.errors import RdscardError
from rdscard.session import cleanup, pamd, xserver
from rdscard.session.pam import PamError, PamSession
from rdscard.session.spawn import Account, SpawnError, find_program_as, spawn_as
from rdscard.session.spec import MAX_SPEC_BYTES, LeaderSpec, SpecError

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
SETXKBMAP_TIMEOUT = 5.0
PR_SET_CHILD_SUBREAPER = 36

log = logging.getLogger("rdscard.session.leader")


class StartError(RdscardError):
    """The session cannot start; the message is the cause and the fix."""


class LineReader:
    """Newline-delimited lines from a descriptor, without reading past what is needed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def fill(self) -> None:
        """One read (call when the descriptor is readable)."""
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
        self.buffer += chunk
        if len(self.buffer) > MAX_SPEC_BYTES and b"\n" not in self.buffer:
            raise SpecError(f"a line on the leader's input is longer than {MAX_SPEC_BYTES} bytes")

    def lines(self) -> list[bytes]:
        """Complete lines read so far."""
        *complete, self.buffer = self.buffer.split(b"\n")
        return [line for line in complete if line.strip()]


def emit(event: str, **fields: Any) -> None:
    """Write one event line on stdout; a server that went away is not an error."""
    line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
    with contextlib.suppress(OSError):
        os.write(1, line.encode())


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log.warning("cannot become a child subreaper: orphans of the session will be "
                        "found by their environment tag only")
    except (OSError, AttributeError):
        log.warning("no prctl: orphans of the session are found by their environment tag only")


class Leader:
    """One session from PAM open to PAM close."""

    def __init__(self, spec: LeaderSpec, stdin: LineReader) -> None:
        self.spec = spec
        self.stdin = stdin
        self.tag = secrets.token_hex(16)
        self.account: Account | None = None
        self.pam: PamSession | None = None
        self.reservation: xserver.DisplayReservation | None = None
        self.tracker: cleanup.SessionTracker | None = None
        self.runtime_dir: Path | None = None
        self.x_pid = 0
        self.command_pid = 0
        self.exited: dict[int, int] = {}
        self.stop_reason = ""
        self.x_output = bytearray()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.x_pipe = -1
        self.ready_pipe = -1
        self.ready_answer = b""
        self.env: dict[str, str] = {}

    # -- signals and children -------------------------------------------------

    def install_signals(self) -> None:
        """SIGTERM/SIGINT/SIGHUP log off; SIGCHLD only wakes the loop."""
        def stop(signum: int, _frame: object) -> None:
            if not self.stop_reason:
                self.stop_reason = f"the session leader got {signal.Signals(signum).name}"

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, stop)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        if not self.stdin.eof:
            self.selector.register(self.stdin.fd, selectors.EVENT_READ, "stdin")
        self.handle_commands()

    def reap(self) -> None:
        """Collect every child that exited (the session's orphans come here too)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = os.waitstatus_to_exitcode(status)

    def poll(self, timeout: float) -> set[str]:
        """Wait for input, a signal or the X server's output; handle what came.

        Returns the names of the descriptors that were ready.
        """
        ready: set[str] = set()
        for key, _ in self.selector.select(timeout):
            ready.add(key.data)
            if key.data == "wake":
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
            elif key.data == "x":
                self._read_x_output()
            elif key.data == "ready":
                self._read_ready()
            elif key.data == "stdin":
                self._read_commands()
        self.reap()
        return ready

    def _read_ready(self) -> None:
        try:
            chunk = os.read(self.ready_pipe, 64)
        except OSError:
            chunk = b""
        self.ready_answer = (self.ready_answer + chunk)[-64:]
        if not chunk:  # the X server closed it (exiting)
            self.selector.unregister(self.ready_pipe)
            os.close(self.ready_pipe)
            self.ready_pipe = -1

    def _read_x_output(self) -> None:
        try:
            chunk = os.read(self.x_pipe, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.selector.unregister(self.x_pipe)
            os.close(self.x_pipe)
            self.x_pipe = -1
            return
        self.x_output += chunk
        del self.x_output[:-4000]

    def _read_commands(self) -> None:
        try:
            self.stdin.fill()
        except (OSError, SpecError) as exc:
            log.warning("cannot read the server's commands: %s", exc)
            self.stdin.eof = True
        self.handle_commands()

    def handle_commands(self) -> None:
        """Act on the complete command lines read so far."""
        for line in self.stdin.lines():
            try:
                command = json.loads(line).get("command")
            except (ValueError, AttributeError):
                command = None
            if command == "logoff":
                self.stop_reason = self.stop_reason or "logoff requested"
            else:
                log.warning("unknown command from the server ignored: %r", line[:200])
        if self.stdin.eof:
            with contextlib.suppress(KeyError):
                self.selector.unregister(self.stdin.fd)
            self.stop_reason = self.stop_reason or "the server closed the leader's input"

    def check_stop(self, doing: str) -> None:
        """Give up starting when asked to stop meanwhile."""
        if self.stop_reason:
            raise StartError(f"{doing} was interrupted: {self.stop_reason}")

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        """Everything up to the running session command; raises StartError."""
        spec = self.spec
        self.account = account = self._account()
        pamd.check_service(spec.pam_service)
        reservation = xserver.reserve_display(*spec.display_range)
        if reservation is None:
            first, last = spec.display_range
            raise StartError(
                f"no free X display number from {first} to {last}: every one is in use "
                f"(widen display_range or end stale X servers and their /tmp/.X<N>-lock files)")
        self.reservation = reservation
        log.info("opening the PAM session (service %s) for %s on %s", spec.pam_service,
                 account.name, reservation.name)
        self.pam = PamSession(spec.pam_service, account.name, tty=reservation.name,
                              rhost=spec.client_address, xdisplay=reservation.name)
        self.pam.open()
        env = self._session_env(self.pam.getenv())
        if find_program_as(account, spec.command[0], env["PATH"]) is None:
            raise StartError(
                f"the session command {spec.command[0]} was not found (PATH {env['PATH']}, "
                f"as {account.name}): install it or fix the session command")
        self.check_stop("starting the session")
        self.tracker = cleanup.choose_tracker(spec.session_id, account.uid, self.tag)
        log.info("session processes tracked by %s", self.tracker.description)
        cookie = self._runtime_dir(account, reservation.number)
        self._start_x(account, reservation.number)
        cgroup = self.tracker.path if isinstance(self.tracker, cleanup.CgroupTracker) else None
        emit("display", display=reservation.name, cookie=cookie.hex(),
             xauthority=env["XAUTHORITY"], x_pid=self.x_pid,
             cgroup=None if cgroup is None else str(cgroup))
        self._setxkbmap(account, env)
        self._start_command(account, env)
        emit("started", pid=self.command_pid)

    def _account(self) -> Account:
        name = self.spec.account
        try:
            account = Account.from_pwd(pwd.getpwnam(name))
        except KeyError:
            raise StartError(
                f"the account {name} does not exist on this host: create it "
                f"(useradd --create-home {name}) or fix the card's account mapping") from None
        if account.uid == 0:
            raise StartError("desktop sessions as root are refused: map the card to a user")
        if not os.path.isdir(account.home):
            raise StartError(
                f"the home directory {account.home} of {name} does not exist or is not a "
                f"directory: create it (mkhomedir_helper {name}) or fix the account")
        return account

    def _session_env(self, pam_env: dict[str, str]) -> dict[str, str]:
        assert self.account is not None and self.reservation is not None
        account = self.account
        env = {"PATH": DEFAULT_PATH, "LANG": os.environ.get("LANG", "C.UTF-8")}
        env.update(pam_env)
        ignored = sorted(set(self.spec.env) & {"HOME", "USER", "LOGNAME", "DISPLAY",
                                                "XAUTHORITY", cleanup.TAG_VARIABLE})
        if ignored:
            log.warning("spec env variables ignored (set by the leader): %s", ", ".join(ignored))
        env.update(self.spec.env)
        runtime = self.spec.runtime_path
        env.update({
            "HOME": account.home, "USER": account.name, "LOGNAME": account.name,
            "SHELL": account.shell, "DISPLAY": self.reservation.name,
            "XAUTHORITY": f"{runtime}/Xauthority", cleanup.TAG_VARIABLE: self.tag,
        })
        log.info("session environment: %s", " ".join(sorted(env)))
        self.env = env
        return env

    def _runtime_dir(self, account: Account, display: int) -> bytes:
        path = Path(self.spec.runtime_path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        for parent in path.parents:
            info = os.stat(parent)
            if not (info.st_mode & stat.S_IXOTH or (info.st_uid == account.uid
                                                    and info.st_mode & stat.S_IXUSR)):
                raise StartError(
                    f"{account.name} cannot reach the runtime directory {path}: {parent} is "
                    f"not searchable by others (chmod o+x {parent}, or choose a runtime_dir "
                    f"elsewhere)")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, account.uid):
                raise StartError(
                    f"the runtime directory {path} exists and is not this session's: "
                    f"remove it or name another runtime_dir") from None
            log.info("removing the stale runtime directory %s", path)
            shutil.rmtree(path)
            os.mkdir(path, 0o700)
        self.runtime_dir = path
        cookie = secrets.token_bytes(16)
        xserver.write_xauthority(path / "Xauthority", display, cookie, account.uid, account.gid)
        os.chown(path, account.uid, account.gid)
        warning = xserver.ensure_x11_unix()
        if warning:
            log.warning("%s", warning)
        return cookie

    def _child_env(self, *names: str) -> dict[str, str]:
        return {name: self.env[name] for name in names if name in self.env}

    def _start_x(self, account: Account, display: int) -> None:
        assert self.tracker is not None
        ready_r, ready_w = os.pipe()
        out_r, out_w = os.pipe()
        argv = xserver.x_server_argv(self.spec.x_server, display, self.spec.width,
                                     self.spec.height, self.env["XAUTHORITY"], ready_w)
        log.info("starting the X server: %s", " ".join(argv))
        env = self._child_env("PATH", "HOME", "USER", "LOGNAME", "LANG",
                              cleanup.TAG_VARIABLE)
        try:
            self.x_pid = spawn_as(account, argv, env, enter=self.tracker.enter, output=out_w,
                                  keep=[ready_w])
        except SpawnError as exc:
            raise StartError(f"the X server did not start: {exc} (install it or fix "
                             f"x_server)") from None
        finally:
            os.close(ready_w)
            os.close(out_w)
        self.tracker.add(self.x_pid)
        os.set_blocking(out_r, False)
        self.x_pipe = out_r
        self.selector.register(out_r, selectors.EVENT_READ, "x")
        self.selector.register(ready_r, selectors.EVENT_READ, "ready")
        self.ready_pipe = ready_r
        self._wait_x()

    def _wait_x(self) -> None:
        deadline = time.monotonic() + self.spec.x_timeout
        started = time.monotonic()
        while True:
            self.check_stop("starting the X server")
            if self.x_pid in self.exited:
                raise StartError(
                    f"the X server did not start: it exited with status "
                    f"{self.exited[self.x_pid]}: {self._x_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StartError(
                    f"the X server did not start within {self.spec.x_timeout:.0f} s: "
                    f"{self._x_tail()}")
            self.poll(min(remaining, 0.5))
            if b"\n" in self.ready_answer:
                answer = self.ready_answer.decode(errors="replace").split()[0]
                if answer:
                    log.info("X server %d accepts connections on :%s after %.2f s",
                             self.x_pid, answer, time.monotonic() - started)
                    return

    def _x_tail(self) -> str:
        while self.x_pipe >= 0:
            before = len(self.x_output)
            self._read_x_output()
            if len(self.x_output) == before:
                break
        lines = [line.strip() for line in self.x_output.decode(errors="replace").splitlines()]
        text = " | ".join(line for line in lines if line and line != "(EE)")
        return text[-1500:] if text else "(it wrote nothing)"

    def _setxkbmap(self, account: Account, env: dict[str, str]) -> None:
        assert self.tracker is not None and self.reservation is not None
        layout = self.spec.keyboard_layout
        if not layout:
            return
        argv = ["setxkbmap", "-display", self.reservation.name, layout]
        if self.spec.keyboard_variant:
            argv += ["-variant", self.spec.keyboard_variant]
        child_env = self._child_env("PATH", "HOME", "USER", "LOGNAME", "LANG", "DISPLAY",
                                    "XAUTHORITY", cleanup.TAG_VARIABLE)
        try:
            pid = spawn_as(account, argv, child_env, enter=self.tracker.enter)
        except SpawnError as exc:
            log.warning("keyboard layout %s not set: %s", layout, exc)
            return
        deadline = time.monotonic() + SETXKBMAP_TIMEOUT
        while pid not in self.exited and time.monotonic() < deadline:
            self.poll(0.02)
        status = self.exited.get(pid)
        if status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            log.warning("keyboard layout %s not set: setxkbmap took over %.0f s", layout,
                        SETXKBMAP_TIMEOUT)
        elif status != 0:
            log.warning("keyboard layout %s not set: setxkbmap exited with status %d",
                        layout, status)

    def _start_command(self, account: Account, env: dict[str, str]) -> None:
        assert self.tracker is not None
        command = list(self.spec.command)
        dbus = shutil.which("dbus-run-session", path=env["PATH"])
        argv = [dbus, "--", *command] if dbus else command
        try:
            self.command_pid = spawn_as(
                account, argv, env, enter=self.tracker.enter, resolve=not dbus,
                output_file=os.path.join(account.home, ".xsession-errors"))
        except SpawnError as exc:
            raise StartError(f"the session command {command[0]} could not start: {exc}") from None
        self.tracker.add(self.command_pid)
        log.info("session command started as %s (pid %d)%s", account.name, self.command_pid,
                 " under dbus-run-session" if dbus else "")

    # -- running and ending ---------------------------------------------------

    def run_session(self) -> tuple[str, int | None]:
        """Wait until the session ends; its reason and the command's exit status."""
        while True:
            if self.command_pid in self.exited:
                status = self.exited[self.command_pid]
                return f"the session command exited with status {status}", status
            if self.x_pid in self.exited:
                return (f"the X server exited with status {self.exited[self.x_pid]}: "
                        f"{self._x_tail()}", None)
            if self.stop_reason:
                return self.stop_reason, self.exited.get(self.command_pid)
            self.poll(1.0)

    def teardown(self) -> None:
        """End the session's processes, close PAM, remove the runtime directory."""
        if self.tracker is not None:
            survivors = cleanup.end_all(self.tracker, grace=2.0, reap=self.reap)
            if survivors:
                log.error("processes %s of the session survived SIGKILL",
                          sorted(survivors))
            else:
                self.tracker.close()
        self.reap()
        if self.reservation is not None and self.account is not None:
            xserver.remove_leftovers(self.reservation.number, self.account.uid)
        if self.pam is not None:
            log.info("closing the PAM session")
            self.pam.close()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if self.reservation is not None:
            self.reservation.release()


def _configure_logging(session_id: int | None) -> None:
    prefix = f"[session {session_id}] " if session_id is not None else ""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT.replace("%(message)s",
                                                              prefix + "%(message)s")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _read_spec(reader: LineReader) -> LeaderSpec:
    while True:
        lines = reader.lines()
        if lines:
            reader.buffer = b"\n".join(lines[1:]) + (b"\n" if lines[1:] else b"") \
                + reader.buffer
            return LeaderSpec.from_json(lines[0])
        if reader.eof:
            raise SpecError("no session spec: the leader's input ended before its first line")
        reader.fill()


def main() -> int:
    """Run one session; the exit status is 0 after a session, 1 if it could not start."""
    os.umask(0o022)
    _configure_logging(None)
    reader = LineReader(0)
    try:
        spec = _read_spec(reader)
    except SpecError as exc:
        log.error("%s", exc)
        emit("error", message=f"bad session spec: {exc}")
        return 1
    _configure_logging(spec.session_id)
    if os.geteuid() != 0:
        emit("error", message="the session leader must run as root (it opens PAM sessions "
                              "and starts programs as the session's account)")
        return 1
    _become_subreaper()
    leader = Leader(spec, reader)
    leader.install_signals()
    try:
        try:
            leader.start()
        except (RdscardError, OSError) as exc:
            message = str(exc) if not isinstance(exc, PamError) else (
                f"{exc}: the account {spec.account} may not log in now (check "
                f"/etc/pam.d/{spec.pam_service} and the system log)")
            log.error("the session could not start: %s", message)
            leader.teardown()
            emit("error", message=message)
            return 1
        reason, status = leader.run_session()
        log.info("logging off: %s", reason)
        leader.teardown()
        log.info("session ended")
        emit("ended", reason=reason, exit_status=status)
        return 0
    except BaseException:
        log.exception("the session leader failed; cleaning up")
        leader.teardown()
        emit("ended", reason="the session leader failed (see the server's log)",
             exit_status=None)
        return 1


if __name__ == "__main__":
    sys.exit(main())
