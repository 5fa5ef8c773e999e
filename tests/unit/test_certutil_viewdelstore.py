"""``certutil -viewstore/-viewdelstore "ldap:///CN=NTAuthCertificates,..."``: the URL and the
arguments (the removal itself runs against Samba in the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdscard.directory.store_url import EXAMPLE, parse_store_url
from rdscard.errors import ConfigError
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki
from tests.unit.test_certutil_cli import pki as pki
from tests.unit.test_certutil_cli import run

DN = ("CN=NTAuthCertificates,CN=Public Key Services,CN=Services,CN=Configuration,"
      "DC=example,DC=test")


@pytest.mark.parametrize("url", [
    EXAMPLE,
    f"ldap:///{DN}?cACertificate?base?objectclass=certificationAuthority",
    f"LDAP:///{DN}?cACertificate?base?(objectClass=certificationAuthority)",
    f"ldap:///{DN}",
    f"ldap:///{DN}?cacertificate",
    "ldap:///cn=ntauthcertificates, cn=public key services, cn=services, "
    "cn=configuration, dc=example, dc=test?cACertificate?base",
    f"ldap:///{DN.replace(' ', '%20')}?cACertificate?base?objectClass=certificationAuthority",
])
def test_store_urls_as_certutil_writes_them(url: str) -> None:
    store = parse_store_url(url)
    assert store.base_dn.casefold().replace(" ", "") == "dc=example,dc=test"
    assert store.dn.casefold().replace(" ", "") == DN.casefold().replace(" ", "")


@pytest.mark.parametrize(("url", "why"), [
    (f"ldaps:///{DN}", "not an ldap:/// URL"),
    (f"ldap://dc1.example.test/{DN}", "leave the host out"),
    ("ldap://", "names no object"),
    ("ldap:///CN=Certification Authorities,CN=Public Key Services,CN=Services,"
     "CN=Configuration,DC=example,DC=test?cACertificate?one", "does not name"),
    ("ldap:///CN=NTAuthCertificates,CN=Public Key Services,CN=Services,CN=Configuration",
     "does not name"),
    (f"ldap:///{DN},OU=x", "does not name"),
    (f"ldap:///{DN}?userCertificate?base", "not cACertificate"),
    (f"ldap:///{DN}?cACertificate?one", "not base"),
    (f"ldap:///{DN}?cACertificate?base?objectClass=user", "not objectClass"),
    (f"ldap:///{DN}?cACertificate?base?objectClass=certificationAuthority?x-ext",
     "has extensions"),
    (f"ldap:///{DN}?a?b?c?d?e", "too many"),
    ("ldap:///" + "x" * 3000, "not an ldap:/// URL"),
])
def test_other_urls_are_refused_with_the_form_to_use(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        parse_store_url(url)
    assert EXAMPLE in str(info.value)


def test_the_ldap_store_needs_a_directory_and_takes_no_enterprise(tmp_path: Path) -> None:
    state = ("--state-dir", str(tmp_path))
    with pytest.raises(ConfigError, match="no directory configured"):
        run(*state, "-viewdelstore", EXAMPLE, "0")
    with pytest.raises(ConfigError, match="no directory configured"):
        run(*state, "-viewstore", EXAMPLE)
    with pytest.raises(ConfigError, match="takes no -enterprise"):
        run(*state, "-viewdelstore", "-enterprise", EXAMPLE, "0")
    with pytest.raises(ConfigError, match="wrong number of arguments"):
        run(*state, "-viewdelstore", EXAMPLE, "0", "extra")
    with pytest.raises(ConfigError, match="leave the host out"):
        run(*state, "-viewdelstore", "ldap://dc1/" + EXAMPLE[8:], "0")


def test_viewdelstore_on_the_enterprise_store_is_delstore(pki: RealmPki, tmp_path: Path) -> None:
    state = ("--state-dir", str(tmp_path))
    assert run(*state, "-addstore", "-enterprise", "NTAuth", str(pki.layout.issuing_cert)) == 0
    with pytest.raises(ConfigError, match="wrong number of arguments"):
        run(*state, "-viewdelstore", "-enterprise", "NTAuth")
    assert run(*state, "-viewdelstore", "-enterprise", "NTAuth", "0") == 0
    assert NtAuthStore.in_state_dir(tmp_path).entries() == []
