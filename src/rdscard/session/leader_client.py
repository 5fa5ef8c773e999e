"""The server's side of a session leader: start it, follow its events, log off.

::

    handle = await start_leader(LeaderSpec(session_id=3, account="alice",
                                           command=("xterm",)))
    handle.display, handle.cookie, handle.xauthority, handle.x_pid
    await handle.started          # the session command's pid
    reason = await handle.logoff()

The leader's log lines (stderr, in the server's format) are re-logged here
under their own logger names and levels, so they read as the server's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any

from rdscard.errors import RdscardError
from rdscard.session.spec import LeaderSpec

__all__ = ["LeaderError", "LeaderHandle", "LeaderSpec", "start_leader"]

log = logging.getLogger("rdscard.session.leader")
_LOG_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([A-Z]+)\s+([\w.]+): (.*)")
_STREAM_LIMIT = 1 << 20


class LeaderError(RdscardError):
    """The session could not start; the message is the leader's cause and fix."""


class LeaderHandle:
    """A running session leader.

    ``display`` (``":12"``), ``cookie`` (the MIT-MAGIC-COOKIE-1 bytes),
    ``xauthority`` (its file, readable by the account only) and ``x_pid``
    are known once :func:`start_leader` returns. ``started`` resolves to the
    session command's pid (``command_pid`` then set); ``ended`` resolves to
    the reason the session ended, ``exit_status`` then holds the command's
    exit status when it had one.
    """

    def __init__(self, spec: LeaderSpec, process: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        self.spec = spec
        self.process = process
        self.pid = process.pid
        self.display = ""
        self.cookie = b""
        self.xauthority = ""
        self.x_pid = 0
        #: The session's cgroup, where the leader tracks its processes in one.
        self.cgroup: Path | None = None
        self.command_pid: int | None = None
        self.exit_status: int | None = None
        self.error: str | None = None
        self.started: asyncio.Future[int] = loop.create_future()
        self.ended: asyncio.Future[str] = loop.create_future()
        self._display_ready: asyncio.Future[None] = loop.create_future()
        self._stderr_tail: list[str] = []
        self._tasks = [
            loop.create_task(self._read_events(), name=f"leader-{spec.session_id}-events"),
            loop.create_task(self._read_log(), name=f"leader-{spec.session_id}-log"),
        ]

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "display":
            self.display = str(event["display"])
            self.cookie = bytes.fromhex(str(event["cookie"]))
            self.xauthority = str(event["xauthority"])
            self.x_pid = int(event["x_pid"])
            cgroup = event.get("cgroup")
            self.cgroup = Path(cgroup) if isinstance(cgroup, str) else None
            _resolve(self._display_ready, None)
        elif kind == "started":
            self.command_pid = int(event["pid"])
            _resolve(self.started, self.command_pid)
        elif kind == "ended":
            status = event.get("exit_status")
            self.exit_status = status if isinstance(status, int) else None
            _resolve(self.ended, str(event.get("reason", "the session ended")))
        elif kind == "error":
            self.error = str(event.get("message", "the session could not start"))
        else:
            log.warning("[session %s] unknown event from the session leader: %r",
                        self.spec.session_id, event)

    async def _read_events(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                try:
                    event = json.loads(line)
                    if not isinstance(event, dict):
                        raise ValueError("not an object")
                    self._on_event(event)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("[session %s] bad line from the session leader (%s): %r",
                                self.spec.session_id, exc, line[:200])
        except asyncio.CancelledError:
            # The server is going away without a logoff: the end of the
            # leader's input logs the session off; nobody waits for it here.
            if self.process.stdin is not None:
                self.process.stdin.close()
            self._finish("the server stopped following the session leader")
            raise
        status = await self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._tasks[1]), 2.0)
        self._finish(self.error or (
            f"the session leader exited with status {status} without ending the session"
            f"{self._tail_text()}"))

    def _finish(self, reason: str) -> None:
        for future in (self._display_ready, self.started):
            if not future.done():
                future.set_exception(LeaderError(reason))
                future.exception()  # retrieved: nobody may be waiting
        _resolve(self.ended, reason)

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        while raw := await self.process.stderr.readline():
            text = raw.decode(errors="replace").rstrip()
            if not text:
                continue
            self._stderr_tail = [*self._stderr_tail[-9:], text]
            match = _LOG_LINE.fullmatch(text)
            if match:
                level = logging.getLevelName(match.group(1))
                logging.getLogger(match.group(2)).log(
                    level if isinstance(level, int) else logging.WARNING, "%s", match.group(3))
            else:
                log.warning("[session %s] %s", self.spec.session_id, text)

    def _tail_text(self) -> str:
        return (": " + " | ".join(self._stderr_tail[-3:])) if self._stderr_tail else ""

    async def logoff(self, timeout: float = 10.0) -> str:
        """Ask the leader to log the session off; the reason the session ended.

        A leader that does not finish within ``timeout`` seconds gets SIGTERM,
        and SIGKILL after as long again (its session may then be left behind:
        that is logged).
        """
        if not self.ended.done():
            stdin = self.process.stdin
            if stdin is not None and not stdin.is_closing():
                with contextlib.suppress(ConnectionError, RuntimeError):
                    stdin.write(b'{"command":"logoff"}\n')
                    await stdin.drain()
                    stdin.close()
            try:
                await asyncio.wait_for(asyncio.shield(self.ended), timeout)
            except TimeoutError:
                log.warning("[session %s] the session leader did not log off within %.0f s: "
                            "sending SIGTERM", self.spec.session_id, timeout)
                self._signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.shield(self.ended), timeout)
                except TimeoutError:
                    log.error("[session %s] the session leader is stuck: killing it; the "
                              "session's processes may be left behind",
                              self.spec.session_id)
                    self._signal(signal.SIGKILL)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(self.ended), timeout)
                    self._finish("the session leader was killed while logging off")
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks), timeout)
        return self.ended.result()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


async def start_leader(spec: LeaderSpec, *, python: str = sys.executable,
                       timeout: float = 15.0) -> LeaderHandle:
    """Start a session leader for ``spec`` and wait until its X server accepts connections.

    Raises :class:`LeaderError` with the leader's message when the session
    cannot start, or when it takes longer than ``timeout`` seconds (the
    leader is then told to stop and cleans up).
    """
    process = await asyncio.create_subprocess_exec(
        python, "-m", "rdscard.session.leader",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=_STREAM_LIMIT)
    handle = LeaderHandle(spec, process)
    assert process.stdin is not None
    with contextlib.suppress(ConnectionError):
        process.stdin.write(spec.to_json().encode() + b"\n")
        await process.stdin.drain()
    try:
        await asyncio.wait_for(asyncio.shield(handle._display_ready), timeout)
    except TimeoutError:
        await handle.logoff(timeout=5.0)
        raise LeaderError(
            f"the session did not start within {timeout:.0f} s "
            f"(the X server or PAM is slow or stuck; see the log above)") from None
    except LeaderError:
        await handle.logoff(timeout=5.0)
        raise
    except asyncio.CancelledError:
        await handle.logoff(timeout=5.0)
        raise
    return handle
