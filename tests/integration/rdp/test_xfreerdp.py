"""The stock client (xfreerdp 2.11.7 under Xvfb) against a real ``rdscard serve``."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from rdscard.screen.layout import count_pin_bullets
from rdscard.xclient import VirtualScreen, XFreeRdp, logon_screen_visible, wait_for
from tests.integration.rdp.conftest import ServerProcess

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 1024, 768
ACTIVE = r"\[session (\d+)\] session active after"


def active_sessions(server: ServerProcess) -> set[int]:
    """Ids of the sessions that reached the active state, from the server's log."""
    return {int(m.group(1)) for m in re.finditer(ACTIVE, server.log)}


def wait_active(server: ServerProcess, before: set[int], client: XFreeRdp) -> int:
    """Wait for one new active session; returns its id."""
    assert wait_for(lambda: active_sessions(server) - before, timeout=25), (
        f"no session became active\nserver:\n{server.log}\nclient:\n{client.output()}"
    )
    return min(active_sessions(server) - before)


def wait_logon_screen(screen: VirtualScreen, client: XFreeRdp) -> tuple[int, int]:
    """Wait until the screenshot shows the logon screen; returns the desktop origin."""
    origin = client.window_origin()
    shown = wait_for(
        lambda: logon_screen_visible(screen.screenshot(), origin, WIDTH, HEIGHT), timeout=15
    )
    assert shown, "the client's window does not show the logon screen"
    return origin


class Client(XFreeRdp):
    """An xfreerdp client that remembers which sessions were active before it started."""

    sessions_before: set[int]


@pytest.fixture
def client(screen: VirtualScreen, rdp_server: ServerProcess) -> Iterator[Client]:
    before = active_sessions(rdp_server)
    rdp = Client(screen, "127.0.0.1", rdp_server.port, size=(WIDTH, HEIGHT))
    rdp.sessions_before = before
    yield rdp
    rdp.close()


def test_tls_client_sees_logon_screen_and_masked_pin(
    screen: VirtualScreen, client: Client, rdp_server: ServerProcess
) -> None:
    session = wait_active(rdp_server, client.sessions_before, client)
    origin = wait_logon_screen(screen, client)

    client.type_keys("1", "2", "3")
    assert wait_for(
        lambda: count_pin_bullets(screen.screenshot(), WIDTH, HEIGHT, origin) == 3, timeout=10
    ), "three typed digits should show three masked characters"
    client.type_keys("BackSpace")
    assert wait_for(
        lambda: count_pin_bullets(screen.screenshot(), WIDTH, HEIGHT, origin) == 2, timeout=10
    )
    client.type_keys("Escape")
    assert wait_for(
        lambda: count_pin_bullets(screen.screenshot(), WIDTH, HEIGHT, origin) == 0, timeout=10
    )
    log = rdp_server.log
    assert f"[session {session}] client offers TLS" in log
    assert f"[session {session}] TLS established (TLSv1." in log
    assert re.search(rf"\[session {session}\] client '.*' build \d+, desktop 1024x768x32", log)


def test_default_negotiation_ends_in_tls(
    screen: VirtualScreen, rdp_server: ServerProcess
) -> None:
    before = active_sessions(rdp_server)
    rdp = XFreeRdp(screen, "127.0.0.1", rdp_server.port, size=(WIDTH, HEIGHT), security=None)
    try:
        session = wait_active(rdp_server, before, rdp)
        wait_logon_screen(screen, rdp)
    finally:
        rdp.close()
    log = rdp_server.log
    assert re.search(rf"\[session {session}\] client offers TLS\+CredSSP.*; selected TLS", log)
    assert f"[session {session}] TLS established" in log


def test_three_clients_at_once_get_their_own_sessions(rdp_server: ServerProcess) -> None:
    before = active_sessions(rdp_server)
    screens = [VirtualScreen(WIDTH + 64, HEIGHT + 64).start() for _ in range(3)]
    clients = [
        XFreeRdp(s, "127.0.0.1", rdp_server.port, size=(WIDTH, HEIGHT)) for s in screens
    ]
    try:
        assert wait_for(lambda: len(active_sessions(rdp_server) - before) >= 3, timeout=40), (
            rdp_server.log
        )
        for index, (virtual, rdp) in enumerate(zip(screens, clients, strict=True)):
            origin = wait_logon_screen(virtual, rdp)
            typed = index + 1
            rdp.type_keys(*["1"] * typed)
            assert wait_for(
                lambda v=virtual, o=origin, n=typed: count_pin_bullets(
                    v.screenshot(), WIDTH, HEIGHT, o
                )
                == n,
                timeout=10,
            ), f"client {index} should show {typed} masked characters"
        # each session kept its own PIN field: typing into one never reached another
        for index, (virtual, rdp) in enumerate(zip(screens, clients, strict=True)):
            origin = rdp.window_origin()
            assert count_pin_bullets(virtual.screenshot(), WIDTH, HEIGHT, origin) == index + 1
    finally:
        for rdp in clients:
            rdp.close()
        for virtual in screens:
            virtual.close()


def test_standard_rdp_security_is_refused_with_a_reason(
    screen: VirtualScreen, rdp_server: ServerProcess
) -> None:
    rdp = XFreeRdp(screen, "127.0.0.1", rdp_server.port, security="rdp")
    try:
        assert wait_for(lambda: rdp.process.poll() is not None, timeout=20), (
            "xfreerdp should give up when the server requires TLS"
        )
        assert rdp.process.returncode != 0
    finally:
        rdp.close()
    assert rdp_server.wait_for_log(r"refused: the client offers only RDP security")


def test_garbage_closes_only_that_connection(
    screen: VirtualScreen, client: Client, rdp_server: ServerProcess
) -> None:
    wait_active(rdp_server, client.sessions_before, client)
    origin = wait_logon_screen(screen, client)
    junk_messages = (
        b"\x03\x00\x00\x05\xff",  # a TPKT frame too short for any X.224 TPDU
        b"GET / HTTP/1.1\r\n\r\n",  # not RDP at all
        b"\x03\x00\xff\xff" + bytes(8),  # a frame announced but never completed
    )
    for junk in junk_messages:
        with socket.create_connection(("127.0.0.1", rdp_server.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            while sock.recv(4096):
                pass
    assert rdp_server.wait_for_log(r"closing: protocol error: ", count=2)
    # the established session is untouched and still answers input
    client.type_keys("4", "2")
    assert wait_for(
        lambda: count_pin_bullets(screen.screenshot(), WIDTH, HEIGHT, origin) == 2, timeout=10
    )
    assert rdp_server.process.poll() is None
    time.sleep(0.2)


def test_session_list_and_exec_reach_the_live_session(
    screen: VirtualScreen, client: Client, rdp_server: ServerProcess
) -> None:
    import subprocess
    import sys

    session = wait_active(rdp_server, client.sessions_before, client)
    base = [sys.executable, "-m", "rdscard.cli.main", "session", "--state-dir",
            str(rdp_server.state_dir)]
    listing = subprocess.run([*base, "list"], capture_output=True, text=True, check=True)
    row = next(line for line in listing.stdout.splitlines() if line.split()[0] == str(session))
    assert "logon screen" in row and "127.0.0.1:" in row
    ran = subprocess.run(
        [*base, "exec", str(session), "--", "sh", "-c", "echo $RDSCARD_SESSION:$USER"],
        capture_output=True, text=True, check=True,
    )
    assert ran.stdout.strip() == f"{session}:root"
    missing = subprocess.run([*base, "exec", "99999", "--", "true"], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "no session 99999" in missing.stderr


def test_the_sign_in_ends_with_its_connection(
    screen: VirtualScreen, client: Client, rdp_server: ServerProcess
) -> None:
    """No sign-in work goes on for a client that left (it waited 20 s for a card reader)."""
    import time

    session = wait_active(rdp_server, client.sessions_before, client)
    wait_logon_screen(screen, client)
    client.close()
    assert wait_for(lambda: f"[session {session}] closed" in rdp_server.log, 10)
    time.sleep(22)  # past the sign-in's 20 s wait for the smart card device
    log = rdp_server.log
    assert f"[session {session}] sign-in impossible" not in log, log[-2000:]
    assert "Task was destroyed" not in log
