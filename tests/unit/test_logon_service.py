"""A whole sign-in with the logon service on a virtual card: order of steps, tries, audit."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.audit import AuditLog
from rdscard.logon.mapping import AccountMapper, AccountMapping
from rdscard.logon.pkinit import PkinitResult
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService, SignedIn, SignInRequest
from rdscard.logon.settings import AccountMode, LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import Ins
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport, TransportError
from rdscard.secret import Secret

PIN = b"58213907"
PUK = b"44332211"
REQUEST = SignInRequest(client_address="192.0.2.7:50000", client_name="LAPTOP7",
                        reader="Virtual PCD 00 00")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


CardDocs = dict[str, dict[str, object]]


@pytest.fixture(scope="module")
def cards(pki: RealmPki) -> CardDocs:
    """Card states: a good RSA card and the negative cases (ECC keys, quicker to make)."""
    out: CardDocs = {}
    for name, user, options in (
        ("good", "alice", ProvisionOptions(key_type="rsa2048")),
        ("untrusted", "alice", ProvisionOptions(key_type="p256", untrusted=True)),
        ("expired", "alice", ProvisionOptions(key_type="p256", expired=True)),
        ("no-upn", "alice", ProvisionOptions(key_type="p256", upn=False)),
    ):
        state = CardState.new(serial=0x6000 + len(out), pin=PIN, puk=PUK)
        provision(PivClient(InProcessTransport(VirtualPivCard(state))), pki, user,
                  Credentials(pin=bytearray(PIN), puk=bytearray(PUK)), options)
        out[name] = state.to_json()
    return out


class Recorder:
    def __init__(self, card: VirtualPivCard) -> None:
        self.inner = InProcessTransport(card)
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.inner.transmit(apdu)

    def pin_verifies(self) -> int:
        return sum(1 for a in self.sent if a[1] == Ins.VERIFY and len(a) > 4)


def card(doc: dict[str, object]) -> tuple[CardState, PivClient, Recorder]:
    state = CardState.from_json(doc)
    recorder = Recorder(VirtualPivCard(state))
    return state, PivClient(recorder), recorder


def service(pki: RealmPki, tmp_path: Path, *, pkinit: object = None,
            **table: object) -> LogonService:
    config = LogonConfig.from_table({"domain_realms": {"example.test": "EXAMPLE.TEST"},
                                     **table})
    return LogonService(
        config, CertificateValidator([pki.issuing_cert]),
        mapper=AccountMapper(config, account_exists=lambda name: name in {"alice", "bob"}),
        audit=AuditLog(tmp_path / "audit.jsonl"), pkinit=pkinit,  # type: ignore[arg-type]
        clock=lambda: datetime.datetime.now(datetime.UTC),
    )


def refused(svc: LogonService, client: PivClient, pin: Secret,
            request: SignInRequest = REQUEST) -> SignInRefused:
    with pytest.raises(SignInRefused) as info:
        svc.sign_in(client, pin, request)
    return info.value


def test_local_sign_in_costs_no_try_and_is_audited(pki: RealmPki, cards: CardDocs,
                                                   tmp_path: Path) -> None:
    state, client, recorder = card(cards["good"])
    svc = service(pki, tmp_path)
    pin = Secret(PIN)
    result = svc.sign_in(client, pin, REQUEST)
    assert (result.account, result.upn, result.realm) == ("alice", "alice@example.test",
                                                          "EXAMPLE.TEST")
    assert result.mode is AccountMode.LOCAL and result.tickets is None
    assert state.pin_retries_left == 3 and recorder.pin_verifies() == 1
    assert len(pin) == 0
    assert list(result.phases) == ["certificate read", "validation", "mapping", "PIN verify",
                                   "proof of possession"]
    (record,) = svc.audit.records()  # type: ignore[union-attr]
    assert record["result"] == "success" and record["account"] == "alice"
    assert record["client_name"] == "LAPTOP7" and record["reader"] == "Virtual PCD 00 00"
    assert record["serial"] == f"{result.certificate.serial:X}"


def test_wrong_pin_costs_one_try_and_stops(pki: RealmPki, cards: CardDocs,
                                           tmp_path: Path) -> None:
    state, client, recorder = card(cards["good"])
    svc = service(pki, tmp_path)
    error = refused(svc, client, Secret(b"00000000"))
    assert error.reason_code is ReasonCode.WRONG_PIN and error.tries_left == 2
    assert state.pin_retries_left == 2 and recorder.pin_verifies() == 1
    # Nothing after the PIN ran: no GENERAL AUTHENTICATE was sent.
    assert not any(a[1] == Ins.GENERAL_AUTHENTICATE for a in recorder.sent)
    (record,) = svc.audit.records()  # type: ignore[union-attr]
    assert record["result"] == "refused" and record["reason"] == "wrong_pin"
    # Then the right PIN signs in, and the counter is back to full.
    assert svc.sign_in(client, Secret(PIN), REQUEST).account == "alice"
    assert state.pin_retries_left == 3


@pytest.mark.parametrize(("name", "code"), [("untrusted", ReasonCode.NOT_IN_NTAUTH),
                                            ("expired", ReasonCode.EXPIRED),
                                            ("no-upn", ReasonCode.NO_UPN)])
def test_bad_certificates_are_refused_before_the_pin(pki: RealmPki, cards: CardDocs,
                                                     tmp_path: Path, name: str,
                                                     code: ReasonCode) -> None:
    state, client, recorder = card(cards[name])
    svc = service(pki, tmp_path)
    pin = Secret(PIN)
    assert refused(svc, client, pin).reason_code is code
    assert recorder.pin_verifies() == 0 and state.pin_retries_left == 3
    assert len(pin) == 0
    assert svc.audit.records()[0]["reason"] == code.value  # type: ignore[union-attr]


def test_unknown_domain_then_accepted_with_a_hint(pki: RealmPki, cards: CardDocs,
                                                  tmp_path: Path) -> None:
    _, client, recorder = card(cards["good"])
    table = {"domain_realms": {"corp.test": "CORP.TEST"}}
    error = refused(service(pki, tmp_path, **table), client, Secret(PIN))
    assert error.reason_code is ReasonCode.UNKNOWN_DOMAIN and recorder.pin_verifies() == 0
    hinted = SignInRequest(user_name="CORP\\alice")
    result = service(pki, tmp_path, allow_domain_hints=True, **table).sign_in(
        client, Secret(PIN), hinted)
    assert (result.account, result.realm) == ("alice", "CORP.TEST")


def test_blocked_card_is_refused_and_audited(pki: RealmPki, cards: CardDocs,
                                             tmp_path: Path) -> None:
    state, client, recorder = card(cards["good"])
    state.pin_retries_left = 0
    svc = service(pki, tmp_path)
    error = refused(svc, client, Secret(PIN))
    assert error.reason_code is ReasonCode.PIN_BLOCKED and "PUK" in error.message
    assert recorder.pin_verifies() == 0
    assert svc.audit.records()[0]["reason"] == "pin_blocked"  # type: ignore[union-attr]


def test_removed_card_is_a_card_error(pki: RealmPki, tmp_path: Path) -> None:
    class Gone:
        def transmit(self, apdu: bytes) -> bytes:
            raise TransportError("card in Virtual PCD 00 00 stopped answering: was it removed?")

    error = refused(service(pki, tmp_path), PivClient(Gone()), Secret(PIN))
    assert error.reason_code is ReasonCode.CARD_ERROR and "removed" in error.message


def _fake_pkinit(seen: list[tuple[AccountMapping, bytes]],
                 fail: SignInRefused | None = None
                 ) -> Callable[[AccountMapping, Secret], PkinitResult]:
    def run(mapping: AccountMapping, pin: Secret) -> PkinitResult:
        seen.append((mapping, bytes(pin.reveal())))
        pin.wipe()
        if fail is not None:
            raise fail
        return PkinitResult(principal=mapping.principal or "", ccache=Path("/c/krb5cc"),
                            ccname="FILE:/c/krb5cc",
                            expires=datetime.datetime(2026, 11, 26, 10, tzinfo=datetime.UTC),
                            seconds=0.1)
    return run


def test_kerberos_mode_runs_pkinit_after_the_card_checks(pki: RealmPki, cards: CardDocs,
                                                         tmp_path: Path) -> None:
    _, client, _ = card(cards["good"])
    seen: list[tuple[AccountMapping, bytes]] = []
    svc = service(pki, tmp_path, mode="kerberos", pkinit=_fake_pkinit(seen))
    pin = Secret(PIN)
    result: SignedIn = svc.sign_in(client, pin, REQUEST)
    assert result.principal == "alice@EXAMPLE.TEST" and result.tickets is not None
    assert "PKINIT" in result.phases
    ((mapping, handed),) = seen
    assert mapping.principal == "alice@EXAMPLE.TEST" and handed == PIN
    assert len(pin) == 0
    assert svc.audit.records()[0]["principal"] == "alice@EXAMPLE.TEST"  # type: ignore[union-attr]


def test_kerberos_mode_wrong_pin_never_reaches_kinit(pki: RealmPki, cards: CardDocs,
                                                     tmp_path: Path) -> None:
    _, client, _ = card(cards["good"])
    seen: list[tuple[AccountMapping, bytes]] = []
    svc = service(pki, tmp_path, mode="kerberos", pkinit=_fake_pkinit(seen))
    assert refused(svc, client, Secret(b"00000000")).reason_code is ReasonCode.WRONG_PIN
    assert seen == []


def test_kdc_down_is_refused_and_audited(pki: RealmPki, cards: CardDocs, tmp_path: Path) -> None:
    _, client, _ = card(cards["good"])
    down = SignInRefused(ReasonCode.KDC_UNREACHABLE, "no KDC of realm EXAMPLE.TEST answered")
    svc = service(pki, tmp_path, mode="kerberos", pkinit=_fake_pkinit([], down))
    assert refused(svc, client, Secret(PIN)).reason_code is ReasonCode.KDC_UNREACHABLE
    assert svc.audit.records()[0]["reason"] == "kdc_unreachable"  # type: ignore[union-attr]


def test_kerberos_mode_needs_a_runner(pki: RealmPki) -> None:
    config = LogonConfig.from_table({"mode": "kerberos"})
    with pytest.raises(ValueError, match="PKINIT runner"):
        LogonService(config, CertificateValidator([pki.issuing_cert]))


def test_the_pin_is_nowhere_after_attempts(pki: RealmPki, cards: CardDocs,
                                           tmp_path: Path) -> None:
    _, client, _ = card(cards["good"])
    svc = service(pki, tmp_path)
    with pytest.raises(SignInRefused) as info:
        svc.sign_in(client, Secret(b"90731285"), REQUEST)
    result = svc.sign_in(client, Secret(PIN), REQUEST)
    texts = [repr(result), str(info.value), repr(info.value), repr(svc),
             (tmp_path / "audit.jsonl").read_text()]
    for text in texts:
        assert "58213907" not in text and "90731285" not in text
