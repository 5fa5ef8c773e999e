"""KB5014754: in compatibility mode a weakly mapped certificate may not be older than its
account (whenCreated), beyond CertificateBackdatingCompensation."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from rdscard.directory.accounts import CachedAccountSource, DirectoryAccount
from rdscard.directory.backdating import (
    DEFAULT_COMPENSATION,
    MAX_COMPENSATION,
    check_predates_account,
    generalized_time,
)
from rdscard.directory.settings import DirectoryConfig
from rdscard.errors import ConfigError
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.pki.ca import BACKDATE, RealmPki
from rdscard.secret import Secret
from tests.unit.test_directory_accounts import FakeDirectory, account, directory_service
from tests.unit.test_logon_service import PIN, REQUEST, CardDocs, card
from tests.unit.test_logon_service import cards as cards
from tests.unit.test_logon_service import pki as pki

UTC = datetime.UTC
ISSUED = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SID = "S-1-5-21-1-2-3-1105"


@pytest.mark.parametrize(("text", "moment"), [
    ("20261204222502.0Z", datetime.datetime(2026, 12, 4, 22, 25, 2, tzinfo=UTC)),
    ("20261204222502Z", datetime.datetime(2026, 12, 4, 22, 25, 2, tzinfo=UTC)),
    ("20261204222502.25Z", datetime.datetime(2026, 12, 4, 22, 25, 2, 250000, tzinfo=UTC)),
    ("20261204232502+0100", datetime.datetime(2026, 12, 4, 22, 25, 2, tzinfo=UTC)),
    ("20261204202502-0200", datetime.datetime(2026, 12, 4, 22, 25, 2, tzinfo=UTC)),
    ("2026120422250", None), ("20261304222502.0Z", None), ("20261204222502.0", None),
    ("20261204222502.0Z\n0", None), ("", None), ("yesterday", None),
])
def test_generalized_time(text: str, moment: datetime.datetime | None) -> None:
    assert generalized_time(text) == moment


def weak_cert(pki: RealmPki, sid: str | None = None) -> x509.Certificate:
    """A certificate whose notBefore is ISSUED (the test PKI backdates by BACKDATE)."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = pki.issue_user_certificate("alice", key, sid=sid, now=ISSUED + BACKDATE)
    assert cert.not_valid_before_utc == ISSUED
    return cert


@pytest.mark.parametrize(("created_after", "compensation", "refused"), [
    (datetime.timedelta(seconds=-1), 0.0, False),     # the account is older
    (datetime.timedelta(0), 0.0, False),              # created at the notBefore itself
    (datetime.timedelta(seconds=1), 0.0, True),
    (datetime.timedelta(seconds=600), DEFAULT_COMPENSATION, False),
    (datetime.timedelta(seconds=601), DEFAULT_COMPENSATION, True),
    (datetime.timedelta(days=3650), MAX_COMPENSATION, False),
])
def test_certificate_older_than_the_account_beyond_the_allowance_is_refused(
        pki: RealmPki, created_after: datetime.timedelta, compensation: float,
        refused: bool) -> None:
    cert = weak_cert(pki)
    created = ISSUED + created_after
    if not refused:
        check_predates_account(cert, "alice", created, compensation)
        return
    with pytest.raises(SignInRefused) as info:
        check_predates_account(cert, "alice", created, compensation)
    assert info.value.reason_code is ReasonCode.CERTIFICATE_PREDATES_ACCOUNT
    assert "before the account was created" in info.value.message
    assert "certificate_backdating_compensation" in info.value.message


def test_an_account_without_when_created_cannot_be_checked_and_is_refused(
        pki: RealmPki) -> None:
    with pytest.raises(SignInRefused) as info:
        check_predates_account(weak_cert(pki), "alice", None, MAX_COMPENSATION)
    assert info.value.reason_code is ReasonCode.CERTIFICATE_PREDATES_ACCOUNT
    assert "whenCreated" in info.value.message


def source(mode: str, compensation: float = DEFAULT_COMPENSATION) -> CachedAccountSource:
    config = DirectoryConfig(strong_mapping=mode, certificate_backdating_compensation=compensation)
    return CachedAccountSource(config, directory=FakeDirectory())  # type: ignore[arg-type]


def young(alt: tuple[str, ...] = ()) -> DirectoryAccount:
    """alice, created a day after her certificates' notBefore."""
    return dataclasses.replace(account(), when_created=ISSUED + datetime.timedelta(days=1),
                               alt_security_identities=alt)


def test_only_weak_mappings_in_compatibility_mode_are_subject_to_the_rule(
        pki: RealmPki) -> None:
    weak, strong = weak_cert(pki), weak_cert(pki, sid=SID)
    with pytest.raises(SignInRefused) as info:
        source("compatibility").check_certificate(young(), weak)
    assert info.value.reason_code is ReasonCode.CERTIFICATE_PREDATES_ACCOUNT
    # the allowance covers the day: signs in, weakly mapped, with the warning
    assert "only weakly mapped" in source("compatibility", 2 * 86400).check_certificate(
        young(), weak)
    # strongly mapped by the SID extension or by altSecurityIdentities: not subject to it
    assert source("compatibility").check_certificate(young(), strong) == ""
    ski = weak.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert source("compatibility").check_certificate(
        young((f"X509:<SKI>{ski.hex()}",)), weak) == ""
    assert source("full").check_certificate(young(), strong) == ""
    assert source("off").check_certificate(young(), weak) == ""
    with pytest.raises(SignInRefused) as full:
        source("full").check_certificate(young(), weak)
    assert full.value.reason_code is ReasonCode.WEAK_MAPPING  # refused as weak before


def test_sign_in_is_refused_before_the_pin_and_audited(
        pki: RealmPki, cards: CardDocs, tmp_path: Path) -> None:
    state, client, recorder = card(cards["good"])
    future = dataclasses.replace(account(), when_created=datetime.datetime.now(UTC)
                                 + datetime.timedelta(days=1))
    svc = directory_service(pki, tmp_path, future, {"alice"}, strong="compatibility")
    with pytest.raises(SignInRefused) as info:
        svc.sign_in(client, Secret(PIN), REQUEST)
    assert info.value.reason_code is ReasonCode.CERTIFICATE_PREDATES_ACCOUNT
    assert recorder.pin_verifies() == 0 and state.pin_retries_left == 3
    (record,) = svc.audit.records()  # type: ignore[union-attr]
    assert (record["result"], record["reason"], record["account"]) == (
        "refused", "certificate_predates_account", "alice")


def test_config_takes_seconds_up_to_fifty_years() -> None:
    base = {"enabled": True, "uris": ["ldaps://dc1"], "accounts": True,
            "strong_mapping": "compatibility"}
    assert DirectoryConfig.from_table(base).certificate_backdating_compensation == 600.0
    assert DirectoryConfig.from_table(
        {**base, "certificate_backdating_compensation": 0x5E0C89C0}
    ).certificate_backdating_compensation == 1577880000.0
    for bad in (-1, 0x5E0C89C0 + 1):
        with pytest.raises(ConfigError, match="certificate_backdating_compensation"):
            DirectoryConfig.from_table({**base, "certificate_backdating_compensation": bad})
    with pytest.raises(ConfigError, match="certificate_backdating_compensation"):
        DirectoryConfig.from_table({**base, "certificate_backdating_compensation": "10m"})
