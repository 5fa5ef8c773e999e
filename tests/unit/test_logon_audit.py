"""The sign-in audit log: JSON lines, 0600, appended; a whole sign-in never writes the PIN."""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.audit import AuditLog, AuditRecord, AuditResult, serial_hex
from rdscard.logon.challenge import prove_possession, read_sign_in_certificate, verify_pin_once
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.secret import Secret

PIN = b"58213907"  # distinctive: searched for in every form below
WRONG_PIN = b"90731285"
PUK = b"11223344"
NOW = datetime.datetime(2026, 11, 26, 0, 10, tzinfo=datetime.UTC)


def test_record_line_has_every_field(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "sign-in.jsonl")
    log.append(AuditRecord(time=NOW, result=AuditResult.SUCCESS, client_address="192.0.2.7:5",
                           client_name="LAPTOP7", reader="Virtual PCD 00 00", subject="CN=a",
                           issuer="CN=ca", serial=serial_hex(0x4F1A), upn="a@example.test",
                           account="a", principal="a@EXAMPLE.TEST", mode="kerberos"))
    (doc,) = log.records()
    assert doc == {
        "time": "2026-11-26T00:10:00+00:00", "result": "success",
        "client_address": "192.0.2.7:5", "client_name": "LAPTOP7",
        "reader": "Virtual PCD 00 00", "subject": "CN=a", "issuer": "CN=ca", "serial": "4F1A",
        "upn": "a@example.test", "account": "a", "principal": "a@EXAMPLE.TEST",
        "mode": "kerberos", "reason": "", "message": "", "warning": "",
    }
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


def test_append_keeps_earlier_lines_and_tightens_a_loose_mode(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"old": 1}\n')
    path.chmod(0o644)
    log = AuditLog(path)
    refusal = SignInRefused(ReasonCode.EXPIRED, "the certificate CN=a expired")
    log.append(AuditRecord.refused(NOW, refusal, client_name="PC"))
    log.append(AuditRecord(time=NOW, result=AuditResult.SUCCESS))
    records = log.records()
    assert [r.get("result") for r in records] == [None, "refused", "success"]
    assert records[1]["reason"] == "expired" and records[1]["client_name"] == "PC"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_client_supplied_text_cannot_forge_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    log.append(AuditRecord(time=NOW, result=AuditResult.REFUSED,
                           client_name='PC\n{"result": "success"}', reader="r\u202e" + "x" * 5000))
    lines = log.path.read_bytes().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["client_name"] == 'PC\n{"result": "success"}'
    assert len(doc["reader"]) == 1024 + 3


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealmPki, dict[str, object]]:
    pki = RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")
    state = CardState.new(serial=0x4242, pin=PIN, puk=PUK)
    provision(PivClient(InProcessTransport(VirtualPivCard(state))), pki, "alice",
              Credentials(pin=bytearray(PIN), puk=bytearray(PUK)),
              ProvisionOptions(key_type="rsa2048"))
    return pki, state.to_json()


def _attempt(pki: RealmPki, card_doc: dict[str, object], pin: bytes, log: AuditLog) -> None:
    """One sign-in as the logon service runs it, audited whatever happens."""
    client = PivClient(InProcessTransport(VirtualPivCard(CardState.from_json(card_doc))))
    client.select()
    config = LogonConfig.from_table({"domain_realms": {"example.test": "EXAMPLE.TEST"},
                                     "accounts": {"alice@example.test": "alice"}})
    fields = {"client_address": "192.0.2.7:50000", "client_name": "LAPTOP7",
              "reader": "Virtual PCD 00 00", "mode": config.mode.value}
    secret = Secret(pin)
    try:
        cert = read_sign_in_certificate(client)
        # The test PKI was issued just now: validate at the real time, not at NOW.
        valid = CertificateValidator([pki.issuing_cert]).validate(
            cert, now=datetime.datetime.now(datetime.UTC)
        )
        fields.update(subject=valid.subject, issuer=valid.issuer,
                      serial=serial_hex(valid.serial), upn=valid.upn or "")
        mapping = AccountMapper(config, account_exists=lambda _n: True).map(valid.upn)
        fields.update(account=mapping.account)
        verify_pin_once(client, secret)
        prove_possession(client, cert)
    except SignInRefused as refusal:
        log.append(AuditRecord.refused(NOW, refusal, **fields))
        return
    finally:
        secret.wipe()
    log.append(AuditRecord(time=NOW, result=AuditResult.SUCCESS, **fields))


def test_a_whole_sign_in_never_writes_the_pin(world: tuple[RealmPki, dict[str, object]],
                                              tmp_path: Path) -> None:
    pki, card_doc = world
    log = AuditLog(tmp_path / "state" / "audit.jsonl")
    _attempt(pki, card_doc, WRONG_PIN, log)
    _attempt(pki, card_doc, PIN, log)
    records = log.records()
    assert [r["result"] for r in records] == ["refused", "success"]
    assert records[0]["reason"] == "wrong_pin" and "tries left" in records[0]["message"]
    assert records[1]["upn"] == "alice@example.test" and records[1]["account"] == "alice"
    for path in (tmp_path / "state").rglob("*"):
        data = path.read_bytes()
        for secret in (PIN, WRONG_PIN):
            for form in (secret, secret.decode().encode("utf-16-le"), secret.hex().encode(),
                         secret.hex().upper().encode()):
                assert form not in data, f"{form!r} found in {path}"
