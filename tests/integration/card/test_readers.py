"""Insertion and removal as pcscd clients see them; two cards in two readers; two daemons."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdscard.testbed.cards import VirtualCardProcess, wait_for_port
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port
from tests.integration.card.conftest import (
    OPENSC_PKCS11,
    READER_0,
    READER_1,
    CardFile,
    insert,
    rdscard,
    run,
    wait_for_card,
)

pytestmark = pytest.mark.integration


def test_stopping_the_card_process_is_seen_as_removal(pcscd: IsolatedPcscd, rsa_card: CardFile,
                                                      tmp_path: Path) -> None:
    state = tmp_path / "alice.card"
    state.write_bytes(rsa_card.state.read_bytes())
    port = pcscd.vpcd_ports()[0]
    wait_for_port("127.0.0.1", port)
    with VirtualCardProcess(state, port) as card:
        wait_for_card(pcscd, READER_0, present=True)
        assert "alice" in run(rdscard("card", "status", "--reader", READER_0), pcscd.env).stdout
        status = card.stop()
        assert status == 0, card.log()
        wait_for_card(pcscd, READER_0, present=False)
    listing = run(["opensc-tool", "-l"], pcscd.env).stdout
    line = next(row for row in listing.splitlines() if READER_0 in row)
    assert "No" in line


def test_two_cards_in_two_readers(pcscd: IsolatedPcscd, rsa_card: CardFile,
                                  ecc_card: CardFile) -> None:
    with insert(rsa_card.card(), pcscd, 0), insert(ecc_card.card(), pcscd, 1):
        first = run(rdscard("card", "status", "--reader", READER_0), pcscd.env).stdout
        second = run(rdscard("card", "status", "--reader", READER_1), pcscd.env).stdout
        assert "alice" in first and "RSA-2048" in first
        assert "bob" in second and "ECC secp256r1" in second
        slots = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "-L"], pcscd.env).stdout
        assert slots.count("token label") == 2


def test_two_daemons_at_once(pcscd: IsolatedPcscd, rsa_card: CardFile, ecc_card: CardFile,
                             tmp_path: Path) -> None:
    with IsolatedPcscd(tmp_path / "second", free_tcp_port(2)) as other:
        assert other.socket_path != pcscd.socket_path
        with insert(rsa_card.card(), pcscd), insert(ecc_card.card(), other):
            first = run(rdscard("card", "status", "--reader", READER_0), pcscd.env).stdout
            second = run(rdscard("card", "status", "--reader", READER_0), other.env).stdout
        assert "alice" in first and "bob" not in first
        assert "bob" in second and "alice" not in second
