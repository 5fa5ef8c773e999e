"""``certutil -scinfo``'s decision (:mod:`rdscard.logon.scinfo`) on in-process virtual cards."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.cli.certutil import scinfo_lines
from rdscard.cli.main import main
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.ntauth import NtAuthStore, parse_certificates
from rdscard.logon.refusal import ReasonCode
from rdscard.logon.scinfo import CardReport, inspect_card
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport

ACCOUNT = getpass.getuser()
VERIFY = 0x20


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


class Recording(InProcessTransport):
    """Keeps every APDU sent, to prove no VERIFY ever carries a PIN."""

    def __init__(self, card: VirtualPivCard) -> None:
        super().__init__(card)
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(bytes(apdu))
        return super().transmit(apdu)


def _card(pki: RealmPki, **options: object) -> VirtualPivCard:
    card = VirtualPivCard(CardState.new(serial=7, pin=b"123456", puk=b"12345678"))
    provision(PivClient(InProcessTransport(card)), pki, "alice", Credentials(),
              ProvisionOptions(key_type="p256", **options))  # type: ignore[arg-type]
    return card


def _inspect(pki: RealmPki, card: VirtualPivCard, tmp_path: Path, *, trusted: bool = True,
             accounts: dict[str, str] | None = None) -> tuple[CardReport, Recording]:
    if trusted:
        NtAuthStore.in_state_dir(tmp_path).add(
            parse_certificates(pki.layout.issuing_cert.read_bytes(), "issuing CA")[0])
    config = LogonConfig(accounts={"alice@example.test": ACCOUNT} if accounts is None
                         else accounts)
    transport = Recording(card)
    report = inspect_card(PivClient(transport),
                          CertificateValidator.from_config(config, tmp_path),
                          AccountMapper(config))
    return report, transport


def _no_pin_sent(transport: Recording) -> None:
    verifies = [apdu for apdu in transport.sent if apdu[1] == VERIFY]
    assert verifies, "the PIN counter was not read"
    assert all(len(apdu) <= 4 for apdu in verifies), "a VERIFY carried data"


def test_a_trusted_mapped_card_would_sign_in_and_no_pin_is_sent(
        pki: RealmPki, tmp_path: Path) -> None:
    card = _card(pki)
    report, transport = _inspect(pki, card, tmp_path)
    assert report.refusal is None and report.would_sign_in
    assert report.mapping is not None and report.mapping.account == ACCOUNT
    assert set(report.certificates) == {KeyRef.AUTHENTICATION, KeyRef.KEY_MANAGEMENT}
    assert report.pin is not None and report.pin.tries_left == 3
    _no_pin_sent(transport)
    lines = scinfo_lines(report)
    assert lines[-1] == f"would sign in as {ACCOUNT} (once the card's PIN is right)"
    assert "key:      ECC secp256r1" in lines


@pytest.mark.parametrize(("options", "trusted", "accounts", "code"), [
    ({}, False, None, ReasonCode.NOT_IN_NTAUTH),
    ({"expired": True}, True, None, ReasonCode.EXPIRED),
    ({}, True, {}, ReasonCode.UNKNOWN_DOMAIN),
    ({}, True, {"alice@example.test": "no-such-account-here"}, ReasonCode.NO_ACCOUNT),
])
def test_refusals_carry_the_reason_code_and_still_show_the_card(
        pki: RealmPki, tmp_path: Path, options: dict[str, object], trusted: bool,
        accounts: dict[str, str] | None, code: ReasonCode) -> None:
    report, transport = _inspect(pki, _card(pki, **options), tmp_path, trusted=trusted,
                                 accounts=accounts)
    assert report.refusal is not None and report.refusal.reason_code is code
    assert not report.would_sign_in
    assert KeyRef.AUTHENTICATION in report.certificates
    _no_pin_sent(transport)
    lines = scinfo_lines(report)
    assert lines[-1].startswith(f"would be refused: {code.value} ")
    assert "UPN:      alice@example.test" in lines


def test_a_blocked_pin_is_refused_without_any_try(pki: RealmPki, tmp_path: Path) -> None:
    card = _card(pki)
    client = PivClient(InProcessTransport(card))
    client.select()
    for _ in range(3):
        with pytest.raises(Exception, match="PIN"):
            client.verify_pin(b"000000")
    report, transport = _inspect(pki, card, tmp_path)
    assert report.refusal is not None
    assert report.refusal.reason_code is ReasonCode.PIN_BLOCKED
    assert report.mapping is not None  # everything else was fine
    _no_pin_sent(transport)
    assert "PIN: BLOCKED (unblock it with the PUK)" in scinfo_lines(report)


def test_a_card_without_a_sign_in_certificate(pki: RealmPki, tmp_path: Path) -> None:
    card = _card(pki, slots=(KeyRef.KEY_MANAGEMENT,))
    report, _ = _inspect(pki, card, tmp_path)
    assert report.refusal is not None
    assert report.refusal.reason_code is ReasonCode.NO_CERTIFICATE
    assert set(report.certificates) == {KeyRef.KEY_MANAGEMENT}


def _exit_status(argv: list[str]) -> int:
    """main()'s status, argparse's exit included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("argv", [
    ["-scinfo", "extra"],
    ["-scinfo", "-f"],
    ["-viewstore", "-enterprise", "NTAuth", "--reader", "Virtual"],
    ["-scinfo", "-pulse"],
    ["-scinfo", "--no-such-option"],
])
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_status(["certutil", "--state-dir", str(tmp_path), *argv]) == 2
    assert "error" in capsys.readouterr().err


def test_help_documents_scinfo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["certutil", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for words in ("-scinfo [--reader NAME]", "WITHOUT the PIN", "would sign in as ACCOUNT",
                  "would be refused: REASON-CODE", "9A, 9C, 9D, 9E",
                  "0 a sign-in would succeed, 1 it would be refused"):
        assert words in out, words
