"""``rdscard ntauth add | list | remove`` against a state directory."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from rdscard.cli import ntauth
from rdscard.errors import ConfigError
from rdscard.logon.ntauth import NtAuthStore, fingerprint
from rdscard.pki.ca import RealmPki, generate_key
from rdscard.private_files import make_private_dir, tighten


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rdscard")
    ntauth.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ntauth", *argv])
    status: int = args.handler(args)
    return status


def test_add_list_remove(pki: RealmPki, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path)
    assert run("--state-dir", state, "list") == 0
    assert "is empty" in capsys.readouterr().out
    assert run("--state-dir", state, "add", str(pki.layout.issuing_cert)) == 0
    out = capsys.readouterr().out
    assert out.startswith("added CN=EXAMPLE.TEST Test Issuing CA")
    assert fingerprint(pki.issuing_cert) in out
    assert run("--state-dir", state, "add", str(pki.layout.issuing_cert)) == 0
    assert capsys.readouterr().out.startswith("already present")
    assert run("--state-dir", state, "list") == 0
    out = capsys.readouterr().out
    assert f"serial:    {pki.issuing_cert.serial_number:X}" in out
    assert "issuer:    CN=EXAMPLE.TEST Test Root CA" in out
    assert run("--state-dir", state, "remove", fingerprint(pki.issuing_cert)[:8]) == 0
    assert "removed CN=EXAMPLE.TEST Test Issuing CA" in capsys.readouterr().out
    assert NtAuthStore.in_state_dir(tmp_path).entries() == []


def test_add_a_bundle_and_a_der_file(pki: RealmPki, tmp_path: Path) -> None:
    der = tmp_path / "root.cer"
    der.write_bytes(pki.root_cert.public_bytes(serialization.Encoding.DER))
    assert run("--state-dir", str(tmp_path), "add", str(pki.layout.chain)) == 0
    assert run("--state-dir", str(tmp_path), "add", str(der)) == 0
    assert len(NtAuthStore.in_state_dir(tmp_path).entries()) == 2


def test_add_refuses_a_leaf_and_adds_nothing_of_its_file(pki: RealmPki, tmp_path: Path) -> None:
    leaf = pki.issue_user_certificate("alice", generate_key("p256").public_key())
    bundle = tmp_path / "mixed.pem"
    bundle.write_bytes(pki.root_cert.public_bytes(serialization.Encoding.PEM)
                       + leaf.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError, match="is not a CA certificate"):
        run("--state-dir", str(tmp_path), "add", str(bundle))
    assert NtAuthStore.in_state_dir(tmp_path).entries() == []


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        run("--state-dir", str(tmp_path), "add", str(tmp_path / "missing.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(ConfigError, match="is not a certificate"):
        run("--state-dir", str(tmp_path), "add", str(junk))
    with pytest.raises(ConfigError, match="no CA in the NTAuth store matches"):
        run("--state-dir", str(tmp_path), "remove", "abcdef12")


def test_config_file_ntauth_dir_is_honoured(pki: RealmPki, tmp_path: Path) -> None:
    config = tmp_path / "rdscard.toml"
    config.write_text(f'[logon]\nntauth_dir = "{tmp_path / "elsewhere"}"\n')
    assert run("--config", str(config), "add", str(pki.layout.root_cert)) == 0
    assert NtAuthStore(tmp_path / "elsewhere").contains(pki.root_cert)


def test_add_before_the_first_serve_makes_a_private_state_dir(
    pki: RealmPki, tmp_path: Path
) -> None:
    state = tmp_path / "var" / "lib" / "rdscard"  # none of it exists yet
    old_umask = os.umask(0o022)
    try:
        assert run("--state-dir", str(state), "add", str(pki.layout.chain)) == 0
    finally:
        os.umask(old_umask)
    for directory in (tmp_path / "var", tmp_path / "var" / "lib", state, state / "ntauth"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    files = list((state / "ntauth").iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_serve_tightens_a_state_dir_others_can_read(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    tighten(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    make_private_dir(state)  # an existing directory is left as it is
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
