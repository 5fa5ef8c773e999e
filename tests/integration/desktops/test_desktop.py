"""Real desktop sessions through xfreerdp /smartcard /smartcard-logon.

Signed in, the client shows the account's desktop (an X server and a
terminal running as the account); keys typed into the client's window run
in that terminal with the redirected card; the session survives the
client's going and comes back with the card; logoff ends everything.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import CardFile, insert
from tests.integration.desktops.conftest import (
    DesktopServer,
    account,
    connect_both,
    processes_of,
    read_when_ready,
    seat,
    terminal_shown,
    type_text,
)

pytestmark = pytest.mark.integration


def test_the_signed_in_user_works_in_a_desktop_that_runs_as_them(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-ann")
    user = account("rdscard-dk-ann")
    with seat(server, pcscd, rsa_card.card()) as me:
        client = me.client
        [(session, display)] = server.started()
        assert terminal_shown(client), "the client shows the session's terminal\n" + (
            server.server.log[-4000:])
        out = Path(user.pw_dir) / "desktop-out"
        out.unlink(missing_ok=True)
        type_text(client, f"id -un > {out}; pkcs11-tool -L >> {out} 2>&1; echo done >> {out}\n")
        text = read_when_ready(out, needle="done", client=client)
        assert text.splitlines()[0] == user.pw_name
        assert "Virtual PCD" in text and "token label" in text, text
        names = {name for _pid, name in processes_of(user.pw_uid)}
        assert {"Xvfb", "xterm"} <= names, names
        assert [line for line in server.pam.lines() if line.startswith("open_session")] == [
            f"open_session {user.pw_name} {display}"]
        row = server.listing()[session]
        assert "active" in row and user.pw_name in row and "alice@example.test" in row, row
        assert display in row, row


def test_the_session_survives_disconnection_and_the_card_comes_back_with_it(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-dora")
    user = account("rdscard-dk-dora")
    with seat(server, pcscd, rsa_card.card()) as me:
        client = me.client
        out = Path(user.pw_dir) / "reconnect-out"
        out.unlink(missing_ok=True)
        [(session, _display)] = server.started()
        assert terminal_shown(client), server.server.log[-4000:]
        # Half a command line before the disconnect; its Return comes after.
        type_text(client, f"echo typed-before > {out}; pkcs11-tool -L >> {out} 2>&1")
        time.sleep(1)  # the keys reach the terminal before the client goes
        client.close()
        assert wait_for(lambda: "disconnected" in server.listing().get(session, ""), 20), (
            server.listing())
        terminals = [pid for pid, name in processes_of(user.pw_uid) if name == "xterm"]
        assert terminals, "the terminal lives on while the session is disconnected"

        client = me.reconnect()
        assert wait_for(lambda: "reconnected: connection from" in server.server.log, 60), (
            server.server.log[-6000:])
        assert terminal_shown(client), server.server.log[-4000:]
        type_text(client, "\n")
        text = read_when_ready(out, needle="token label", client=client)
        assert text.splitlines()[0] == "typed-before", text
        assert [pid for pid, name in processes_of(user.pw_uid) if name == "xterm"] == terminals
        assert len(server.started()) == 1, "the reconnect started no second desktop"
        row = server.listing()[session]
        assert "active" in row, row


def test_logoff_ends_every_process_closes_pam_and_removes_what_the_session_had(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-lou")
    user = account("rdscard-dk-lou")
    with seat(server, pcscd, rsa_card.card()) as me:
        client = me.client
        [(session, _display)] = server.started()
        assert terminal_shown(client), server.server.log[-4000:]
        # A program that leaves the terminal's process tree must end too.
        type_text(client, "setsid sleep 1000 &\n")
        assert wait_for(lambda: any(n == "sleep" for _p, n in processes_of(user.pw_uid)), 10)
        socket_dir = server.run_dir / f"session-{session}"
        assert socket_dir.is_dir()
        assert server.session("logoff", str(session)).stdout.strip() == (
            f"session {session} logged off")
        assert wait_for(lambda: not processes_of(user.pw_uid), 15), processes_of(user.pw_uid)
        assert [line.split()[0] for line in server.pam.lines()] == [
            "open_session", "close_session"], server.pam.lines()
        assert wait_for(lambda: not socket_dir.exists(), 10)
        assert wait_for(lambda: client.process.poll() is not None, 15)
        assert "ERRINFO_RPC_INITIATED_LOGOFF" in client.output(), client.output()
        assert session not in server.listing()
        assert re.search(rf"\[session {session}\] logged off: logged off by the administrator",
                         server.server.log)
        missing = server.session("logoff", "999", check=False)
        assert missing.returncode != 0 and "no session 999" in missing.stderr


def test_two_accounts_cannot_reach_each_others_display_or_card(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    rsa_card: CardFile, ecc_card: CardFile,
) -> None:
    server = desktop_servers(alice="rdscard-dk-amy", bob="rdscard-dk-ben")
    amy, ben = account("rdscard-dk-amy"), account("rdscard-dk-ben")
    cards = [insert(rsa_card.card(), pcscd, 0), insert(ecc_card.card(), pcscd, 1)]
    screen = VirtualScreen(2200, 832).start()
    clients: list[XFreeRdp] = []
    try:
        clients += connect_both(server, screen, pcscd)
        started = server.started(2)
        envs = {}
        for session, _display in started:
            reply = server.session("exec", str(session), "--", "env").stdout
            env = dict(line.split("=", 1) for line in reply.splitlines() if "=" in line)
            envs[env["USER"]] = env
        amy_env = envs[amy.pw_name]

        def as_ben(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["runuser", "-u", ben.pw_name, "--", "env", *(
                f"{k}={v}" for k, v in extra.items()), *argv],
                capture_output=True, text=True, timeout=30)

        # The owner reaches both; the other account neither.
        assert subprocess.run(["xdpyinfo", "-display", amy_env["DISPLAY"]], capture_output=True,
                              env={"XAUTHORITY": amy_env["XAUTHORITY"]}).returncode == 0
        assert as_ben("xdpyinfo", "-display", amy_env["DISPLAY"]).returncode != 0
        assert as_ben("cat", amy_env["XAUTHORITY"]).returncode != 0
        socket = amy_env["PCSCLITE_CSOCK_NAME"]
        refused = as_ben("opensc-tool", "-l", PCSCLITE_CSOCK_NAME=socket)
        assert "Virtual PCD" not in refused.stdout, refused.stdout
        assert as_ben("ls", str(Path(socket).parent)).returncode != 0
    finally:
        for client in clients:
            client.close()
        screen.close()
        for card in cards:
            card.remove()


def test_a_missing_session_command_is_a_clear_message(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-max",
                             extra='command = ["/nonexistent/session-command"]\n')
    with seat(server, pcscd, rsa_card.card()):
        assert wait_for(lambda: "the desktop could not start" in server.server.log, 60), (
            server.server.log[-4000:])
        assert "/nonexistent/session-command" in server.server.log
        assert not processes_of(account("rdscard-dk-max").pw_uid)


HOLDER_SCRIPT = """
import os, sys, time
from smartcard.scard import *
hresult, old = SCardEstablishContext(SCARD_SCOPE_USER)
hresult, readers = SCardListReaders(old, [])
print("before", hresult, readers, flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
hresult, readers = SCardListReaders(old, [])
print("old context", hex(hresult & 0xFFFFFFFF), flush=True)
hresult, new = SCardEstablishContext(SCARD_SCOPE_USER)
hresult, readers = SCardListReaders(new, [])
print("new context", hresult, readers, flush=True)
"""


def test_a_program_holding_a_context_gets_an_error_then_a_new_context_works(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-pia")
    user = account("rdscard-dk-pia")
    with seat(server, pcscd, rsa_card.card()) as me:
        client = me.client
        go = Path(user.pw_dir) / "holder-go"
        go.unlink(missing_ok=True)
        holder = None
        try:
            [(session, _display)] = server.started()
            assert terminal_shown(client)
            # Programs of the session are Debian's python3 with python3-pyscard (libpcsclite).
            holder = subprocess.Popen(
                [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
                 str(server.server.state_dir), "exec", str(session), "--", "/usr/bin/python3",
                 "-c", HOLDER_SCRIPT, str(go)], stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None
            first = holder.stdout.readline()
            assert first.startswith("before 0 ['Virtual PCD 00 00'"), first
            # This time the administrator disconnects the client.
            assert server.session("disconnect", str(session)).stdout.strip() == (
                f"session {session} disconnected")
            assert wait_for(lambda: client.process.poll() is not None, 15)
            assert "ERRINFO_RPC_INITIATED_DISCONNECT" in client.output(), client.output()
            client.close()
            assert wait_for(lambda: "disconnected" in server.listing().get(session, ""), 20)
            again = server.session("disconnect", str(session), check=False)
            assert again.returncode != 0 and "already disconnected" in again.stderr
            client = me.reconnect()
            assert wait_for(lambda: "reconnected: connection from" in server.server.log, 60), (
                server.server.log[-5000:] + client.output())
            redirected = rf"\[session {session}\] smart card redirected"
            assert wait_for(lambda: re.search(
                redirected, server.server.log.split("reconnecting to session")[-1]), 20)
            go.touch()
            out, _ = holder.communicate(timeout=30)
            # pcsc-lite's answer when its daemon went away: SCARD_E_NO_SERVICE.
            assert "old context 0x8010001d" in out, out
            assert "new context 0 ['Virtual PCD 00 00'" in out, out
        finally:
            if holder is not None and holder.poll() is None:
                holder.kill()


def test_the_clients_keyboard_layout_is_the_sessions(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-kai")
    user = account("rdscard-dk-kai")
    # The client says its keyboard is German (KLID 0x407) and sends scancodes: typed on
    # this test's US keymap, the keys of z and y make y and z in the session.
    home = Path(user.pw_dir)
    for name in ("yz", "zy"):
        (home / name).unlink(missing_ok=True)
    with seat(server, pcscd, rsa_card.card(), "/kbd:0x00000407") as me:
        [(session, _display)] = server.started()
        assert terminal_shown(me.client)
        query = server.session("exec", str(session), "--", "setxkbmap", "-query").stdout
        assert re.search(r"^layout:\s+de$", query, re.M), query
        type_text(me.client, "touch zy\n")
        read_when_ready(home / "yz", client=me.client)
        assert not (home / "zy").exists()
