"""Two clients with two different cards: each session sees only its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port
from rdscard.xclient import VirtualScreen
from tests.integration.card.conftest import OPENSC_PKCS11, CardFile, insert
from tests.integration.sessioncard.conftest import (
    RedirectedSession,
    connect_with_card,
    start_server,
)

pytestmark = pytest.mark.integration


def test_each_session_sees_only_its_own_card(
    tmp_path: Path, rsa_card: CardFile, ecc_card: CardFile
) -> None:
    server = start_server(tmp_path)
    opened: list[object] = []
    try:
        sessions = []
        for name, card_file in (("a", rsa_card), ("b", ecc_card)):
            daemon = IsolatedPcscd(tmp_path / f"pcscd-{name}", free_tcp_port(2))
            daemon.start()
            opened.append(daemon)
            card = insert(card_file.card(), daemon)
            opened.append(card)
            screen = VirtualScreen(1088, 832).start()
            opened.append(screen)
            client, session, socket = connect_with_card(server, screen, daemon)
            opened.append(client)
            sessions.append(RedirectedSession(server, client, session, socket, card, daemon))
        alice, bob = sessions
        assert alice.session != bob.session and alice.socket != bob.socket
        alice_slots = alice.run("pkcs11-tool", "--module", OPENSC_PKCS11, "-L").stdout
        bob_slots = bob.run("pkcs11-tool", "--module", OPENSC_PKCS11, "-L").stdout
        assert "alice (Authentication)" in alice_slots and "bob" not in alice_slots
        assert "bob (Authentication)" in bob_slots and "alice" not in bob_slots
    finally:
        for item in reversed(opened):
            for method in ("close", "remove", "stop"):
                if hasattr(item, method):
                    getattr(item, method)()
                    break
        server.stop()
