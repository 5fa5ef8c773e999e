"""A Kerberos bind to the directory (Samba 4.17 AD DC): SASL GSSAPI inside TLS with a
service account's key exported by `samba-tool domain exportkeytab`, no password file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.directory.accounts import DirectoryAccounts
from rdscard.directory.ntauth import DirectoryError
from rdscard.directory.settings import DirectoryConfig
from rdscard.errors import ConfigError
from rdscard.testbed.pcscd import PeerError
from rdscard.testbed.samba import SambaDc

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("samba-dc")]

SERVICE = "rdsh-svc"


@pytest.fixture(scope="module")
def service_account(samba_dc: SambaDc) -> str:
    """A service account of the domain, and the SPN clients use for the DC (ldap/localhost)."""
    for argv in (("user", "create", SERVICE, "Svc.Pass.W0rd.1"),
                 ("spn", "add", "ldap/localhost", f"{samba_dc.host_name.upper()}$")):
        try:
            samba_dc.samba_tool(*argv)
        except PeerError as exc:
            if "already" not in str(exc).lower():
                raise
    return f"{SERVICE}@{samba_dc.realm}"


@pytest.fixture
def keytab(samba_dc: SambaDc, service_account: str, tmp_path: Path) -> Path:
    path = samba_dc.export_keytab(service_account, tmp_path / "rdsh.keytab")
    path.chmod(0o600)
    return path


@pytest.fixture
def kerberos_client(samba_dc: SambaDc, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's krb5.conf names the DC's KDC (the keytab is never in the environment)."""
    monkeypatch.setenv("KRB5_CONFIG", str(samba_dc.krb5_conf))
    yield
    assert "KRB5_KTNAME" not in os.environ and "KRB5_CLIENT_KTNAME" not in os.environ


def config_for(dc: SambaDc, keytab: Path, principal: str) -> DirectoryConfig:
    return DirectoryConfig.from_table({
        "enabled": True, "uris": [dc.ldaps_uri], "ca_file": str(dc.tls_ca),
        "bind_method": "kerberos", "keytab": str(keytab), "bind_principal": principal,
    })


def test_a_keytab_bind_reads_the_directory(samba_dc: SambaDc, service_account: str,
                                           keytab: Path, kerberos_client: None) -> None:
    accounts = DirectoryAccounts(config_for(samba_dc, keytab, service_account))
    found = accounts.find(samba_dc.admin_upn)
    assert found is not None and found.sam_account_name == "Administrator"
    assert found.object_sid.startswith("S-1-5-21-") and found.object_sid.endswith("-500")
    assert accounts.find(f"nobody@{samba_dc.dns_domain}") is None


def test_without_a_bind_the_domain_cannot_be_read(samba_dc: SambaDc) -> None:
    anonymous = DirectoryConfig.from_table({"enabled": True, "uris": [samba_dc.ldaps_uri],
                                            "ca_file": str(samba_dc.tls_ca)})
    with pytest.raises(DirectoryError):
        DirectoryAccounts(anonymous).find(samba_dc.admin_upn)


def test_a_stale_keytab_is_refused_clearly(samba_dc: SambaDc, service_account: str,
                                           tmp_path: Path, kerberos_client: None) -> None:
    samba_dc.samba_tool("user", "create", "rdsh-old", "Old.Pass.W0rd.1")
    try:
        old = samba_dc.export_keytab(f"rdsh-old@{samba_dc.realm}", tmp_path / "old.keytab")
        old.chmod(0o600)
        samba_dc.samba_tool("user", "setpassword", "rdsh-old", "--newpassword=New.Pass.W0rd.2")
        accounts = DirectoryAccounts(config_for(samba_dc, old, f"rdsh-old@{samba_dc.realm}"))
        with pytest.raises(DirectoryError) as info:
            accounts.find(samba_dc.admin_upn)
        message = str(info.value)
        assert "rdsh-old" in message and "current key" in message, message
        assert "Preauthentication failed" in message
    finally:
        samba_dc.samba_tool("user", "delete", "rdsh-old")


def test_a_keytab_others_may_read_is_refused(samba_dc: SambaDc, service_account: str,
                                             keytab: Path, kerberos_client: None) -> None:
    keytab.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        DirectoryAccounts(config_for(samba_dc, keytab, service_account)).find(
            samba_dc.admin_upn)
