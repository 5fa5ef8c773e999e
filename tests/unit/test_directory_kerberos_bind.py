"""[directory] bind_method = "kerberos": its settings and refusals, without a KDC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ldap3.core import exceptions as ldap_errors

from rdscard.directory.kerberos_bind import ccache_name, check_keytab, kerberos_bind
from rdscard.directory.ntauth import DirectoryError
from rdscard.directory.settings import DEFAULT_KEYTAB, DirectoryConfig
from rdscard.errors import ConfigError

BASE: dict[str, Any] = {"enabled": True, "uris": ["ldaps://dc1.example.test"]}


def kerberos(**extra: Any) -> DirectoryConfig:
    return DirectoryConfig.from_table({**BASE, "bind_method": "kerberos",
                                       "bind_principal": "RDSH$@EXAMPLE.TEST", **extra})


def test_simple_is_the_default_and_the_keytab_the_systems() -> None:
    cfg = DirectoryConfig.from_table(BASE)
    assert cfg.bind_method == "simple" and cfg.keytab == DEFAULT_KEYTAB
    assert kerberos().keytab == Path("/etc/krb5.keytab")
    assert kerberos(keytab="/etc/rdscard/rdsh.keytab").keytab == Path("/etc/rdscard/rdsh.keytab")


@pytest.mark.parametrize(("table", "fix"), [
    ({"bind_method": "ntlm"}, "simple, kerberos"),
    ({"bind_method": "kerberos"}, "bind_principal"),
    ({"bind_method": "kerberos", "bind_principal": "RDSH$"}, "bind_principal"),
    ({"bind_method": "kerberos", "bind_principal": "-X@R"}, "bind_principal"),
    ({"bind_method": "kerberos", "bind_principal": "a@R", "bind_dn": "x",
      "bind_password_file": "/p"}, "not bind_dn"),
])
def test_bad_kerberos_settings_name_the_fix(table: dict[str, Any], fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        DirectoryConfig.from_table({**BASE, **table})


def test_one_memory_cache_per_keytab_and_principal() -> None:
    a, b = kerberos(), kerberos(bind_principal="svc@EXAMPLE.TEST")
    assert ccache_name(a).startswith("MEMORY:") and ccache_name(a) == ccache_name(kerberos())
    assert ccache_name(a) != ccache_name(b)


def test_keytab_must_exist_and_be_private(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exportkeytab"):
        check_keytab(kerberos(keytab=str(tmp_path / "missing.keytab")))
    keytab = tmp_path / "rdsh.keytab"
    keytab.write_bytes(b"\x05\x02")
    keytab.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        check_keytab(kerberos(keytab=str(keytab)))
    keytab.chmod(0o600)
    check_keytab(kerberos(keytab=str(keytab)))


class _Refusing:
    """A connection whose bind the DC answers with ``result``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def bind(self) -> bool:
        raise self.exc


def test_a_dc_wanting_signing_inside_tls_is_explained() -> None:
    refused = ldap_errors.LDAPStrongerAuthRequiredResult(
        result=8, description="strongerAuthRequired",
        message="SASL:[GSSAPI]: Sign or Seal are required.")
    with pytest.raises(DirectoryError, match="allow_sasl_over_tls"):
        kerberos_bind(_Refusing(refused), "ldaps://dc1", kerberos())  # type: ignore[arg-type]


def test_other_ldap_refusals_pass_through() -> None:
    refused = ldap_errors.LDAPInvalidCredentialsResult(result=49, description="invalid")
    with pytest.raises(ldap_errors.LDAPInvalidCredentialsResult):
        kerberos_bind(_Refusing(refused), "ldaps://dc1", kerberos())  # type: ignore[arg-type]


def test_a_gss_failure_names_the_spn_and_the_kdc() -> None:
    import gssapi.raw as graw

    failure = graw.GSSError(851968, 2529638919)  # GSS_S_FAILURE, server not found
    with pytest.raises(DirectoryError, match="SPN ldap/"):
        kerberos_bind(_Refusing(failure), "ldaps://dc1", kerberos())  # type: ignore[arg-type]
