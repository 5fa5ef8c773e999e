"""NLA's Kerberos principal through the directory, as a card's UPN ([directory] accounts)."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from cryptography import x509

from rdscard.directory.accounts import DirectoryAccount
from rdscard.directory.principals import account_for_principal, lookup_name
from rdscard.logon.audit import AuditLog
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.service import LogonService
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki
from rdscard.secret import Secret
from tests.unit.test_directory_accounts import account
from tests.unit.test_logon_service import PIN, REQUEST, CardDocs, card
from tests.unit.test_logon_service import cards as cards
from tests.unit.test_logon_service import pki as pki

NOW = datetime.datetime(2026, 12, 4, 12, tzinfo=datetime.UTC)
CONFIG = LogonConfig.from_table({"mode": "kerberos",
                                 "domain_realms": {"example.test": "EXAMPLE.TEST"}})


class Directory:
    """Users by UPN, explicit or implicit (sAMAccountName@domain), as DirectoryAccounts finds."""

    def __init__(self, *entries: DirectoryAccount) -> None:
        self.entries = entries
        self.asked: list[str] = []

    def resolve(self, upn: str) -> DirectoryAccount:
        self.asked.append(upn)
        name, _, domain = upn.rpartition("@")
        for entry in self.entries:
            if (entry.user_principal_name or "").casefold() == upn.casefold() or (
                    domain.casefold() == "example.test"
                    and entry.sam_account_name.casefold() == name.casefold()):
                return entry
        raise SignInRefused(ReasonCode.NOT_IN_DIRECTORY, f"no directory account has {upn}")

    def check_certificate(self, entry: DirectoryAccount, cert: x509.Certificate) -> str:
        return ""


def smith() -> DirectoryAccount:
    """alice@example.test, whose sAMAccountName is ASmith (not the UPN's name part)."""
    return dataclasses.replace(account(name="ASmith"), user_principal_name="alice@example.test")


def mapper(*local: str) -> AccountMapper:
    return AccountMapper(CONFIG, account_exists=lambda n: n in local)


@pytest.mark.parametrize(("principal", "asked"), [
    ("ASmith@EXAMPLE.TEST", "ASmith@EXAMPLE.TEST"),
    ("alice\\@example.test@EXAMPLE.TEST", "alice@example.test"),
])
def test_the_principal_is_looked_up_as_the_card_upn_is(principal: str, asked: str) -> None:
    assert lookup_name(principal) == asked
    directory = Directory(smith())
    assert account_for_principal(principal, mapper("asmith"), directory, NOW) == "asmith"
    assert directory.asked == [asked]


@pytest.mark.parametrize("principal", [
    "EXAMPLE.TEST", "@EXAMPLE.TEST", "host/rdsh@EXAMPLE.TEST", "a@b@EXAMPLE.TEST",
    "a\\@b\\@c@EXAMPLE.TEST", "dom\\user@EXAMPLE.TEST", "x" * 1100 + "@EXAMPLE.TEST",
])
def test_odd_principals_name_no_user(principal: str) -> None:
    with pytest.raises(SignInRefused) as info:
        account_for_principal(principal, mapper("asmith"), Directory(smith()), NOW)
    assert info.value.reason_code is ReasonCode.NO_ACCOUNT


def test_a_realm_outside_domain_realms_is_refused_before_the_directory() -> None:
    directory = Directory(smith())
    with pytest.raises(SignInRefused) as info:
        account_for_principal("ASmith@OTHER.TEST", mapper("asmith"), directory, NOW)
    assert info.value.reason_code is ReasonCode.NO_ACCOUNT and directory.asked == []


@pytest.mark.parametrize(("entry", "local", "reason"), [
    (dataclasses.replace(smith(), user_account_control=0x202), {"asmith"},
     ReasonCode.ACCOUNT_DISABLED),
    (dataclasses.replace(smith(), user_account_control=0x210), {"asmith"},
     ReasonCode.ACCOUNT_LOCKED),
    (smith(), set(), ReasonCode.NO_ACCOUNT),
])
def test_unusable_directory_accounts_are_refused(entry: DirectoryAccount, local: set[str],
                                                 reason: ReasonCode) -> None:
    with pytest.raises(SignInRefused) as info:
        account_for_principal("ASmith@EXAMPLE.TEST", mapper(*local), Directory(entry), NOW)
    assert info.value.reason_code is reason


def test_a_principal_not_in_the_directory_is_refused() -> None:
    with pytest.raises(SignInRefused) as info:
        account_for_principal("mallory@EXAMPLE.TEST", mapper("mallory"), Directory(smith()),
                              NOW)
    assert info.value.reason_code is ReasonCode.NOT_IN_DIRECTORY


def nla_service(pki: RealmPki, tmp_path: Path, directory: Directory,
                ) -> LogonService:
    config = LogonConfig.from_table({"domain_realms": {"example.test": "EXAMPLE.TEST"}})
    return LogonService(config, CertificateValidator([pki.issuing_cert]),
                        mapper=AccountMapper(config, account_exists=lambda n: n in {
                            "asmith", "bob"}),
                        audit=AuditLog(tmp_path / "audit.jsonl"), accounts=directory,
                        clock=lambda: datetime.datetime.now(datetime.UTC))


def test_card_and_principal_of_one_directory_user_sign_in(
        pki: RealmPki, cards: CardDocs, tmp_path: Path) -> None:
    # the principal is sAMAccountName@REALM, the card's UPN alice@example.test: one user
    directory = Directory(smith())
    nla_account = account_for_principal("ASmith@EXAMPLE.TEST", mapper("asmith"), directory, NOW)
    _, client, _ = card(cards["good"])
    request = dataclasses.replace(REQUEST, nla_principal="ASmith@EXAMPLE.TEST",
                                  nla_account=nla_account)
    signed = nla_service(pki, tmp_path, directory).sign_in(client, Secret(PIN), request)
    assert signed.account == "asmith" and signed.upn == "alice@example.test"


def test_a_card_of_another_directory_user_is_refused(
        pki: RealmPki, cards: CardDocs, tmp_path: Path) -> None:
    directory = Directory(smith(), account(name="bob"))
    nla_account = account_for_principal("bob@EXAMPLE.TEST", mapper("bob"), directory, NOW)
    state, client, recorder = card(cards["good"])
    request = dataclasses.replace(REQUEST, nla_principal="bob@EXAMPLE.TEST",
                                  nla_account=nla_account)
    service = nla_service(pki, tmp_path, directory)
    with pytest.raises(SignInRefused) as info:
        service.sign_in(client, Secret(PIN), request)
    assert info.value.reason_code is ReasonCode.NLA_MISMATCH
    assert recorder.pin_verifies() == 0 and state.pin_retries_left == 3
    (record,) = service.audit.records()  # type: ignore[union-attr]
    assert record["reason"] == "nla_mismatch" and record["principal"] == "bob@EXAMPLE.TEST"


def test_the_monitor_maps_nla_principals_through_the_directory_when_it_is_the_source(
        tmp_path: Path) -> None:
    from rdscard.config import Config, RedirectionConfig, ServerConfig
    from rdscard.privsep.privileged import PrivilegedService

    config = Config(server=ServerConfig(state_dir=tmp_path / "state"),
                    redirection=RedirectionConfig(socket_dir=tmp_path / "run"),
                    logon=LogonConfig.from_table({
                        "mode": "kerberos", "domain_realms": {"example.test": "EXAMPLE.TEST"},
                        "accounts": {"ASmith@example.test": "root"}}))
    svc = PrivilegedService(config, AuditLog(tmp_path / "audit.jsonl"), lambda _s, _r: None)
    # without the directory, [logon.accounts] decides
    assert svc._nla_account("ASmith@EXAMPLE.TEST") == "root"
    directory = Directory(dataclasses.replace(smith(), sam_account_name="root"))
    svc.accounts = directory  # type: ignore[assignment]
    assert svc._nla_account("alice\\@example.test@EXAMPLE.TEST") == "root"
    assert directory.asked == ["alice@example.test"]
    with pytest.raises(SignInRefused) as info:
        svc._nla_account("mallory@EXAMPLE.TEST")
    assert info.value.reason_code is ReasonCode.NOT_IN_DIRECTORY
