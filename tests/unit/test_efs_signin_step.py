"""The encrypted folder's step of a sign-in, on a virtual card: refusals before the PIN
(no 9D certificate, no recipient) and a card pulled out during the unlock."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.efs import cms, fscrypt
from rdscard.efs.keyring import EfsKeyring
from rdscard.efs.store import Enrollment, EnvelopeStore
from rdscard.logon.audit import AuditLog
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport, TransportError
from rdscard.secret import Secret

PIN = b"123456"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def make_card(pki: RealmPki, slots: tuple[KeyRef, ...], serial: int) -> CardState:
    state = CardState.new(serial=serial, pin=PIN)
    provision(PivClient(InProcessTransport(VirtualPivCard(state))), pki, "alice",
              Credentials(), ProvisionOptions(key_type="p256", slots=slots))
    return state


class Card:
    """A virtual card whose transport can fail from a given command on (the card pulled)."""

    def __init__(self, state: CardState) -> None:
        self.inner = InProcessTransport(VirtualPivCard(state))
        self.sent: list[bytes] = []
        self.pull_at_key_management = False

    def transmit(self, apdu: bytes) -> bytes:
        if self.pull_at_key_management and apdu[1] == 0x87 and apdu[3] == 0x9D:
            raise TransportError("the card was removed")
        self.sent.append(apdu)
        return self.inner.transmit(apdu)

    def verifies(self) -> int:
        return sum(1 for a in self.sent if a[1] == 0x20 and len(a) > 5)


def enrolled_store(tmp_path: Path, pki: RealmPki, recipient_state: CardState) -> EnvelopeStore:
    client = PivClient(InProcessTransport(VirtualPivCard(recipient_state)))
    client.select()
    cert = client.read_certificate(KeyRef.KEY_MANAGEMENT)
    assert cert is not None
    master = Secret(os.urandom(64))
    store = EnvelopeStore(tmp_path / "efs")
    store.save(Enrollment("alice", 1000, tmp_path, fscrypt.key_identifier(master), cert, (),
                          cms.seal(master, [cert])))
    return store


def sign_in(pki: RealmPki, tmp_path: Path, store: EnvelopeStore, card: Card) -> SignInRefused:
    config = LogonConfig.from_table({"domain_realms": {"example.test": "EXAMPLE.TEST"}})
    service = LogonService(
        config, CertificateValidator([pki.issuing_cert]),
        mapper=AccountMapper(config, account_exists=lambda name: name == "alice"),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        clock=lambda: datetime.datetime.now(datetime.UTC))
    keyring = EfsKeyring(store)
    with pytest.raises(SignInRefused) as refused:
        service.sign_in(PivClient(card), Secret(PIN), card_step=keyring.step(7))
    assert keyring.holders("alice") == set()
    return refused.value


def test_a_card_whose_9d_is_no_recipient_is_refused_and_audited_before_the_pin(
        pki: RealmPki, tmp_path: Path) -> None:
    store = enrolled_store(tmp_path, pki, make_card(pki, (KeyRef.AUTHENTICATION,
                                                          KeyRef.KEY_MANAGEMENT), 0x7201))
    card = Card(make_card(pki, (KeyRef.AUTHENTICATION, KeyRef.KEY_MANAGEMENT), 0x7202))
    refusal = sign_in(pki, tmp_path, store, card)
    assert refusal.reason_code is ReasonCode.EFS_NOT_RECIPIENT
    assert "rekey" in refusal.message
    assert card.verifies() == 0
    assert '"reason": "efs_not_recipient"' in (tmp_path / "audit.jsonl").read_text()


def test_a_card_without_a_9d_certificate_is_refused_before_the_pin(
        pki: RealmPki, tmp_path: Path) -> None:
    store = enrolled_store(tmp_path, pki, make_card(pki, (KeyRef.AUTHENTICATION,
                                                          KeyRef.KEY_MANAGEMENT), 0x7203))
    card = Card(make_card(pki, (KeyRef.AUTHENTICATION,), 0x7204))
    refusal = sign_in(pki, tmp_path, store, card)
    assert refusal.reason_code is ReasonCode.EFS_NO_KEY_CERTIFICATE
    assert "9D" in refusal.message
    assert card.verifies() == 0


def test_a_card_pulled_out_during_the_unlock_refuses_the_sign_in(
        pki: RealmPki, tmp_path: Path) -> None:
    state = make_card(pki, (KeyRef.AUTHENTICATION, KeyRef.KEY_MANAGEMENT), 0x7205)
    store = enrolled_store(tmp_path, pki, state)
    card = Card(state)
    card.pull_at_key_management = True
    refusal = sign_in(pki, tmp_path, store, card)
    assert refusal.reason_code is ReasonCode.CARD_ERROR
    assert "stopped answering while your encrypted folder" in refusal.message
    assert card.verifies() == 1
