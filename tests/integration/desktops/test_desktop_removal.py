"""The card removal policy acts on real desktops: lock covers it, logoff ends it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rdscard.screen import layout
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import wait_for
from tests.integration.card.conftest import PIN, CardFile
from tests.integration.desktops.conftest import (
    DesktopServer,
    account,
    processes_of,
    seat,
    terminal_shown,
)

pytestmark = pytest.mark.integration


def test_removal_locks_the_desktop_and_only_the_card_and_pin_bring_it_back(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-lena", logon='card_removal = "lock"\n')
    user = account("rdscard-dk-lena")
    with seat(server, pcscd, rsa_card.card()) as me:
        client, card, screen = me.client, me.card, me.screen
        [(session, _display)] = server.started()
        assert terminal_shown(client)
        terminals = [pid for pid, name in processes_of(user.pw_uid) if name == "xterm"]
        card.remove()
        assert wait_for(lambda: "card removal policy lock" in server.server.log, 20)
        origin = client.window_origin()
        pin = layout.pin_box(1024, 768)
        assert wait_for(lambda: layout.near(
            screen.screenshot().getpixel((origin[0] + pin.right - 8, origin[1] + pin.top + 8)),
            layout.PIN_BOX_FILL), timeout=10), "the lock screen covers the desktop"
        assert not terminal_shown(client, timeout=1)
        card.insert()
        client.type_keys(*PIN, "Return")
        assert wait_for(lambda: "unlocked: the desktop is shown again" in server.server.log, 40), (
            server.server.log[-4000:])
        assert terminal_shown(client), "the desktop is back after the unlock"
        assert [pid for pid, name in processes_of(user.pw_uid) if name == "xterm"] == terminals
        assert len(server.started()) == 1
        assert "active" in server.listing()[session]


def test_removal_with_the_logoff_policy_ends_the_desktop(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-otto", logon='card_removal = "logoff"\n')
    user = account("rdscard-dk-otto")
    with seat(server, pcscd, rsa_card.card()) as me:
        client, card = me.client, me.card
        [(session, _display)] = server.started()
        assert terminal_shown(client)
        card.remove()
        assert wait_for(lambda: not processes_of(user.pw_uid), 20), processes_of(user.pw_uid)
        assert wait_for(lambda: client.process.poll() is not None, 15)
        assert "ERRINFO_RPC_INITIATED_LOGOFF" in client.output()
        assert session not in server.listing()
        assert [line.split()[0] for line in server.pam.lines()] == [
            "open_session", "close_session"]


def test_a_disconnected_session_past_its_limit_is_logged_off(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd, rsa_card: CardFile
) -> None:
    server = desktop_servers(alice="rdscard-dk-tim", extra="disconnected_limit = 2\n")
    user = account("rdscard-dk-tim")
    with seat(server, pcscd, rsa_card.card()) as me:
        client = me.client
        [(session, _display)] = server.started()
        assert terminal_shown(client)
        client.close()
        assert wait_for(lambda: "disconnected for 2 s (sessions.disconnected_limit)"
                        in server.server.log, 20), server.server.log[-3000:]
        assert wait_for(lambda: not processes_of(user.pw_uid), 15)
        assert session not in server.listing()
