"""Contexts and disconnects answered by the session, against xfreerdp and the client's pcscd.

A released context is kept on the client for the session's next
SCardEstablishContext; these tests hold the pool to what a fresh context
would give, also after the client's pcscd restarted under it, and count
what crosses the network (the session's control record).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rdscard.pdu.pcsclite import (
    Command,
    Connect,
    Disconnect,
    EstablishContext,
    ReleaseContext,
    Transmit,
    Version,
)
from rdscard.server.control_client import query
from rdscard.testbed.pcsclite_client import WireClient
from tests.integration.card.conftest import READER_0
from tests.integration.sessioncard.conftest import RedirectedSession
from tests.integration.sessioncard.pcsc_battery import SELECT_PIV, entry

pytestmark = pytest.mark.integration

C = Command
SHARED, T0_OR_T1, T1, LEAVE = 2, 3, 2, 0


def sent(session: RedirectedSession) -> dict[str, int]:
    """The IOCTLs the server has sent the session's client so far."""
    reply = query(session.server.state_dir, {"command": "session", "session": session.session})
    calls: dict[str, int] = reply["session"]["smart_card_calls"]
    return calls


def use_the_card(socket: Path) -> None:
    """One program's run: establish, connect, SELECT, disconnect, release; each must succeed."""
    with WireClient(socket, timeout=10) as client:
        assert client.call(C.CMD_VERSION, Version(4, 4))[0].rv == 0
        established, _ = client.call(C.SCARD_ESTABLISH_CONTEXT, EstablishContext(2))
        assert established.rv == 0 and established.h_context
        connected, _ = client.call(C.SCARD_CONNECT, Connect(established.h_context, READER_0,
                                                            SHARED, T0_OR_T1))
        assert connected.rv == 0 and connected.h_card, connected
        message = Transmit(connected.h_card, T1, 8, len(SELECT_PIV), T0_OR_T1, 8, 65548)
        reply, data = client.call(C.SCARD_TRANSMIT, message, SELECT_PIV)
        assert reply.rv == 0 and data[-2:] == b"\x90\x00", reply
        disconnected, _ = client.call(C.SCARD_DISCONNECT, Disconnect(connected.h_card, LEAVE))
        assert disconnected.rv == 0
        released, _ = client.call(C.SCARD_RELEASE_CONTEXT,
                                  ReleaseContext(established.h_context))
        assert released.rv == 0


def test_programs_run_one_after_another_share_one_client_context(
    redirected: RedirectedSession,
) -> None:
    use_the_card(redirected.socket)
    time.sleep(0.2)  # the disconnect sent behind its answer reaches the client
    before = sent(redirected)
    for _ in range(3):
        use_the_card(redirected.socket)
    time.sleep(0.2)
    after = sent(redirected)
    crossed = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    assert crossed.get("ESTABLISHCONTEXT", 0) == 0 and crossed.get("RELEASECONTEXT", 0) == 0
    assert (crossed["CONNECTW"], crossed["TRANSMIT"], crossed["DISCONNECT"]) == (3, 3, 3)


def test_a_pooled_context_and_the_reader_table_outlive_a_restart_of_the_clients_pcscd(
    redirected: RedirectedSession,
) -> None:
    use_the_card(redirected.socket)  # its context is now in the session's pool
    redirected.pcscd.stop()
    redirected.pcscd.start()
    direct = Path(redirected.pcscd.env["PCSCLITE_CSOCK_NAME"])
    deadline = time.monotonic() + 20
    while True:  # the virtual card finds the new vpcd again
        with WireClient(direct) as client:
            if entry(client.readers_state(), READER_0).get("state") == "0x34":
                break
        assert time.monotonic() < deadline, "the card did not come back after the restart"
        time.sleep(0.1)
    # the pooled context died with the client's pcscd: the program must not notice
    use_the_card(redirected.socket)
    assert "pooled smart card context was no longer valid" in redirected.server.log
    # and the session's reader table comes back, as the client's did
    deadline = time.monotonic() + 20
    while True:
        with WireClient(redirected.socket) as client:
            if entry(client.readers_state(), READER_0).get("state") == "0x34":
                break
        assert time.monotonic() < deadline, redirected.server.log[-3000:]
        time.sleep(0.1)
