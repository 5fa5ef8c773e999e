"""The session leader against real PAM, Xvfb, D-Bus and local accounts."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from rdscard.session import cleanup
from rdscard.session.leader_client import LeaderError, LeaderHandle, LeaderSpec, start_leader
from tests.integration.session.conftest import (
    ALICE,
    BOB,
    CAROL,
    NO_HOME,
    PamRecorder,
    alive,
    ensure_account,
    run,
    session_processes,
    uid_of,
    xdpyinfo,
)

pytestmark = pytest.mark.integration

SOCKET = "/run/rdscard/session-3/pcscd.comm"
WHO_COMMAND = ("/bin/sh", "-c",
               'cd "$HOME"; { id -un; echo "$PCSCLITE_CSOCK_NAME"; } > "who.$SESSION_MARK.new" '
               '&& mv "who.$SESSION_MARK.new" "who.$SESSION_MARK"; setsid sleep 1000 & '
               'echo $! > "grandchild.$SESSION_MARK.new" '
               '&& mv "grandchild.$SESSION_MARK.new" "grandchild.$SESSION_MARK"; exec sleep 1000')


def spec_for(account: str, pam: PamRecorder, runtime: Path, command: tuple[str, ...],
             **changes: object) -> LeaderSpec:
    fields: dict[str, object] = {
        "session_id": 3, "account": account, "pam_service": pam.service,
        "client_address": "192.0.2.7", "width": 800, "height": 600, "command": command,
        "env": {"PCSCLITE_CSOCK_NAME": SOCKET, "SESSION_MARK": runtime.name},
        "runtime_dir": str(runtime),
    }
    fields.update(changes)
    return LeaderSpec(**fields)  # type: ignore[arg-type]


def wait_for_file(path: Path, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


@pytest.mark.parametrize("tracking", ["auto", "scan"])
def test_a_session_runs_as_the_account_and_logoff_ends_it(
        pam_service: PamRecorder, runtime_dir: Path, tracking: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(cleanup.MODE_VARIABLE, tracking)
    caplog.set_level(logging.INFO, logger="rdscard.session")
    account = ensure_account(ALICE)
    home = Path(account.pw_dir)
    spec = spec_for(ALICE, pam_service, runtime_dir, WHO_COMMAND)

    async def scenario() -> tuple[LeaderHandle, int, set[int], str]:
        started = time.monotonic()
        handle = await start_leader(spec)
        command_pid = await handle.started
        print(f"display after {handle.display!r}; started after "
              f"{time.monotonic() - started:.3f} s")
        # The X server: the account's, no TCP, a cookie only the account can read.
        assert uid_of(handle.x_pid) == account.pw_uid
        x_args = Path(f"/proc/{handle.x_pid}/cmdline").read_bytes().split(b"\0")
        assert x_args[x_args.index(b"-nolisten"):][:2] == [b"-nolisten", b"tcp"]
        info = os.stat(handle.xauthority)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert (info.st_uid, info.st_gid) == (account.pw_uid, account.pw_gid)
        assert len(handle.cookie) == 16
        assert xdpyinfo(handle.display, "/dev/null") != 0
        assert xdpyinfo(handle.display, handle.xauthority) == 0
        # The command: the account, the spec's environment, a detached grandchild.
        assert uid_of(command_pid) == account.pw_uid
        who = wait_for_file(home / f"who.{runtime_dir.name}")
        assert who == f"{ALICE}\n{SOCKET}\n"
        grandchild = int(wait_for_file(home / f"grandchild.{runtime_dir.name}"))
        assert alive(grandchild) and uid_of(grandchild) == account.pw_uid
        before = session_processes(account.pw_uid, handle.display)
        assert {handle.x_pid, command_pid, grandchild} <= before
        assert pam_service.lines() == [f"open {ALICE}"]
        reason = await handle.logoff()
        return handle, grandchild, before, reason

    handle, grandchild, before, reason = run(scenario())
    assert reason == "logoff requested"
    assert not session_processes(account.pw_uid, handle.display, before | {grandchild})
    assert pam_service.lines() == [f"open {ALICE}", f"close {ALICE}"]
    assert not runtime_dir.exists()
    assert not Path(f"/tmp/.X{handle.display[1:]}-lock").exists()
    assert handle.process.returncode == 0
    tracked = [r.getMessage() for r in caplog.records if "tracked by" in r.getMessage()]
    assert len(tracked) == 1
    if tracking == "scan":
        assert "process scan" in tracked[0]
    elif "tracked by cgroup " in tracked[0]:
        group = Path(tracked[0].split("tracked by cgroup ")[1])
        assert group.name.startswith("session-3") and not group.exists()


def test_a_command_that_exits_ends_the_session(pam_service: PamRecorder,
                                               runtime_dir: Path) -> None:
    ensure_account(ALICE)

    async def scenario() -> tuple[LeaderHandle, str]:
        handle = await start_leader(spec_for(ALICE, pam_service, runtime_dir,
                                             ("/bin/sh", "-c", "sleep 0.3; exit 3")))
        return handle, await handle.ended

    handle, reason = run(scenario())
    assert reason == "the session command exited with status 3"
    assert handle.exit_status == 3
    assert pam_service.lines() == [f"open {ALICE}", f"close {ALICE}"]
    assert not runtime_dir.exists()
    assert not alive(handle.x_pid)


def test_the_server_going_away_logs_the_session_off(pam_service: PamRecorder,
                                                    runtime_dir: Path) -> None:
    account = ensure_account(ALICE)

    async def scenario() -> tuple[LeaderHandle, str, int]:
        handle = await start_leader(spec_for(ALICE, pam_service, runtime_dir,
                                             ("sleep", "1000")))
        pid = await handle.started
        assert handle.process.stdin is not None
        handle.process.stdin.close()
        return handle, await handle.ended, pid

    handle, reason, pid = run(scenario())
    assert reason == "the server closed the leader's input"
    assert not session_processes(account.pw_uid, handle.display, {pid, handle.x_pid})
    assert pam_service.lines() == [f"open {ALICE}", f"close {ALICE}"]


def start_error(spec: LeaderSpec) -> str:
    async def scenario() -> str:
        with pytest.raises(LeaderError) as caught:
            await start_leader(spec)
        return str(caught.value)

    return run(scenario())


def test_an_unknown_account_is_refused(pam_service: PamRecorder, runtime_dir: Path) -> None:
    message = start_error(spec_for("rdscard-sl-nobody", pam_service, runtime_dir, ("true",)))
    assert "the account rdscard-sl-nobody does not exist" in message
    assert "useradd" in message
    assert pam_service.lines() == []
    assert not runtime_dir.exists()


def test_an_account_without_a_home_is_refused(pam_service: PamRecorder,
                                              runtime_dir: Path) -> None:
    account = ensure_account(NO_HOME, home=False)
    message = start_error(spec_for(NO_HOME, pam_service, runtime_dir, ("true",)))
    assert f"the home directory {account.pw_dir} of {NO_HOME} does not exist" in message
    assert pam_service.lines() == []
    assert not runtime_dir.exists()
    assert not session_processes(account.pw_uid, ":", set())


def test_a_missing_command_is_named(pam_service: PamRecorder, runtime_dir: Path) -> None:
    account = ensure_account(ALICE)
    message = start_error(spec_for(ALICE, pam_service, runtime_dir,
                                   ("rdscard-no-such-desktop", "--now")))
    assert "the session command rdscard-no-such-desktop was not found" in message
    # PAM was opened (the lookup uses its PATH) and closed again.
    assert pam_service.lines() in ([], [f"open {ALICE}", f"close {ALICE}"])
    assert not runtime_dir.exists()
    before = subprocess.run(["pgrep", "-u", str(account.pw_uid), "-f", runtime_dir.name],
                            capture_output=True)
    assert before.returncode == 1


def test_a_full_display_range_is_reported(pam_service: PamRecorder, runtime_dir: Path) -> None:
    ensure_account(ALICE)
    number = 5000 + os.getpid() % 1000
    lock = Path(f"/tmp/.X{number}-lock")
    lock.write_text(f"{os.getpid():>10}\n")
    try:
        message = start_error(spec_for(ALICE, pam_service, runtime_dir, ("true",),
                                       display_range=(number, number)))
    finally:
        lock.unlink()
    assert f"no free X display number from {number} to {number}" in message
    assert pam_service.lines() == []
    assert not runtime_dir.exists()


def test_an_x_server_that_fails_is_reported(pam_service: PamRecorder,
                                            runtime_dir: Path) -> None:
    ensure_account(ALICE)
    message = start_error(spec_for(ALICE, pam_service, runtime_dir, ("true",),
                                   x_server=("Xvfb", "-no-such-option")))
    assert "the X server did not start" in message
    assert "no-such-option" in message  # its own complaint, from its stderr
    assert pam_service.lines() == [f"open {ALICE}", f"close {ALICE}"]
    assert not runtime_dir.exists()


def test_a_missing_pam_service_says_how_to_install_it(runtime_dir: Path) -> None:
    ensure_account(ALICE)
    spec = LeaderSpec(session_id=4, account=ALICE, pam_service="rdscard-test-absent",
                      command=("true",), runtime_dir=str(runtime_dir))
    message = start_error(spec)
    assert "the PAM service 'rdscard-test-absent' is not installed" in message
    assert "rdscard session install-pam" in message


def test_two_accounts_cannot_reach_each_others_display(pam_service: PamRecorder,
                                                       runtime_dir: Path) -> None:
    ensure_account(BOB)
    ensure_account(CAROL)
    second_dir = runtime_dir.with_name(runtime_dir.name + "-2")

    async def scenario() -> None:
        bob = await start_leader(spec_for(BOB, pam_service, runtime_dir, ("sleep", "1000")))
        carol = await start_leader(spec_for(CAROL, pam_service, second_dir,
                                            ("sleep", "1000"), session_id=4))
        try:
            assert bob.display != carol.display
            for me, other, name in ((bob, carol, BOB), (carol, bob, CAROL)):
                assert xdpyinfo(me.display, me.xauthority, user=name) == 0
                readable = subprocess.run(["runuser", "-u", name, "--", "cat",
                                           other.xauthority], capture_output=True)
                assert readable.returncode != 0
                assert xdpyinfo(other.display, other.xauthority, user=name) != 0
                assert xdpyinfo(other.display, me.xauthority, user=name) != 0
        finally:
            await bob.logoff()
            await carol.logoff()

    try:
        run(scenario())
    finally:
        shutil.rmtree(second_dir, ignore_errors=True)
    assert sorted(pam_service.lines()) == sorted(
        [f"open {BOB}", f"open {CAROL}", f"close {BOB}", f"close {CAROL}"])
