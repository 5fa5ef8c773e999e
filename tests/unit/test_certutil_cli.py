"""``rdscard certutil``: Windows' verbs for the NTAuth store, and the ``[directory]`` section."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from rdscard.cli import certutil
from rdscard.cli.main import main
from rdscard.config import parse_config
from rdscard.directory.ntauth import ntauth_dn, read_password
from rdscard.directory.settings import DirectoryConfig
from rdscard.errors import ConfigError
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import RealmPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rdscard")
    certutil.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["certutil", *argv])
    status: int = args.handler(args)
    return status


def test_addstore_viewstore_delstore_by_index_thumbprint_and_serial(
        pki: RealmPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = ("--state-dir", str(tmp_path))
    assert run(*state, "-addstore", "-enterprise", "NTAuth", str(pki.layout.chain)) == 0
    assert run(*state, "-viewstore", "-enterprise", "NTAuth") == 0
    out = capsys.readouterr().out
    assert "2 CAs" in out and "Certificate 1" in out
    entries = NtAuthStore.in_state_dir(tmp_path).entries()
    assert f"Cert Hash(sha1): {entries[0].sha1}" in out
    # a thumbprint as Windows prints it (spaced) picks the first; an index the other
    spaced = " ".join(entries[0].sha1[i:i + 2] for i in range(0, 40, 2))
    assert run(*state, "-delstore", "-enterprise", "ntauth", spaced) == 0
    assert run(*state, "-addstore", "-enterprise", "NTAuth", str(pki.layout.chain)) == 0
    assert run(*state, "-delstore", "-enterprise", "NTAuth", f"{entries[1].serial:X}") == 0
    assert run(*state, "-delstore", "-enterprise", "NTAuth", "0") == 0
    assert NtAuthStore.in_state_dir(tmp_path).entries() == []


def test_the_store_name_and_arguments_are_checked(pki: RealmPki, tmp_path: Path) -> None:
    state = ("--state-dir", str(tmp_path))
    with pytest.raises(ConfigError, match="enterprise NTAuth store only"):
        run(*state, "-addstore", "Root", str(pki.layout.root_cert))
    with pytest.raises(ConfigError, match="enterprise NTAuth store only"):
        run(*state, "-viewstore", "NTAuth")
    with pytest.raises(ConfigError, match="wrong number of arguments"):
        run(*state, "-delstore", "-enterprise", "NTAuth")
    with pytest.raises(ConfigError, match="NTAuthCA"):
        run(*state, "-dspublish", str(pki.layout.issuing_cert), "RootCA")
    with pytest.raises(ConfigError, match=r"\[directory\]"):
        run(*state, "-pulse")
    with pytest.raises(SystemExit):
        run(*state, "-pulse", "-viewstore")


def test_the_command_line_reaches_certutil(pki: RealmPki, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certutil", "--state-dir", str(tmp_path), "-addstore", "-enterprise",
                 "NTAuth", str(pki.layout.issuing_cert)]) == 0
    assert main(["certutil", "--state-dir", str(tmp_path), "-viewstore", "-enterprise",
                 "NTAuth"]) == 0
    assert "Test Issuing CA" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["certutil", "--help"])
    help_text = capsys.readouterr().out
    for verb in ("-addstore", "-viewstore", "-delstore", "-dspublish", "-pulse"):
        assert verb in help_text


def test_replace_all_makes_the_store_the_given_set(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "ntauth")
    store.add(pki.root_cert)
    added, removed = store.replace_all([pki.issuing_cert])
    assert [e.subject for e in added] == [pki.issuing_cert.subject.rfc4514_string()]
    assert [e.subject for e in removed] == [pki.root_cert.subject.rfc4514_string()]
    assert store.certificates() == [pki.issuing_cert]
    with pytest.raises(ConfigError, match="not a CA"):
        store.replace_all([pki.kdc_cert])
    assert store.certificates() == [pki.issuing_cert]


def test_directory_section_is_off_by_default_and_checked(tmp_path: Path) -> None:
    assert parse_config("").directory == DirectoryConfig()
    assert not DirectoryConfig().enabled
    cfg = parse_config('[directory]\nenabled = true\nuris = ["ldaps://dc1.example.test", '
                       '"ldap://dc2.example.test:3890"]\nbind_dn = "admin@example.test"\n'
                       'bind_password_file = "/etc/rdscard/ldap.pw"\nrefresh_interval = 600\n')
    assert cfg.directory.uris[1].endswith(":3890") and cfg.directory.refresh_interval == 600.0
    for text, message in [
        ('enabled = true', "uris"),
        ('uris = ["http://dc1"]', "not an LDAP URI"),
        ('bind_dn = "x"', "bind_password_file"),
        ('refresh_interval = 5', "between 60"),
        ('colour = 1', "unknown"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(f"[directory]\n{text}\n")


def test_ntauth_dn_and_password_file(tmp_path: Path) -> None:
    assert ntauth_dn("DC=example,DC=test") == (
        "CN=NTAuthCertificates,CN=Public Key Services,CN=Services,CN=Configuration,"
        "DC=example,DC=test")
    assert ntauth_dn("CN=Configuration,DC=x") == ntauth_dn("DC=x")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\nignored\n")
    pw.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_password(pw)
    pw.chmod(0o600)
    assert read_password(pw).reveal() == b"s3cret"


def test_the_refresher_keeps_the_last_good_copy_when_the_directory_is_down(
        pki: RealmPki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import threading

    from rdscard.directory.ntauth import DirectoryError, NtAuthRefresher, PulseResult

    store = NtAuthStore(tmp_path / "ntauth")
    answers: list[list[object]] = [[pki.issuing_cert], []]

    def refresh() -> PulseResult:
        if not answers:
            raise DirectoryError("ldaps://dc1.example.test cannot be reached")
        certs = answers.pop(0)
        added, removed = store.replace_all(certs)  # type: ignore[arg-type]
        return PulseResult("CN=NTAuthCertificates,...", store.entries(), added, removed)

    refresher = NtAuthRefresher(DirectoryConfig(enabled=True, uris=("ldaps://dc1",)), store,
                                threading.Lock(), refresh=refresh)
    assert refresher.refresh_once()
    assert store.certificates() == [pki.issuing_cert]
    assert refresher.refresh_once()
    assert store.certificates() == []
    store.add(pki.issuing_cert)
    assert not refresher.refresh_once()
    assert store.certificates() == [pki.issuing_cert]
    assert "keeps its last copy (1 CAs)" in caplog.text
