"""Faults around desktops: each is a clear message, and no other session is touched."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from rdscard.screen import layout
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for
from tests.integration.card.conftest import CardFile, insert
from tests.integration.desktops.conftest import (
    DesktopServer,
    account,
    connect_both,
    processes_of,
    seat,
    terminal_shown,
)

pytestmark = pytest.mark.integration


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_dead_session_leader_ends_its_session_only(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    rsa_card: CardFile, ecc_card: CardFile,
) -> None:
    server = desktop_servers(alice="rdscard-dk-vic", bob="rdscard-dk-wes")
    vic, wes = account("rdscard-dk-vic"), account("rdscard-dk-wes")
    cards = [insert(rsa_card.card(), pcscd, 0), insert(ecc_card.card(), pcscd, 1)]
    screen = VirtualScreen(2200, 832).start()
    clients: list[XFreeRdp] = []
    try:
        clients += connect_both(server, screen, pcscd)
        server.started(2)
        assert wait_for(lambda: len(server.server.wait_for_log("first desktop picture sent",
                                                                2, 1)) == 2, 20)
        x_server = next(pid for pid, name in processes_of(vic.pw_uid) if name == "Xvfb")
        leader = parent_of(x_server)
        assert "rdscard.session.leader" in Path(f"/proc/{leader}/cmdline").read_text()
        os.kill(leader, signal.SIGKILL)
        assert wait_for(lambda: clients[0].process.poll() is not None, 20), (
            "the client of the broken session is told it ended")
        assert wait_for(lambda: not processes_of(vic.pw_uid), 20), processes_of(vic.pw_uid)
        assert "the session leader" in server.server.log
        # The other account's session goes on.
        assert clients[1].process.poll() is None
        assert {"Xvfb", "xterm"} <= {n for _p, n in processes_of(wes.pw_uid)}
        rows = [row for row in server.listing().values() if wes.pw_name in row]
        assert len(rows) == 1 and "active" in rows[0]
    finally:
        for client in clients:
            client.close()
        screen.close()
        for card in cards:
            card.remove()


def test_an_account_without_a_home_is_told_on_the_screen(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    name = "rdscard-dk-nohome"
    server = desktop_servers(alice=name)
    home = Path(account(name).pw_dir)
    shutil.rmtree(home)
    with seat(server, pcscd, rsa_card.card()) as me:
        client, screen = me.client, me.screen
        assert wait_for(lambda: "the desktop could not start" in server.server.log, 60), (
            server.server.log[-3000:])
        assert str(home) in server.server.log.split("the desktop could not start")[1][:400]
        origin = client.window_origin()
        status = layout.status_box(1024, 768)
        assert wait_for(lambda: layout.near(
            screen.screenshot().getpixel((origin[0] + status.left + 3, origin[1] + status.top + 3)),
            layout.ERROR_FILL), timeout=10), "the error is on the client's screen"
        assert not processes_of(account(name).pw_uid)


def test_an_idle_session_is_logged_off_and_the_client_told_why(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-ida", extra="idle_limit = 3\n")
    user = account("rdscard-dk-ida")
    with seat(server, pcscd, rsa_card.card()) as me:
        client = me.client
        server.started()
        assert terminal_shown(client)
        assert wait_for(lambda: client.process.poll() is not None, 20)
        assert "ERRINFO_IDLE_TIMEOUT" in client.output(), client.output()
        assert "logging off: idle for 3 s (sessions.idle_limit)" in server.server.log
        assert wait_for(lambda: not processes_of(user.pw_uid), 15)
