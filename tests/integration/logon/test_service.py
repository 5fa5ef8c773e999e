"""A whole kerberos-mode sign-in: the service checks the card in process, kinit reaches the same
card through an isolated pcscd and gets a TGT from a real MIT KDC."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.audit import AuditLog
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.pkinit import make_runner
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService, SignInRequest
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import PivClient
from rdscard.pki.transport import InProcessTransport
from rdscard.secret import Secret
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import DOMAIN, REALM, insert, run
from tests.integration.logon.conftest import LOGON_PIN, proc_texts

pytestmark = pytest.mark.integration


@pytest.fixture
def kdc(pki: RealmPki, tmp_path: Path) -> Iterator[MitKdc]:
    with MitKdc(tmp_path / "kdc", REALM, pki) as server:
        server.add_user("alice")
        yield server


def build(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, state: Path) -> LogonService:
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    config = LogonConfig.from_table({
        "mode": "kerberos", "roots": [str(pki.layout.root_cert)],
        "domain_realms": {DOMAIN: REALM},
        "kdc": {"krb5_config": str(kdc.krb5_conf), "timeout": 20},
    })
    return LogonService(
        config, CertificateValidator.from_config(config, state),
        mapper=AccountMapper(config, account_exists=lambda name: name == "alice"),
        audit=AuditLog(state / "audit.jsonl"),
        pkinit=make_runner(config, state, pcsc_socket=pcscd.env["PCSCLITE_CSOCK_NAME"]),
    )


def test_kerberos_sign_in_gets_a_tgt_without_spending_a_try(
        pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, logon_card_state: Path,
        tmp_path: Path) -> None:
    state = CardState.load(logon_card_state)
    service = build(pki, kdc, pcscd, tmp_path / "state")
    # One card, two ways in: the service in process, kinit through pcscd.
    client = PivClient(InProcessTransport(VirtualPivCard(state)))
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:  # argv and environment of every process while the sign-in runs
        while not stop.is_set():
            seen.extend(proc_texts())

    watcher = threading.Thread(target=watch)
    with insert(VirtualPivCard(state), pcscd):
        watcher.start()
        try:
            result = service.sign_in(client, Secret(LOGON_PIN),
                                     SignInRequest(reader=pcscd.reader_names()[0]))
        finally:
            stop.set()
            watcher.join()
    assert seen and not any(LOGON_PIN in text for text in seen)
    for path in [*(tmp_path / "state").rglob("*"), *(tmp_path / "kdc").rglob("*")]:
        if path.is_file():
            assert LOGON_PIN not in path.read_bytes(), path
    assert result.tickets is not None and result.principal == f"alice@{REALM}"
    assert result.tickets.expires > datetime.datetime.now(datetime.UTC)
    assert state.pin_retries_left == 3
    tickets = run(["klist", "-c", result.tickets.ccname],
                  {"KRB5_CONFIG": str(kdc.krb5_conf)}).stdout
    assert f"Default principal: alice@{REALM}" in tickets
    record = service.audit.records()[-1]  # type: ignore[union-attr]
    assert record["result"] == "success" and record["mode"] == "kerberos"
    phases = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in result.phases.items())
    print(f"sign-in phases: {phases}")


def test_kerberos_sign_in_with_the_kdc_down(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
                                            logon_card_state: Path, tmp_path: Path) -> None:
    state = CardState.load(logon_card_state)
    service = build(pki, kdc, pcscd, tmp_path / "state")
    kdc.stop()
    client = PivClient(InProcessTransport(VirtualPivCard(state)))
    with insert(VirtualPivCard(state), pcscd), pytest.raises(SignInRefused) as info:
        service.sign_in(client, Secret(LOGON_PIN))
    assert info.value.reason_code is ReasonCode.KDC_UNREACHABLE
    assert state.pin_retries_left == 3
    assert service.audit.records()[-1]["reason"] == "kdc_unreachable"  # type: ignore[union-attr]
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert LOGON_PIN not in path.read_bytes()
