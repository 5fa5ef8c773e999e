"""The server's side of a session leader, against fake leaders (no root, no X)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rdscard.session.leader_client import LeaderError, LeaderSpec, start_leader

SPEC = LeaderSpec(session_id=8, account="alice", command=("xterm",))
DISPLAY = 'emit({"event": "display", "display": ":12", "cookie": "00ff" * 8, ' \
          '"xauthority": "/run/x/Xauthority", "x_pid": 41})'


def fake_leader(tmp_path: Path, body: str) -> str:
    """An executable standing in for ``python -m rdscard.session.leader``."""
    script = tmp_path / "leader.py"
    script.write_text(textwrap.dedent("""\
        import json, sys
        spec = json.loads(sys.stdin.readline())
        def emit(event):
            print(json.dumps(event), flush=True)
        def log(level, text):
            print(f"2026-01-02 03:04:05,678 {level:<7} rdscard.session.leader: "
                  f"[session {spec['session_id']}] {text}", file=sys.stderr, flush=True)
        """) + textwrap.dedent(body))
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def test_events_logoff_and_forwarded_log(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    python = fake_leader(tmp_path, f"""
        {DISPLAY}
        emit({{"event": "started", "pid": 42}})
        log("WARNING", "keyboard layout us not set")
        print("a line not in the log format", file=sys.stderr, flush=True)
        for line in sys.stdin:
            if json.loads(line)["command"] == "logoff":
                emit({{"event": "ended", "reason": "logoff requested", "exit_status": None}})
                break
        """)

    async def scenario() -> None:
        handle = await start_leader(SPEC, python=python)
        assert (handle.display, handle.cookie, handle.xauthority, handle.x_pid) == (
            ":12", bytes.fromhex("00ff" * 8), "/run/x/Xauthority", 41)
        assert await handle.started == 42 and handle.command_pid == 42
        assert await handle.logoff(timeout=5) == "logoff requested"
        assert handle.exit_status is None
        assert await handle.logoff(timeout=5) == "logoff requested"  # twice is harmless

    with caplog.at_level(logging.INFO, logger="rdscard.session.leader"):
        asyncio.run(scenario())
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("rdscard.session.leader", logging.WARNING,
            "[session 8] keyboard layout us not set") in records
    assert ("rdscard.session.leader", logging.WARNING,
            "[session 8] a line not in the log format") in records


def test_an_error_event_is_the_start_error(tmp_path: Path) -> None:
    python = fake_leader(tmp_path, """
        emit({"event": "error", "message": "the account alice does not exist on this host"})
        sys.exit(1)
        """)

    async def scenario() -> None:
        with pytest.raises(LeaderError, match="the account alice does not exist"):
            await start_leader(SPEC, python=python)

    asyncio.run(scenario())


def test_a_leader_that_dies_resolves_ended_with_a_reason(tmp_path: Path) -> None:
    python = fake_leader(tmp_path, f"""
        {DISPLAY}
        log("ERROR", "something broke")
        sys.exit(3)
        """)

    async def scenario() -> str:
        handle = await start_leader(SPEC, python=python)
        with pytest.raises(LeaderError):
            await handle.started
        return await asyncio.wait_for(handle.ended, 5)

    reason = asyncio.run(scenario())
    assert "the session leader exited with status 3 without ending the session" in reason
    assert "something broke" in reason


def test_a_leader_that_never_shows_a_display_times_out(tmp_path: Path) -> None:
    python = fake_leader(tmp_path, """
        for line in sys.stdin:
            if json.loads(line)["command"] == "logoff":
                emit({"event": "error", "message": "starting was interrupted"})
                sys.exit(1)
        """)

    async def scenario() -> None:
        with pytest.raises(LeaderError, match="did not start within 1 s"):
            await start_leader(SPEC, python=python, timeout=1)

    asyncio.run(scenario())


# The loop closes while the leader still runs: asyncio's transport complains when collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_server_that_stops_following_closes_the_leaders_input(tmp_path: Path) -> None:
    """An exception in the server's task must not wait for the leader: its input ends."""
    marker = tmp_path / "eof"
    python = fake_leader(tmp_path, f"""
        {DISPLAY}
        for line in sys.stdin:
            pass
        open({str(marker)!r}, "w").write("input ended")
        """)

    async def scenario() -> None:
        await start_leader(SPEC, python=python)
        raise RuntimeError("the server failed")

    failed = ""
    try:
        asyncio.run(asyncio.wait_for(scenario(), 10))
    except RuntimeError as exc:  # not pytest.raises: its traceback would keep the transport
        failed = str(exc)
    assert failed == "the server failed"
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "input ended"
    # asyncio's child watcher holds the abandoned transport until the leader
    # exits; its complaint when collected belongs to this test, not a later one.
    for thread in threading.enumerate():
        if thread.name.startswith("asyncio-waitpid"):
            thread.join(10)
    gc.collect()
