"""The monitor decides from its own records: what a network process may not make it do."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.config import Config, RedirectionConfig, ServerConfig
from rdscard.errors import RdscardError
from rdscard.logon.audit import AuditLog
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import SignInRequest
from rdscard.logon.settings import LogonConfig
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import Ins
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.privsep import ipc
from rdscard.privsep.channel import IpcChannel, Reply
from rdscard.privsep.monitor_control import MonitorControl
from rdscard.privsep.privileged import PrivilegedService
from rdscard.secret import Secret

PIN = b"58213907"
PUK = b"44332211"


def service(tmp_path: Path) -> PrivilegedService:
    config = Config(server=ServerConfig(state_dir=tmp_path / "state"),
                    redirection=RedirectionConfig(socket_dir=tmp_path / "run"))
    return PrivilegedService(config, AuditLog(tmp_path / "audit.jsonl"), lambda _s, _r: None)


def signed_in_as(svc: PrivilegedService, session_id: int, account: str, uid: int) -> None:
    # What a successful sign-in records (the sign-in itself is proved end to end).
    record = svc._session(session_id)
    record.account, record.uid, record.gid = account, uid, uid


def test_a_desktop_starts_only_for_a_session_that_signed_in(tmp_path: Path) -> None:
    svc = service(tmp_path)
    with pytest.raises(RdscardError, match="has not signed in"):
        asyncio.run(svc.start_desktop(1, width=800, height=600, keyboard_layout=0x409,
                                      client_address=""))


def test_tickets_move_only_between_sessions_of_one_account(tmp_path: Path) -> None:
    svc = service(tmp_path)
    signed_in_as(svc, 1, "alice", 1001)
    signed_in_as(svc, 2, "bob", 1002)
    with pytest.raises(RdscardError, match="cannot take over"):
        svc.take_over(1, 2)
    with pytest.raises(RdscardError, match="has not signed in"):
        svc.take_over(1, 3)
    signed_in_as(svc, 3, "alice", 1001)
    svc.take_over(1, 3)


@pytest.mark.parametrize("session_id", [0, -1, 1 << 31, 1 << 62])
def test_session_ids_out_of_range_are_refused(tmp_path: Path, session_id: int) -> None:
    with pytest.raises(RdscardError, match="no session"):
        service(tmp_path).open_card_socket(session_id)


def test_the_card_socket_is_private_and_follows_the_signed_in_account(tmp_path: Path) -> None:
    svc = service(tmp_path)
    listener, path = svc.open_card_socket(5)
    try:
        directory = os.lstat(path.parent)
        assert stat.S_IMODE(directory.st_mode) == 0o700 and directory.st_uid == 0
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        signed_in_as(svc, 5, "nobody", 65534)
        svc._give(svc._session(5))
        assert os.lstat(path.parent).st_uid == 65534 and os.lstat(path).st_uid == 65534
        svc.session_ended(5)
        assert not path.parent.exists()
    finally:
        listener.close()


# -- a network process that forges the card cannot sign anyone in ------------------------------
@pytest.fixture(scope="module")
def two_cards(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealmPki, dict[str, object],
                                                                 dict[str, object]]:
    pki = RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")
    docs = []
    for serial, user in ((0x7001, "alice"), (0x7002, "bob")):
        state = CardState.new(serial=serial, pin=PIN, puk=PUK)
        provision(PivClient(InProcessTransport(VirtualPivCard(state))), pki, user,
                  Credentials(pin=bytearray(PIN), puk=bytearray(PUK)),
                  ProvisionOptions(key_type="p256"))
        docs.append(state.to_json())
    return pki, docs[0], docs[1]


class Relay:
    """Alice's certificate from her card, but every signature from another card."""

    def __init__(self, certificate_card: VirtualPivCard, signing_card: VirtualPivCard) -> None:
        self.certificates = InProcessTransport(certificate_card)
        self.signer = InProcessTransport(signing_card)

    def transmit(self, apdu: bytes) -> bytes:
        if apdu[1] == Ins.GENERAL_AUTHENTICATE:
            return self.signer.transmit(apdu)
        if apdu[1] in (Ins.VERIFY, 0xA4):  # the PIN and SELECT reach both cards
            self.signer.transmit(apdu)
        return self.certificates.transmit(apdu)


def signing_service(tmp_path: Path, pki: RealmPki) -> PrivilegedService:
    state_dir = tmp_path / "state"
    NtAuthStore(state_dir / "ntauth").add(pki.issuing_cert)
    logon = LogonConfig.from_table({"mode": "local", "domain_realms": {
        "example.test": "EXAMPLE.TEST"}, "accounts": {"alice@example.test": "nobody"}})
    config = Config(server=ServerConfig(state_dir=state_dir), logon=logon,
                    redirection=RedirectionConfig(socket_dir=tmp_path / "run"))
    return PrivilegedService(config, AuditLog(tmp_path / "audit.jsonl"), lambda _s, _r: None)


def test_a_relayed_signature_is_refused_and_the_session_stays_unsigned(
        tmp_path: Path, two_cards: tuple[RealmPki, dict[str, object], dict[str, object]]
) -> None:
    pki, alice, bob = two_cards
    svc = signing_service(tmp_path, pki)
    forged = Relay(VirtualPivCard(CardState.from_json(alice)),
                   VirtualPivCard(CardState.from_json(bob)))
    with pytest.raises(SignInRefused) as refused:
        svc.sign_in(1, SignInRequest(), Secret(PIN), forged)
    assert refused.value.reason_code is ReasonCode.PROOF_FAILED
    with pytest.raises(RdscardError, match="has not signed in"):
        asyncio.run(svc.start_desktop(1, width=800, height=600, keyboard_layout=0x409,
                                      client_address=""))
    honest = InProcessTransport(VirtualPivCard(CardState.from_json(alice)))
    outcome = svc.sign_in(2, SignInRequest(), Secret(PIN), honest)
    assert (outcome.account, outcome.upn) == ("nobody", "alice@example.test")
    assert [r["result"] for r in svc.audit.records()] == ["refused", "success"]


def test_session_exec_gets_its_account_and_environment_from_the_monitor(tmp_path: Path) -> None:
    """A network process lying about a session cannot choose what root runs, or how."""
    svc = service(tmp_path)
    signed_in_as(svc, 4, "nobody", 65534)

    async def lying_network(message: ipc.Message, fds: list[socket.socket]) -> Reply | None:
        assert isinstance(message, ipc.ControlRequest)
        lie = {"session_id": 4, "uid": 0, "gid": 0, "account": "root", "state": "active",
               "env": {"LD_PRELOAD": "/tmp/evil.so", "PCSCLITE_CSOCK_NAME": "/tmp/x"}}
        return ipc.ControlReply(json.dumps({"session": lie}).encode()), []

    async def main() -> dict[str, object]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        monitor = IpcChannel(ours, lying_network, peer="network process")
        network = IpcChannel(theirs, lying_network, peer="monitor")
        monitor.start()
        network.start()
        try:
            control = MonitorControl(svc, monitor, tmp_path)
            return await control.answer(b'{"command": "session", "session": 4}\n')
        finally:
            monitor.close()
            network.close()

    session = asyncio.run(main())["session"]
    assert isinstance(session, dict)
    assert (session["account"], session["uid"], session["gid"]) == ("nobody", 65534, 65534)
    assert session["env"] == {}  # no socket made, no tickets, no desktop: nothing
    assert session["state"] == "active"  # what only the network process knows stays


def test_the_monitor_keeps_a_bounded_number_of_session_records(tmp_path: Path) -> None:
    svc = service(tmp_path)
    limit = 2 * svc.config.server.max_connections + 64
    for session_id in range(1, limit + 1):
        svc._session(session_id)
    with pytest.raises(RdscardError, match="too many sessions"):
        svc._session(limit + 1)
    svc.session_ended(1)
    svc._session(limit + 1)
