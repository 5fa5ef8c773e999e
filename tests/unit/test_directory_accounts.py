"""The directory as the source of accounts: user objects, refusals, the cache, the sign-in."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.directory.accounts import (
    UF_ACCOUNTDISABLE,
    UF_LOCKOUT,
    CachedAccountSource,
    DirectoryAccount,
    domain_dns_name,
    filetime,
    parse_entry,
    sid_to_string,
)
from rdscard.directory.ntauth import DirectoryError
from rdscard.directory.settings import DirectoryConfig
from rdscard.errors import ConfigError
from rdscard.logon.audit import AuditLog
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.secret import Secret
from tests.unit.test_logon_service import PIN, REQUEST, CardDocs, card
from tests.unit.test_logon_service import cards as cards
from tests.unit.test_logon_service import pki as pki

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
#: long before any certificate of the test PKI (KB5014754's backdating rule does not apply)
CREATED = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
#: S-1-5-21-1004336348-1177238915-682003330-512 ([MS-DTYP] 2.4.2.4's example domain)
SID = (bytes([1, 5]) + (5).to_bytes(6, "big")
       + struct.pack("<5I", 21, 1004336348, 1177238915, 682003330, 512))


def account(uac: int = 0x200, expires: int = 0, name: str = "alice") -> DirectoryAccount:
    return DirectoryAccount(dn=f"CN={name},CN=Users,DC=example,DC=test", sam_account_name=name,
                            user_principal_name=f"{name}@example.test",
                            object_sid="S-1-5-21-1-2-3-1105", user_account_control=uac,
                            account_expires=expires, when_created=CREATED)


def to_filetime(moment: datetime.datetime) -> int:
    return int((moment - datetime.datetime(1601, 1, 1, tzinfo=datetime.UTC))
               / datetime.timedelta(microseconds=1)) * 10


def test_sid_string_form() -> None:
    assert sid_to_string(SID) == "S-1-5-21-1004336348-1177238915-682003330-512"
    assert sid_to_string(bytes([1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0])) == "S-1-5-18"
    for bad in (b"", SID[:-1], bytes([2]) + SID[1:], SID + b"\0"):
        with pytest.raises(ValueError):
            sid_to_string(bad)


def test_filetime_and_never() -> None:
    assert filetime(0) is None and filetime(0x7FFFFFFFFFFFFFFF) is None
    # 2026-12-01 12:00 UTC
    assert filetime(to_filetime(NOW)) == NOW
    assert filetime(116444736000000000) == datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def test_domain_dns_name() -> None:
    assert domain_dns_name("DC=Example,DC=Test") == "example.test"
    assert domain_dns_name("OU=x,DC=corp,DC=example,DC=test") == "corp.example.test"


@pytest.mark.parametrize(("uac", "expires", "reason"), [
    (0x200, 0, None),
    (0x200, 0x7FFFFFFFFFFFFFFF, None),
    (0x200 | UF_ACCOUNTDISABLE, 0, ReasonCode.ACCOUNT_DISABLED),
    (0x200 | UF_LOCKOUT, 0, ReasonCode.ACCOUNT_LOCKED),
    (0x200, to_filetime(NOW - datetime.timedelta(seconds=1)), ReasonCode.ACCOUNT_EXPIRED),
    (0x200, to_filetime(NOW + datetime.timedelta(days=1)), None),
    (0x200 | UF_ACCOUNTDISABLE | UF_LOCKOUT, 1, ReasonCode.ACCOUNT_DISABLED),
])
def test_usable_accounts(uac: int, expires: int, reason: ReasonCode | None) -> None:
    refusal = account(uac, expires).refusal(NOW)
    assert (refusal.reason_code if refusal else None) is reason
    if refusal is not None:
        assert "alice" in refusal.message


def test_parse_entry_reads_the_computed_lockout_bit() -> None:
    entry = parse_entry("CN=alice,DC=example,DC=test", {
        "sAMAccountName": [b"alice"], "objectSid": [SID], "userAccountControl": [b"512"],
        "msDS-User-Account-Control-Computed": [b"16"], "accountExpires": [b"0"],
        "altSecurityIdentities": [b"X509:<SKI>0123"], "whenCreated": [b"20261204222502.0Z"],
    })
    assert entry.when_created == datetime.datetime(2026, 12, 4, 22, 25, 2, tzinfo=datetime.UTC)
    assert entry.object_sid.endswith("-512") and entry.user_principal_name is None
    assert entry.user_account_control == 512 | UF_LOCKOUT
    assert entry.alt_security_identities == ("X509:<SKI>0123",)
    with pytest.raises(DirectoryError):
        parse_entry("CN=x", {"sAMAccountName": [b"x"]})


class FakeDirectory:
    def __init__(self) -> None:
        self.entries: dict[str, DirectoryAccount] = {}
        self.down = False
        self.calls = 0

    def find(self, upn: str) -> DirectoryAccount | None:
        self.calls += 1
        if self.down:
            raise DirectoryError("ldaps://dc1 cannot be reached")
        return self.entries.get(upn.casefold())


def cached(lifetime: float = 300.0) -> tuple[CachedAccountSource, FakeDirectory, list[float]]:
    fake, now = FakeDirectory(), [1000.0]
    config = DirectoryConfig(enabled=True, uris=("ldaps://dc1",), accounts=True,
                             account_cache_lifetime=lifetime)
    source = CachedAccountSource(config, directory=fake,  # type: ignore[arg-type]
                                 clock=lambda: now[0])
    return source, fake, now


def test_cache_serves_only_when_no_dc_answers_within_its_lifetime(
        caplog: pytest.LogCaptureFixture) -> None:
    source, fake, now = cached(300.0)
    fake.entries["alice@example.test"] = account()
    assert source.resolve("Alice@Example.Test").sam_account_name == "alice"
    # the DC is asked every time: a disabled account is seen at once
    fake.entries["alice@example.test"] = account(0x202)
    assert source.resolve("alice@example.test").user_account_control == 0x202
    fake.down = True
    now[0] += 299
    assert source.resolve("alice@example.test").user_account_control == 0x202
    assert "signs in with the directory account alice as read 299 s ago" in caplog.text
    now[0] += 2
    with pytest.raises(SignInRefused) as info:
        source.resolve("alice@example.test")
    assert info.value.reason_code is ReasonCode.DIRECTORY_UNAVAILABLE
    assert fake.calls == 4


def test_unknown_upn_is_refused_and_not_cached() -> None:
    source, fake, _ = cached()
    with pytest.raises(SignInRefused) as info:
        source.resolve("mallory@example.test")
    assert info.value.reason_code is ReasonCode.NOT_IN_DIRECTORY
    fake.down = True
    with pytest.raises(SignInRefused) as info:
        source.resolve("mallory@example.test")
    assert info.value.reason_code is ReasonCode.DIRECTORY_UNAVAILABLE


def test_zero_lifetime_never_serves_from_cache() -> None:
    source, fake, _ = cached(0.0)
    fake.entries["alice@example.test"] = account()
    source.resolve("alice@example.test")
    fake.down = True
    with pytest.raises(SignInRefused):
        source.resolve("alice@example.test")


def test_config_accounts_off_by_default_and_needs_the_directory() -> None:
    assert DirectoryConfig.from_table({}).accounts is False
    cfg = DirectoryConfig.from_table({"enabled": True, "uris": ["ldaps://dc1"],
                                      "accounts": True, "account_cache_lifetime": 60})
    assert cfg.accounts and cfg.account_cache_lifetime == 60.0
    with pytest.raises(ConfigError, match="enabled = true"):
        DirectoryConfig.from_table({"accounts": True})
    with pytest.raises(ConfigError, match="account_cache_lifetime"):
        DirectoryConfig.from_table({"enabled": True, "uris": ["ldaps://dc1"],
                                    "account_cache_lifetime": -1})


class Source:
    def __init__(self, entry: DirectoryAccount, strong: str = "off") -> None:
        self.entry = entry
        self.checks = CachedAccountSource(DirectoryConfig(strong_mapping=strong),
                                          directory=FakeDirectory())  # type: ignore[arg-type]

    def resolve(self, upn: str) -> DirectoryAccount:
        assert upn == "alice@example.test"
        return self.entry

    def check_certificate(self, account: DirectoryAccount, cert: x509.Certificate) -> str:
        return self.checks.check_certificate(account, cert)


def directory_service(pki: RealmPki, tmp_path: Path, entry: DirectoryAccount,
                      local: set[str], strong: str = "off", **table: object) -> LogonService:
    config = LogonConfig.from_table({"domain_realms": {"example.test": "EXAMPLE.TEST"},
                                     **table})
    return LogonService(config, CertificateValidator([pki.issuing_cert]),
                        mapper=AccountMapper(config, account_exists=lambda n: n in local),
                        audit=AuditLog(tmp_path / "audit.jsonl"),
                        accounts=Source(entry, strong),
                        clock=lambda: datetime.datetime.now(datetime.UTC))


def test_sign_in_runs_as_the_directory_account(pki: RealmPki, cards: CardDocs,
                                               tmp_path: Path) -> None:
    _, client, _ = card(cards["good"])
    svc = directory_service(pki, tmp_path, account(name="ALICE.Smith"), {"alice.smith"})
    signed = svc.sign_in(client, Secret(PIN), REQUEST)
    assert signed.account == "alice.smith" and signed.upn == "alice@example.test"


def test_kerberos_principal_is_the_sam_account_name(pki: RealmPki) -> None:
    config = LogonConfig.from_table({"mode": "kerberos",
                                     "domain_realms": {"example.test": "EXAMPLE.TEST"}})
    mapper = AccountMapper(config, account_exists=lambda n: n == "asmith")
    mapped = mapper.map_directory("alice@example.test", "asmith")
    assert (mapped.account, mapped.principal) == ("asmith", "asmith@EXAMPLE.TEST")


@pytest.mark.parametrize(("entry", "local", "reason"), [
    (account(0x202), {"alice"}, ReasonCode.ACCOUNT_DISABLED),
    (account(0x210), {"alice"}, ReasonCode.ACCOUNT_LOCKED),
    (account(0x200, 1), {"alice"}, ReasonCode.ACCOUNT_EXPIRED),
    (account(0x200), set(), ReasonCode.NO_ACCOUNT),
])
def test_unusable_accounts_are_refused_before_the_pin(
        pki: RealmPki, cards: CardDocs, tmp_path: Path,
        entry: DirectoryAccount, local: set[str], reason: ReasonCode) -> None:
    state, client, recorder = card(cards["good"])
    svc = directory_service(pki, tmp_path, entry, local)
    with pytest.raises(SignInRefused) as info:
        svc.sign_in(client, Secret(PIN), REQUEST)
    assert info.value.reason_code is reason
    assert recorder.pin_verifies() == 0 and state.pin_retries_left == 3
    (record,) = svc.audit.records()  # type: ignore[union-attr]
    assert (record["result"], record["reason"], record["account"]) == (
        "refused", reason.value, "alice")


def test_weak_mapping_in_compatibility_mode_signs_in_with_a_warning_in_the_audit(
        pki: RealmPki, cards: CardDocs, tmp_path: Path) -> None:
    _, client, _ = card(cards["good"])
    svc = directory_service(pki, tmp_path, account(), {"alice"}, strong="compatibility")
    svc.sign_in(client, Secret(PIN), REQUEST)
    (record,) = svc.audit.records()  # type: ignore[union-attr]
    assert record["result"] == "success"
    assert "only weakly mapped to alice" in record["warning"]


def test_weak_mapping_in_full_enforcement_is_refused_before_the_pin(
        pki: RealmPki, cards: CardDocs, tmp_path: Path) -> None:
    state, client, recorder = card(cards["good"])
    svc = directory_service(pki, tmp_path, account(), {"alice"}, strong="full")
    with pytest.raises(SignInRefused) as info:
        svc.sign_in(client, Secret(PIN), REQUEST)
    assert info.value.reason_code is ReasonCode.WEAK_MAPPING
    assert recorder.pin_verifies() == 0 and state.pin_retries_left == 3
    (record,) = svc.audit.records()  # type: ignore[union-attr]
    assert record["reason"] == "weak_mapping"
