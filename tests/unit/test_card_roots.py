"""``[logon.kdc] card_roots`` (:mod:`rdscard.logon.card_roots`): settings, the roots the logon
service hands to PKINIT, the anchor file's life and the keytab check's refusals (the real KDC
runs in tests/integration/logon/test_card_roots.py)."""

from __future__ import annotations

import datetime
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.errors import ConfigError
from rdscard.logon.card_roots import anchor_file, card_roots, validate_tgt, validation_principal
from rdscard.logon.mapping import AccountMapper, AccountMapping
from rdscard.logon.pkinit import PkinitResult
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService
from rdscard.logon.settings import KdcSettings, LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki, generate_key, make_ca
from rdscard.pki.msroots import write_roots
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport, TransportError
from rdscard.secret import Secret

PIN = b"123456"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def _card(pki: RealmPki, roots: Sequence[x509.Certificate] = ()) -> VirtualPivCard:
    card = VirtualPivCard(CardState.new(serial=31, pin=PIN))
    client = PivClient(InProcessTransport(card))
    provision(client, pki, "alice", Credentials(), ProvisionOptions(key_type="p256"))
    if roots:
        client.select()
        client.authenticate_admin()
        write_roots(client, roots)
    return card


def test_settings_default_off_and_are_checked() -> None:
    kdc = LogonConfig.from_table({}).kdc
    assert kdc.card_roots is False and kdc.validate_keytab is None
    assert kdc.validate_principal == "" and kdc.kvno == "kvno"
    kdc = LogonConfig.from_table({"kdc": {
        "card_roots": True, "validate_keytab": "/etc/rdscard/host.keytab",
        "validate_principal": "host/rds1.example.test", "kvno": "/usr/bin/kvno"}}).kdc
    assert kdc.card_roots and kdc.validate_keytab == Path("/etc/rdscard/host.keytab")
    with pytest.raises(ConfigError, match="expected bool"):
        LogonConfig.from_table({"kdc": {"card_roots": "yes"}})
    for bad in ("-k evil", "host/a b", "host/a\n"):
        with pytest.raises(ConfigError, match="validate_principal"):
            LogonConfig.from_table({"kdc": {"validate_principal": bad}})


def test_the_validation_principal_takes_the_user_s_realm_unless_it_names_one() -> None:
    assert validation_principal(KdcSettings(validate_principal="host/rds1.example.test"),
                                "alice@EXAMPLE.TEST") == "host/rds1.example.test@EXAMPLE.TEST"
    assert validation_principal(KdcSettings(validate_principal="host/rds1@OTHER.TEST"),
                                "alice@EXAMPLE.TEST") == "host/rds1@OTHER.TEST"
    assert validation_principal(KdcSettings(), "alice@EXAMPLE.TEST").startswith("host/")


def test_the_anchor_file_is_root_only_and_gone_after(pki: RealmPki, tmp_path: Path) -> None:
    with anchor_file(tmp_path / "ccache", [pki.root_cert]) as path:
        assert x509.load_pem_x509_certificates(path.read_bytes()) == [pki.root_cert]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.exists() and list((tmp_path / "ccache").iterdir()) == []
    with pytest.raises(RuntimeError), anchor_file(tmp_path / "ccache", [pki.root_cert]):
        raise RuntimeError("kinit failed")
    assert list((tmp_path / "ccache").iterdir()) == []


def test_card_roots_keeps_ca_certificates_only(pki: RealmPki) -> None:
    client = PivClient(InProcessTransport(_card(pki, [pki.root_cert, pki.kdc_cert])))
    client.select()
    assert card_roots(client) == (pki.root_cert,)
    bare = PivClient(InProcessTransport(_card(pki)))
    bare.select()
    assert card_roots(bare) == ()


def test_the_keytab_check_refuses_clearly(tmp_path: Path) -> None:
    fake = tmp_path / "kvno"
    fake.write_text("#!/bin/sh\necho \"$@\" > " + str(tmp_path / "argv") + "\n"
                    "echo 'kvno: Key table entry not found while decrypting ticket' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    settings = KdcSettings(kvno=str(fake), validate_keytab=tmp_path / "host.keytab",
                           validate_principal="host/rds1.example.test")
    with pytest.raises(SignInRefused) as info:
        validate_tgt("FILE:/c/krb5cc", "alice@EXAMPLE.TEST", settings, {"PATH": "/bin"})
    assert info.value.reason_code is ReasonCode.TGT_UNVERIFIED
    assert "Key table entry not found" in info.value.message
    assert (tmp_path / "argv").read_text().split() == [
        "-c", "FILE:/c/krb5cc", "-k", str(tmp_path / "host.keytab"), "--no-store",
        "host/rds1.example.test@EXAMPLE.TEST"]
    missing = KdcSettings(kvno=str(tmp_path / "absent"))
    with pytest.raises(SignInRefused, match="cannot run") as info:
        validate_tgt("FILE:/c/krb5cc", "alice@EXAMPLE.TEST", missing, {})
    assert info.value.reason_code is ReasonCode.TGT_UNVERIFIED


def _service(pki: RealmPki, seen: list[tuple[str, ...]], *, on: bool) -> LogonService:
    config = LogonConfig.from_table({"mode": "kerberos",
                                     "domain_realms": {"example.test": "EXAMPLE.TEST"},
                                     "kdc": {"card_roots": on}})

    def runner(mapping: AccountMapping, pin: Secret,
               roots: Sequence[x509.Certificate] = ()) -> PkinitResult:
        pin.wipe()
        seen.append(tuple(c.subject.rfc4514_string() for c in roots))
        return PkinitResult(principal="alice@EXAMPLE.TEST", ccache=Path("/c/krb5cc"),
                            ccname="FILE:/c/krb5cc",
                            expires=datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC),
                            seconds=0.1)

    return LogonService(config, CertificateValidator([pki.issuing_cert]),
                        mapper=AccountMapper(config, account_exists=lambda n: n == "alice"),
                        pkinit=runner)


def test_the_service_hands_the_card_s_roots_to_pkinit_only_when_on(pki: RealmPki) -> None:
    other = make_ca("Not a realm root", "card_roots test", generate_key("p256"))
    card = _card(pki, [pki.root_cert, other])
    for on, expected in ((False, ()), (True, {pki.root_cert.subject.rfc4514_string(),
                                              other.subject.rfc4514_string()})):
        seen: list[tuple[str, ...]] = []
        _service(pki, seen, on=on).sign_in(PivClient(InProcessTransport(card)), Secret(PIN))
        assert len(seen) == 1 and (set(seen[0]) if on else seen[0]) == expected
    assert card.state.pin_retries_left == 3


class _PulledOut(InProcessTransport):
    """The card leaves while its roots are read; every APDU before is recorded."""

    def __init__(self, card: VirtualPivCard) -> None:
        super().__init__(card)
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        if b"\x5c\x03\x5f\xff\x11" in apdu:
            raise TransportError("the card was removed")
        self.sent.append(apdu)
        return super().transmit(apdu)


def test_a_card_removed_while_its_roots_are_read_is_refused_before_the_pin(
        pki: RealmPki) -> None:
    card = _card(pki, [pki.root_cert])
    transport = _PulledOut(card)
    seen: list[tuple[str, ...]] = []
    with pytest.raises(SignInRefused) as info:
        _service(pki, seen, on=True).sign_in(PivClient(transport), Secret(PIN))
    assert info.value.reason_code is ReasonCode.CARD_ERROR
    assert "roots" in info.value.message
    assert seen == []
    assert not any(apdu[1] == 0x20 and len(apdu) > 5 for apdu in transport.sent)  # no VERIFY
    assert card.state.pin_retries_left == 3
