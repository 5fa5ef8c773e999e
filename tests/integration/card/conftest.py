"""Peers for the card tests: a test PKI and provisioned virtual cards (once per session),
an isolated pcscd with vpcd readers per test, and a helper to run the real tools against it.

Every pcscd client runs as a subprocess because libpcsclite reads
PCSCLITE_CSOCK_NAME once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.cards import CardInThread, wait_for_port
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port

REALM = "EXAMPLE.TEST"
DOMAIN = "example.test"
PIN = "123456"
PUK = "12345678"
OPENSC_PKCS11 = "opensc-pkcs11.so"
READER_0 = "Virtual PCD 00 00"
READER_1 = "Virtual PCD 00 01"


@dataclass(frozen=True)
class CardFile:
    """A provisioned virtual card kept as a state file; each test loads a fresh copy."""

    user: str
    key_type: str
    state: Path

    def card(self) -> VirtualPivCard:
        return VirtualPivCard(CardState.load(self.state))


def run(argv: Sequence[str], env: dict[str, str], *, stdin: str | None = None,
        check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a tool with ``env`` added; on failure show its output."""
    result = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **env},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def rdscard(*args: str) -> list[str]:
    """argv of the rdscard command in this environment."""
    return [sys.executable, "-m", "rdscard.cli.main", *args]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), REALM, DOMAIN)


def _make_card(pki: RealmPki, directory: Path, user: str, key_type: str) -> CardFile:
    state = CardState.new(serial=0x1000 + len(user), pin=PIN.encode(), puk=PUK.encode())
    card = VirtualPivCard(state)
    provision(PivClient(InProcessTransport(card)), pki, user, Credentials(),
              ProvisionOptions(key_type=key_type))
    path = directory / f"{user}-{key_type}.card"
    state.save(path)
    return CardFile(user=user, key_type=key_type, state=path)


@pytest.fixture(scope="session")
def rsa_card(pki: RealmPki, tmp_path_factory: pytest.TempPathFactory) -> CardFile:
    """alice's card: RSA-2048 keys in 9A and 9D."""
    return _make_card(pki, tmp_path_factory.mktemp("cards"), "alice", "rsa2048")


@pytest.fixture(scope="session")
def ecc_card(pki: RealmPki, tmp_path_factory: pytest.TempPathFactory) -> CardFile:
    """bob's card: ECC P-256 keys in 9A and 9D."""
    return _make_card(pki, tmp_path_factory.mktemp("cards"), "bob", "p256")


@pytest.fixture
def pcscd(tmp_path: Path) -> Iterator[IsolatedPcscd]:
    """A pcscd of this test's own, with two vpcd readers on free ports."""
    daemon = IsolatedPcscd(tmp_path / "pcscd", free_tcp_port(2))
    with daemon:
        yield daemon


def insert(card: object, pcscd: IsolatedPcscd, slot: int = 0) -> CardInThread:
    """Insert ``card`` into reader ``slot`` of ``pcscd`` and wait until pcscd sees it."""
    port = pcscd.vpcd_ports()[slot]
    wait_for_port("127.0.0.1", port)
    runner = CardInThread(card, port)
    runner.insert()
    wait_for_card(pcscd, pcscd.reader_names()[slot])
    return runner


WAIT_SCRIPT = """
import sys, time
from smartcard.scard import *
want_present = sys.argv[2] == "present"
hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
assert hresult == SCARD_S_SUCCESS, SCardGetErrorMessage(hresult)
state = SCARD_STATE_UNAWARE
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    hresult, states = SCardGetStatusChange(ctx, 200, [(sys.argv[1], state)])
    if hresult not in (SCARD_S_SUCCESS, SCARD_E_TIMEOUT):
        print("error", SCardGetErrorMessage(hresult)); sys.exit(2)
    if hresult == SCARD_S_SUCCESS:
        state = states[0][1] & ~SCARD_STATE_CHANGED
        present = bool(state & SCARD_STATE_PRESENT)
        if present == want_present:
            print("present" if present else "empty"); sys.exit(0)
print("timeout"); sys.exit(1)
"""


def wait_for_card(pcscd: IsolatedPcscd, reader: str, *, present: bool = True,
                  timeout: float = 10) -> None:
    """Wait (in a pcscd client process) until ``reader`` has a card, or none."""
    run([sys.executable, "-c", WAIT_SCRIPT, reader, "present" if present else "empty",
         str(timeout)], pcscd.env, timeout=timeout + 10)
