"""UPN -> account and realm (local and kerberos modes, domain hints) and the [logon] table."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ConfigError
from rdscard.logon.mapping import AccountMapper, Hint, local_account_exists, split_upn
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import AccountMode, CardRemoval, LogonConfig, PrincipalForm

ACCOUNTS = {"alice", "bob", "svc-carol", "root"}
REALMS = {"example.test": "EXAMPLE.TEST", ".corp.test": "CORP.TEST"}


def mapper(**table: object) -> AccountMapper:
    config = LogonConfig.from_table({"domain_realms": REALMS, **table})
    return AccountMapper(config, account_exists=lambda name: name in ACCOUNTS)


def refusal(m: AccountMapper, upn: str | None, hint: Hint | None = None) -> SignInRefused:
    with pytest.raises(SignInRefused) as info:
        m.map(upn, hint)
    return info.value


# -- the seed's rule -----------------------------------------------------------------------
def test_local_mode_maps_the_name_part_to_an_existing_account() -> None:
    result = mapper().map("alice@example.test")
    assert (result.account, result.realm, result.principal) == ("alice", "EXAMPLE.TEST", None)
    assert result.mode is AccountMode.LOCAL and not result.used_hint


def test_sub_domains_match_a_dotted_key() -> None:
    assert mapper().map("bob@eu.corp.test").realm == "CORP.TEST"
    assert mapper().map("bob@corp.test").realm == "CORP.TEST"
    assert mapper().realm_for_domain("notcorp.test") is None


def test_longest_domain_key_wins() -> None:
    m = mapper(domain_realms={".test": "TEST", ".corp.test": "CORP.TEST"})
    assert m.realm_for_domain("a.corp.test") == "CORP.TEST"
    assert m.realm_for_domain("other.test") == "TEST"


def test_unknown_domain_is_refused_with_the_fix() -> None:
    error = refusal(mapper(), "alice@elsewhere.test")
    assert error.reason_code is ReasonCode.UNKNOWN_DOMAIN
    assert '"elsewhere.test" = "REALM"' in error.message
    assert "allow_domain_hints" in error.message


@pytest.mark.parametrize("upn", ["alice", "alice@", "@example.test", "a@b@example.test",
                                 "alice@localhost", "EXAMPLE\\alice"])
def test_upn_not_name_at_domain_is_refused(upn: str) -> None:
    assert refusal(mapper(), upn).reason_code is ReasonCode.BAD_UPN


def test_no_upn_is_refused() -> None:
    error = refusal(mapper(), None)
    assert error.reason_code is ReasonCode.NO_UPN
    assert "1.3.6.1.4.1.311.20.2.3" in error.message


def test_missing_local_account_is_refused() -> None:
    error = refusal(mapper(), "zoe@example.test")
    assert error.reason_code is ReasonCode.NO_ACCOUNT
    assert "[logon.accounts]" in error.message


def test_explicit_table_wins_and_is_case_insensitive() -> None:
    m = mapper(accounts={"Alice.Smith@Example.Test": "alice", "x@nowhere.test": "bob"})
    assert m.map("alice.smith@example.test").account == "alice"
    # An explicit entry is the administrator's decision, even for an unknown domain (local).
    result = m.map("x@nowhere.test")
    assert (result.account, result.realm) == ("bob", None)


# -- domain hints ------------------------------------------------------------------------------
def test_hint_ignored_when_policy_is_off() -> None:
    error = refusal(mapper(), "alice@elsewhere.test", Hint.parse("EXAMPLE\\alice"))
    assert error.reason_code is ReasonCode.UNKNOWN_DOMAIN


def test_hint_picks_the_realm_when_policy_is_on() -> None:
    m = mapper(allow_domain_hints=True)
    for hint in (Hint.parse("EXAMPLE\\alice"), Hint.parse("", "example.test"),
                 Hint.parse("alice@example.test"), Hint.parse("alice", "EXAMPLE.TEST")):
        result = m.map("alice@elsewhere.test", hint)
        assert (result.account, result.realm, result.used_hint) == ("alice", "EXAMPLE.TEST",
                                                                     True)


def test_unknown_hint_domain_is_refused() -> None:
    error = refusal(mapper(allow_domain_hints=True), "alice@elsewhere.test",
                    Hint.parse("NOWHERE\\alice"))
    assert error.reason_code is ReasonCode.UNKNOWN_DOMAIN and "NOWHERE" in error.message


def test_hint_without_domain_does_not_help() -> None:
    error = refusal(mapper(allow_domain_hints=True), "alice@elsewhere.test",
                    Hint.parse("alice"))
    assert error.reason_code is ReasonCode.UNKNOWN_DOMAIN


def test_local_mode_hint_cannot_pick_another_account() -> None:
    m = mapper(allow_domain_hints=True)
    error = refusal(m, "alice@elsewhere.test", Hint.parse("EXAMPLE\\root"))
    assert error.reason_code is ReasonCode.BAD_HINT
    assert refusal(m, None, Hint.parse("EXAMPLE\\root")).reason_code is ReasonCode.BAD_HINT


def test_kerberos_mode_hint_names_the_principal() -> None:
    m = mapper(mode="kerberos", allow_domain_hints=True)
    result = m.map(None, Hint.parse("EXAMPLE\\bob"))
    assert (result.account, result.principal) == ("bob", "bob@EXAMPLE.TEST")
    result = m.map("alice@elsewhere.test", Hint.parse("CORP\\alice"))
    assert result.principal == "alice@CORP.TEST"


def test_hint_parse_forms() -> None:
    assert Hint.parse("") is None
    assert Hint.parse("EXAMPLE\\alice") == Hint(user="alice", domain="EXAMPLE")
    assert Hint.parse("alice", "EXAMPLE") == Hint(user="alice", domain="EXAMPLE")
    assert Hint.parse("alice@example.test") == Hint(user="alice", domain="example.test")
    assert Hint.parse("", "EXAMPLE") == Hint(user=None, domain="EXAMPLE")
    with pytest.raises(SignInRefused):
        Hint.parse("EXAMPLE\\al/ice")


# -- kerberos principals -------------------------------------------------------------------------
def test_kerberos_mode_principal_forms() -> None:
    result = mapper(mode="kerberos").map("alice@example.test")
    assert (result.principal, result.enterprise) == ("alice@EXAMPLE.TEST", False)
    result = mapper(mode="kerberos", principal_form="enterprise").map("alice@example.test")
    assert (result.principal, result.enterprise) == ("alice\\@example.test@EXAMPLE.TEST", True)


def test_kerberos_mode_needs_a_realm_even_with_an_explicit_account() -> None:
    m = mapper(mode="kerberos", accounts={"x@nowhere.test": "bob"})
    assert refusal(m, "x@nowhere.test").reason_code is ReasonCode.UNKNOWN_DOMAIN


def test_local_account_exists_uses_the_password_database() -> None:
    assert local_account_exists("root")
    assert not local_account_exists("no-such-account-rdscard")


# -- [logon] table ----------------------------------------------------------------------------
def test_defaults() -> None:
    config = LogonConfig.from_table({})
    assert config.mode is AccountMode.LOCAL and not config.allow_domain_hints
    assert config.principal_form is PrincipalForm.NAME
    assert config.card_removal is CardRemoval.NONE
    assert config.ntauth_directory(Path("/state")) == Path("/state/ntauth")
    assert config.kdc.pkcs11_module == "opensc-pkcs11.so" and config.kdc.timeout == 30.0


def test_full_table() -> None:
    config = LogonConfig.from_table({
        "mode": "kerberos", "allow_domain_hints": True, "card_removal": "lock",
        "ntauth_dir": "/etc/rdscard/ntauth", "crl_files": ["/c.crl"], "roots": ["/r.pem"],
        "require_revocation_check": True, "domain_realms": {"Example.Test": "example.test"},
        "kdc": {"krb5_config": "/k.conf", "anchors": ["/a.pem"], "timeout": 5},
    })
    assert config.domain_realms == {"example.test": "EXAMPLE.TEST"}
    assert config.card_removal is CardRemoval.LOCK
    assert config.ntauth_directory(Path("/state")) == Path("/etc/rdscard/ntauth")
    assert config.kdc.krb5_config == Path("/k.conf") and config.kdc.timeout == 5.0
    assert config.kdc.anchors == (Path("/a.pem"),)


@pytest.mark.parametrize(("table", "message"), [
    ({"mode": "ldap"}, '"local", "kerberos"'),
    ({"card_removal": "explode"}, "card_removal"),
    ({"allow_domain_hints": "yes"}, "expected bool"),
    ({"colour": 1}, "unknown key"),
    ({"domain_realms": {"example.test": 5}}, "must be a string"),
    ({"domain_realms": {"bad domain": "R"}}, "domain_realms"),
    ({"accounts": {"alice": "alice"}}, "user@domain"),
    ({"kdc": {"timeout": 0}}, "timeout"),
    ({"kdc": {"timeout": True}}, "expected"),
    ({"kdc": {"bogus": 1}}, "[logon.kdc]"),
    ({"crl_files": "one.crl"}, "expected list"),
])
def test_bad_tables_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        LogonConfig.from_table(table)
    assert message in str(info.value)


# -- properties ------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.text(max_size=40), st.text(max_size=40))
def test_mapping_raises_only_sign_in_refused(upn: str, user: str, domain: str) -> None:
    m = mapper(allow_domain_hints=True, mode="kerberos")
    with contextlib.suppress(SignInRefused):
        m.map(upn, Hint.parse(user, domain))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_split_upn_never_raises(upn: str) -> None:
    parts = split_upn(upn)
    if parts is not None:
        assert f"{parts[0]}@{parts[1]}" == upn


def test_upn_name_in_another_case_finds_the_lower_case_account() -> None:
    assert mapper().map("Alice@Example.Test").account == "alice"
    m = AccountMapper(LogonConfig.from_table({"domain_realms": REALMS}),
                      account_exists=lambda name: name == "Alice")
    assert m.map("Alice@example.test").account == "Alice"  # an exact match wins
