"""The PKINIT worker against a real MIT KDC, with the virtual card in an isolated pcscd."""

from __future__ import annotations

import datetime
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.pkinit import PkinitResult, kdc_anchors, run_pkinit
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import LogonConfig
from rdscard.pki.ca import RealmPki
from rdscard.secret import Secret
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import REALM, insert, run
from tests.integration.logon.conftest import LOGON_PIN, proc_texts

pytestmark = pytest.mark.integration


@pytest.fixture
def kdc(pki: RealmPki, tmp_path: Path) -> Iterator[MitKdc]:
    with MitKdc(tmp_path / "kdc", REALM, pki) as server:
        server.add_user("alice")
        yield server


@pytest.fixture
def state_dir(pki: RealmPki, tmp_path: Path) -> Path:
    """A state directory whose NTAuth store holds the issuing CA (the root is in [logon] roots)."""
    state = tmp_path / "state"
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    return state


def pkinit(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, state: Path, principal: str,
           pin: bytes, **kdc_settings: object) -> PkinitResult:
    """The worker as the logon service calls it, with [logon] settings for this realm."""
    config = LogonConfig.from_table({"roots": [str(pki.layout.root_cert)],
                                     "kdc": {"krb5_config": str(kdc.krb5_conf), **kdc_settings}})
    return run_pkinit(principal, Secret(pin), config.kdc, ccache_base=state / "ccache",
                      anchors=kdc_anchors(config, state),
                      pcsc_socket=pcscd.env["PCSCLITE_CSOCK_NAME"])


def load_card(path: Path) -> VirtualPivCard:
    return VirtualPivCard(CardState.load(path))


def test_worker_gets_a_tgt_and_costs_no_try(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
                                            logon_card_state: Path, state_dir: Path) -> None:
    card = load_card(logon_card_state)
    before = datetime.datetime.now(datetime.UTC)
    with insert(card, pcscd):
        result = pkinit(pki, kdc, pcscd, state_dir, f"alice@{REALM}", LOGON_PIN)
    assert result.principal == f"alice@{REALM}"
    assert before + datetime.timedelta(hours=9) < result.expires
    assert result.expires <= before + datetime.timedelta(hours=10, minutes=1)
    assert card.state.pin_retries_left == 3
    directory = result.ccache.parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert directory.parent == state_dir / "ccache"
    tickets = run(["klist", "-c", result.ccname], {"KRB5_CONFIG": str(kdc.krb5_conf)}).stdout
    assert f"Default principal: alice@{REALM}" in tickets
    assert f"krbtgt/{REALM}@{REALM}" in tickets


def test_wrong_pin_fails_clearly_and_costs_exactly_one_try(
        pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, logon_card_state: Path,
        state_dir: Path) -> None:
    card = load_card(logon_card_state)
    with insert(card, pcscd), pytest.raises(SignInRefused) as info:
        pkinit(pki, kdc, pcscd, state_dir, f"alice@{REALM}", b"00000000")
    assert info.value.reason_code is ReasonCode.WRONG_PIN
    assert "wrong PIN" in info.value.message
    assert card.state.pin_retries_left == 2
    assert list((state_dir / "ccache").iterdir()) == []  # nothing left behind


def test_kdc_down_fails_clearly(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
                                logon_card_state: Path, state_dir: Path) -> None:
    kdc.stop()
    card = load_card(logon_card_state)
    with insert(card, pcscd), pytest.raises(SignInRefused) as info:
        pkinit(pki, kdc, pcscd, state_dir, f"alice@{REALM}", LOGON_PIN)
    assert info.value.reason_code is ReasonCode.KDC_UNREACHABLE
    assert f"no KDC of realm {REALM} answered" in info.value.message
    assert card.state.pin_retries_left == 3


def test_another_principal_is_a_name_mismatch(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
                                              logon_card_state: Path, state_dir: Path) -> None:
    kdc.add_user("mallory")
    with insert(load_card(logon_card_state), pcscd), pytest.raises(SignInRefused) as info:
        pkinit(pki, kdc, pcscd, state_dir, f"mallory@{REALM}", LOGON_PIN)
    assert info.value.reason_code is ReasonCode.CLIENT_NAME_MISMATCH


def test_untrusted_kdc_anchor_is_refused(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
                                         logon_card_state: Path, tmp_path: Path) -> None:
    untrusted, _ = pki.untrusted_ca()
    state = tmp_path / "other-state"
    NtAuthStore.in_state_dir(state).add(untrusted)  # NTAuth without the realm's CAs
    config = LogonConfig.from_table({"kdc": {"krb5_config": str(kdc.krb5_conf)}})
    with insert(load_card(logon_card_state), pcscd), pytest.raises(SignInRefused) as info:
        run_pkinit(f"alice@{REALM}", Secret(LOGON_PIN), config.kdc,
                   ccache_base=state / "ccache", anchors=kdc_anchors(config, state),
                   pcsc_socket=pcscd.env["PCSCLITE_CSOCK_NAME"])
    assert info.value.reason_code is ReasonCode.KDC_UNTRUSTED
    assert "rdscard ntauth add" in info.value.message


def test_pin_is_in_no_argv_environment_or_file(pki: RealmPki, kdc: MitKdc,
                                               pcscd: IsolatedPcscd, logon_card_state: Path,
                                               state_dir: Path, tmp_path: Path) -> None:
    # A wrapper records the argv and environment kinit receives, then becomes kinit.
    record = tmp_path / "kinit-seen"
    wrapper = tmp_path / "kinit-wrapper"
    wrapper.write_text("#!/bin/sh\n"
                       f"cat /proc/$$/cmdline /proc/$$/environ >> '{record}'\n"
                       'exec kinit "$@"\n')
    wrapper.chmod(0o755)
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:  # every process on the machine, while the worker runs
        while not stop.is_set():
            seen.extend(proc_texts())

    watcher = threading.Thread(target=watch)
    with insert(load_card(logon_card_state), pcscd):
        watcher.start()
        try:
            result = pkinit(pki, kdc, pcscd, state_dir, f"alice@{REALM}", LOGON_PIN,
                            kinit=str(wrapper))
        finally:
            stop.set()
            watcher.join()
    assert result.principal == f"alice@{REALM}"
    recorded = record.read_bytes()
    assert b"X509_user_identity=PKCS11:" in recorded  # the wrapper saw kinit's argv
    assert b"PCSCLITE_CSOCK_NAME=" in recorded and b"KRB5CCNAME=FILE:" in recorded
    assert len(seen) > 0
    forms = (LOGON_PIN, LOGON_PIN.decode().encode("utf-16-le"), LOGON_PIN.hex().encode())
    for text in [recorded, *seen]:
        for form in forms:
            assert form not in text
    for path in [*state_dir.rglob("*"), *(tmp_path / "kdc").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert not any(form in data for form in forms), path


def test_enterprise_name_gets_a_tgt(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,
                                    logon_card_state: Path, state_dir: Path) -> None:
    # The UPN as an enterprise principal (kinit -E), as the mapping's enterprise form gives it.
    enterprise = f"alice\\@{pki.domain}@{REALM}"
    kdc.kadmin(f"addprinc +requires_preauth -nokey {enterprise}")
    kdc.kadmin(f'setstr {enterprise} pkinit_cert_match "<SAN>^alice@{pki.domain}$"')
    config = LogonConfig.from_table({"roots": [str(pki.layout.root_cert)],
                                     "kdc": {"krb5_config": str(kdc.krb5_conf)}})
    with insert(load_card(logon_card_state), pcscd):
        result = run_pkinit(enterprise, Secret(LOGON_PIN), config.kdc,
                            ccache_base=state_dir / "ccache", enterprise=True, realm=REALM,
                            anchors=kdc_anchors(config, state_dir),
                            pcsc_socket=pcscd.env["PCSCLITE_CSOCK_NAME"])
    assert result.principal == enterprise
