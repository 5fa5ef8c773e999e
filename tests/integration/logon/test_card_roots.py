"""``[logon.kdc] card_roots`` against a real MIT KDC: a host whose trust lacks the realm's root
signs in with the root the card carries, only when the TGT validates against its keytab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.logon.audit import AuditLog
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.pkinit import make_runner
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService, SignedIn, SignInRequest
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.pki.msroots import delete_roots, write_roots
from rdscard.pki.piv_client import PivClient
from rdscard.pki.transport import InProcessTransport
from rdscard.secret import Secret
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import DOMAIN, REALM, insert, run
from tests.integration.logon.conftest import LOGON_PIN

pytestmark = pytest.mark.integration

HOST = "host/rdscard-host.example.test"


@pytest.fixture
def kdc(pki: RealmPki, tmp_path: Path) -> Iterator[MitKdc]:
    with MitKdc(tmp_path / "kdc", REALM, pki) as server:
        server.add_user("alice")
        yield server


@pytest.fixture
def keytabs(kdc: MitKdc, tmp_path: Path) -> tuple[Path, Path]:
    """(current, stale): the host's keys now, and a keytab from before they were changed."""
    stale, current = tmp_path / "stale.keytab", tmp_path / "host.keytab"
    kdc.add_service(HOST, stale)
    kdc.kadmin(f"ktadd -k {current} {HOST}@{REALM}")  # new keys: the first keytab is stale
    return current, stale


def card_with_root(path: Path, pki: RealmPki) -> CardState:
    """alice's card carrying the realm's root in its msroots."""
    state = CardState.load(path)
    client = PivClient(InProcessTransport(VirtualPivCard(state)))
    client.select()
    client.authenticate_admin()
    write_roots(client, [pki.root_cert])
    return state


def service(pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, state: Path, *,
            card_roots: bool, keytab: Path) -> LogonService:
    """A host outside the domain: its NTAuth holds the issuing CA, no root anywhere."""
    NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    config = LogonConfig.from_table({
        "mode": "kerberos", "domain_realms": {DOMAIN: REALM},
        "kdc": {"krb5_config": str(kdc.krb5_conf), "timeout": 20, "card_roots": card_roots,
                "validate_keytab": str(keytab), "validate_principal": HOST},
    })
    return LogonService(
        config, CertificateValidator.from_config(config, state),
        mapper=AccountMapper(config, account_exists=lambda name: name == "alice"),
        audit=AuditLog(state / "audit.jsonl"),
        pkinit=make_runner(config, state, pcsc_socket=pcscd.env["PCSCLITE_CSOCK_NAME"]),
    )


def attempt(logon: LogonService, card: CardState, pcscd: IsolatedPcscd) -> SignedIn:
    """One sign-in with the card in the reader: the service reads it in process, kinit
    through pcscd (the same card state)."""
    return logon.sign_in(PivClient(InProcessTransport(VirtualPivCard(card))),
                         Secret(LOGON_PIN), SignInRequest(reader=pcscd.reader_names()[0]))


def sign_in(logon: LogonService, card: CardState, pcscd: IsolatedPcscd) -> SignedIn:
    with insert(VirtualPivCard(card), pcscd):
        return attempt(logon, card, pcscd)


def refused(logon: LogonService, card: CardState, pcscd: IsolatedPcscd, *,
            inserted: bool = False) -> SignInRefused:
    with pytest.raises(SignInRefused) as info:
        if inserted:
            attempt(logon, card, pcscd)
        else:
            sign_in(logon, card, pcscd)
    return info.value


def no_root_left(pki: RealmPki, state: Path) -> None:
    """The card's root is in no file the sign-in left behind."""
    forms = (pki.root_cert.public_bytes(Encoding.DER), pki.root_cert.public_bytes(Encoding.PEM))
    for path in state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(form in data for form in forms), path


def test_the_card_s_root_signs_in_a_host_without_it_and_stays_with_that_sign_in(
        pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, logon_card_state: Path,
        keytabs: tuple[Path, Path], tmp_path: Path) -> None:
    card = card_with_root(logon_card_state, pki)
    state = tmp_path / "state"
    logon = service(pki, kdc, pcscd, state, card_roots=True, keytab=keytabs[0])
    with insert(VirtualPivCard(card), pcscd):
        result = attempt(logon, card, pcscd)
        assert result.tickets is not None and result.principal == f"alice@{REALM}"
        tickets = run(["klist", "-c", result.tickets.ccname],
                      {"KRB5_CONFIG": str(kdc.krb5_conf)}).stdout
        assert f"krbtgt/{REALM}@{REALM}" in tickets
        assert HOST not in tickets  # the validation's service ticket is not kept
        assert card.pin_retries_left == 3
        assert logon.audit.records()[-1]["result"] == "success"  # type: ignore[union-attr]
        no_root_left(pki, state)

        # Nothing of the first sign-in trusts the root now: without it on the card, refused.
        client = PivClient(InProcessTransport(VirtualPivCard(card)))
        client.select()
        client.authenticate_admin()
        delete_roots(client)
        again = refused(logon, card, pcscd, inserted=True)
    assert again.reason_code is ReasonCode.KDC_UNTRUSTED, again.message
    assert card.pin_retries_left == 3


def test_without_card_roots_the_card_s_root_is_not_trusted(
        pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, logon_card_state: Path,
        keytabs: tuple[Path, Path], tmp_path: Path) -> None:
    card = card_with_root(logon_card_state, pki)
    state = tmp_path / "state"
    logon = service(pki, kdc, pcscd, state, card_roots=False, keytab=keytabs[0])
    refusal = refused(logon, card, pcscd)
    assert refusal.reason_code is ReasonCode.KDC_UNTRUSTED
    assert card.pin_retries_left == 3
    assert logon.audit.records()[-1]["reason"] == "kdc_untrusted"  # type: ignore[union-attr]
    assert list((state / "ccache").iterdir()) == []


def test_a_tgt_the_host_s_keytab_cannot_validate_is_refused(
        pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, logon_card_state: Path,
        keytabs: tuple[Path, Path], tmp_path: Path) -> None:
    card = card_with_root(logon_card_state, pki)
    state = tmp_path / "state"
    stale = keytabs[1]
    logon = service(pki, kdc, pcscd, state, card_roots=True, keytab=stale)
    refusal = refused(logon, card, pcscd)
    assert refusal.reason_code is ReasonCode.TGT_UNVERIFIED
    assert str(stale) in refusal.message and f"{HOST}@{REALM}" in refusal.message
    assert "card_roots" in refusal.message
    assert card.pin_retries_left == 3
    record = logon.audit.records()[-1]  # type: ignore[union-attr]
    assert record["result"] == "refused" and record["reason"] == "tgt_unverified"
    assert record["message"] == refusal.message
    assert list((state / "ccache").iterdir()) == []  # no ticket, no anchors left
    no_root_left(pki, state)


def test_a_rogue_kdc_whose_root_the_card_plants_is_refused(
        pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd, logon_card_state: Path,
        keytabs: tuple[Path, Path], tmp_path: Path) -> None:
    # The attack card_roots must not open: the card carries the root of a KDC of its
    # owner's choosing, and the host is steered to that KDC. The rogue KDC accepts the
    # card's genuine certificate and answers for the host's principal, with keys of its own.
    rogue_pki = RealmPki.create(tmp_path / "rogue-pki", REALM, DOMAIN)
    with rogue_pki.layout.root_cert.open("ab") as f:  # it trusts the realm's cards too
        f.write(pki.root_cert.public_bytes(Encoding.PEM))
    with rogue_pki.layout.issuing_cert.open("ab") as f:
        f.write(pki.issuing_cert.public_bytes(Encoding.PEM))
    with MitKdc(tmp_path / "rogue-kdc", REALM, rogue_pki) as rogue:
        rogue.add_user("alice")
        rogue.add_service(HOST, tmp_path / "rogue.keytab")
        state = CardState.load(logon_card_state)
        client = PivClient(InProcessTransport(VirtualPivCard(state)))
        client.select()
        client.authenticate_admin()
        # kinit checks its own certificate against the anchors too: the realm's root as well
        write_roots(client, [rogue_pki.root_cert, pki.root_cert])
        logon = service(pki, rogue, pcscd, tmp_path / "state", card_roots=True,
                        keytab=keytabs[0])
        refusal = refused(logon, state, pcscd)
    # The first line that stops it: its certificate's issuing CA is not in NTAuth (the
    # relay shows it); the keytab check, the second line, is proved by the test above.
    assert refusal.reason_code is ReasonCode.KDC_UNTRUSTED, refusal.message
    assert "not in the NTAuth store" in refusal.message
    assert state.pin_retries_left == 3
    assert "AS_REQ" in rogue.log()  # the rogue KDC did answer
    assert list((tmp_path / "state" / "ccache").iterdir()) == []
