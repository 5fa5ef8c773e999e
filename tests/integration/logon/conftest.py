"""Peers for the logon tests: the card tests' PKI and isolated pcscd, a card with its own PIN."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from tests.integration.card.conftest import pcscd, pki  # noqa: F401 - fixtures used here

# Distinctive, so that a search for it in argv, environments and files means something.
LOGON_PIN = b"58213907"
LOGON_PUK = b"44332211"


@pytest.fixture(scope="session")
def logon_card_state(pki: RealmPki,  # noqa: F811 - the imported fixture
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice's RSA-2048 card with :data:`LOGON_PIN`, as a state file each test loads afresh."""
    state = CardState.new(serial=0x5150, pin=LOGON_PIN, puk=LOGON_PUK)
    provision(PivClient(InProcessTransport(VirtualPivCard(state))), pki, "alice",
              Credentials(pin=bytearray(LOGON_PIN), puk=bytearray(LOGON_PUK)),
              ProvisionOptions(key_type="rsa2048"))
    path = tmp_path_factory.mktemp("logon-card") / "alice.card"
    state.save(path)
    return path


#: Client programs get the PIN on their command line (the client's business); tests run
#: two at a time, so another test's client may be running while a test looks.
CLIENT_PROGRAMS = frozenset({b"xfreerdp", b"xfreerdp3", b"rdesktop"})


def client_program(pid: str) -> bool:
    """Whether process ``pid`` is an RDP client program."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip() in CLIENT_PROGRAMS
    except OSError:
        return False


def proc_texts() -> list[bytes]:
    """The argv and environment of every process this test can read, clients aside."""
    texts: list[bytes] = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or client_program(pid):
            continue
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    texts.append(f.read())
            except OSError:
                continue
    return texts
