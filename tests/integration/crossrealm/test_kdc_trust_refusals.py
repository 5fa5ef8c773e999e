"""What a sign-in across domains refuses, in process against real KDCs: a KDC whose
certificate does not chain through an NTAuth CA, and a user realm the host's realm does
not trust. Both are audited; neither costs a PIN try."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.logon.audit import AuditLog
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.pkinit import make_runner
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService, SignedIn, SignInRequest
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import (
    RealmPki,
    generate_key,
    key_pem,
    load_private_key,
    make_ca,
    pem,
    write_private,
    write_public,
)
from rdscard.pki.piv_client import PivClient
from rdscard.pki.transport import InProcessTransport
from rdscard.secret import Secret
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import PIN, insert
from tests.integration.crossrealm.conftest import (
    HOST_SERVICE,
    PARTNER_DOMAIN,
    PARTNER_REALM,
    Realms,
    partner_card,
    start_realms,
)

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def realms_and_card(directory: Path, pki: RealmPki, partner_kdc_pki: RealmPki,
                    partner_pki: RealmPki, pcscd: IsolatedPcscd, *, trusted: bool = True
                    ) -> Iterator[tuple[Realms, VirtualPivCard]]:
    """Both realms' KDCs running and carol's card in the client's reader, one insertion
    for the whole test (OpenSC in a new kinit right after a card is reinserted may find no
    token yet); all stopped and removed at the end."""
    realms = start_realms(directory, pki, partner_kdc_pki, trusted=trusted)
    try:
        card = partner_card(partner_pki)
        inserted = insert(VirtualPivCard(card.state), pcscd)
        try:
            yield realms, card
        finally:
            inserted.remove()
    finally:
        realms.partner.stop()
        realms.home.stop()


def service_for(state: Path, realms: Realms, ntauth: list[RealmPki], roots: list[Path],
                pcscd: IsolatedPcscd) -> LogonService:
    for pki in ntauth:
        NtAuthStore.in_state_dir(state).add(pki.issuing_cert)
    config = LogonConfig.from_table({
        "mode": "kerberos", "roots": [str(root) for root in roots],
        "domain_realms": {PARTNER_DOMAIN: PARTNER_REALM},
        "kdc": {"krb5_config": str(realms.krb5_conf), "timeout": 20,
                "validate": True, "validate_principal": HOST_SERVICE,
                "validate_keytab": str(realms.keytab)},
    })
    return LogonService(
        config, CertificateValidator.from_config(config, state),
        mapper=AccountMapper(config, account_exists=lambda name: name == "carol"),
        audit=AuditLog(state / "audit.jsonl"),
        pkinit=make_runner(config, state, pcsc_socket=pcscd.env["PCSCLITE_CSOCK_NAME"]),
    )


def sign_in(service: LogonService, card: VirtualPivCard, pcscd: IsolatedPcscd) -> SignedIn:
    """The service reads ``card`` in process; kinit reaches the copy inserted in pcscd."""
    return service.sign_in(PivClient(InProcessTransport(card)), Secret(PIN.encode()),
                           SignInRequest(reader=pcscd.reader_names()[0]))


def rogue_kdc_pki(partner: RealmPki, rogue: RealmPki, directory: Path) -> RealmPki:
    """The partner's PKI, except that its KDC proves itself with ``rogue``'s KDC certificate.

    The KDC trusts both roots and holds both issuing CAs, so that it can send a complete
    chain for its certificate and still accept the partner's cards.
    """
    shutil.copytree(partner.directory, directory)
    copy = RealmPki.load(directory)
    layout = copy.layout
    shutil.copyfile(rogue.layout.kdc_cert, layout.kdc_cert)
    shutil.copyfile(rogue.layout.kdc_key, layout.kdc_key)
    layout.root_cert.write_bytes(partner.layout.root_cert.read_bytes()
                                 + rogue.layout.root_cert.read_bytes())
    layout.issuing_cert.write_bytes(partner.layout.issuing_cert.read_bytes()
                                    + rogue.layout.issuing_cert.read_bytes())
    return copy


def test_a_kdc_certificate_from_a_ca_outside_ntauth_is_refused(
        tmp_path: Path, pki: RealmPki, partner_pki: RealmPki, pcscd: IsolatedPcscd) -> None:
    rogue = RealmPki.create(tmp_path / "rogue-pki", PARTNER_REALM, PARTNER_DOMAIN)
    kdc_pki = rogue_kdc_pki(partner_pki, rogue, tmp_path / "partner-kdc-pki")
    with realms_and_card(tmp_path / "realms", pki, kdc_pki, partner_pki, pcscd) as (
            realms, card):
        # the rogue root is configured (for whatever reason), but none of its CAs is in NTAuth
        service = service_for(tmp_path / "state", realms, [pki, partner_pki],
                              [pki.layout.root_cert, partner_pki.layout.root_cert,
                               rogue.layout.root_cert], pcscd)
        with pytest.raises(SignInRefused) as info:
            sign_in(service, card, pcscd)
        assert info.value.reason_code is ReasonCode.KDC_UNTRUSTED, info.value.message
        assert "NTAuth" in info.value.message
        assert card.state.pin_retries_left == card.state.pin_retries_limit
        record = service.audit.records()[-1]  # type: ignore[union-attr]
        assert record["result"] == "refused" and record["reason"] == "kdc_untrusted"
        assert record["upn"] == "carol@partner.test"
        # the same KDC is accepted once its CA is in NTAuth: the refusal was about NTAuth
        service = service_for(tmp_path / "state2", realms, [pki, partner_pki, rogue],
                              [partner_pki.layout.root_cert, rogue.layout.root_cert], pcscd)
        signed = sign_in(service, card, pcscd)
        assert signed.tickets is not None and signed.principal == f"carol@{PARTNER_REALM}"


def test_a_kdc_certificate_from_a_non_ntauth_ca_under_a_trusted_root_is_refused(
        tmp_path: Path, pki: RealmPki, partner_pki: RealmPki, pcscd: IsolatedPcscd) -> None:
    # a second CA under the partner's root, trusted by kinit's anchors but not in NTAuth
    root_key = load_private_key(partner_pki.layout.root_key)
    kdc_ca_key = generate_key()
    kdc_ca = make_ca("PARTNER.TEST KDC CA", "rdscard test PKI PARTNER.TEST", kdc_ca_key,
                     issuer_cert=partner_pki.root_cert, issuer_key=root_key, path_length=0)
    issuer = RealmPki(tmp_path, PARTNER_REALM, PARTNER_DOMAIN, partner_pki.root_cert, kdc_ca,
                      kdc_ca_key, partner_pki.kdc_cert)
    kdc_key = generate_key()
    kdc_cert = issuer.issue_kdc_certificate(kdc_key.public_key())
    shutil.copytree(partner_pki.directory, tmp_path / "partner-kdc-pki")
    copy = RealmPki.load(tmp_path / "partner-kdc-pki")
    write_public(copy.layout.kdc_cert, pem(kdc_cert))
    write_private(copy.layout.kdc_key, key_pem(kdc_key))
    copy.layout.issuing_cert.write_bytes(pem(partner_pki.issuing_cert) + pem(kdc_ca))
    with realms_and_card(tmp_path / "realms", pki, copy, partner_pki, pcscd) as (
            realms, card):
        service = service_for(tmp_path / "state", realms, [pki, partner_pki],
                              [pki.layout.root_cert, partner_pki.layout.root_cert], pcscd)
        with pytest.raises(SignInRefused) as info:
            sign_in(service, card, pcscd)
        assert info.value.reason_code is ReasonCode.KDC_UNTRUSTED, info.value.message
        assert "issued by CN=PARTNER.TEST KDC CA" in info.value.message
        assert "not in the NTAuth store" in info.value.message
        record = service.audit.records()[-1]  # type: ignore[union-attr]
        assert record["reason"] == "kdc_untrusted" and record["upn"] == "carol@partner.test"
        assert not [p for p in (tmp_path / "state" / "ccache").rglob("*") if p.is_file()]


def test_a_realm_without_a_trust_to_the_hosts_realm_is_refused(
        tmp_path: Path, pki: RealmPki, partner_pki: RealmPki, pcscd: IsolatedPcscd) -> None:
    with realms_and_card(tmp_path / "realms", pki, partner_pki, partner_pki, pcscd,
                         trusted=False) as (realms, card):
        service = service_for(tmp_path / "state", realms, [pki, partner_pki],
                              [pki.layout.root_cert, partner_pki.layout.root_cert], pcscd)
        with pytest.raises(SignInRefused) as info:
            sign_in(service, card, pcscd)
        assert info.value.reason_code is ReasonCode.TGT_UNVERIFIED, info.value.message
        assert HOST_SERVICE in info.value.message
        record = service.audit.records()[-1]  # type: ignore[union-attr]
        assert record["reason"] == "tgt_unverified"
        # no credential cache is left behind for the refused sign-in
        assert not [p for p in (tmp_path / "state" / "ccache").rglob("*") if p.is_file()]
