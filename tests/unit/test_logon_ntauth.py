"""The NTAuth store: add, list, find, remove, contains; files named by fingerprint."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ConfigError
from rdscard.logon.ntauth import (
    NtAuthStore,
    fingerprint,
    is_ca_certificate,
    parse_certificates,
)
from rdscard.pki.ca import RealmPki, generate_key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


@pytest.fixture(scope="module")
def user_cert(pki: RealmPki) -> x509.Certificate:
    return pki.issue_user_certificate("alice", generate_key("p256").public_key())


def test_fingerprint_is_sha256_of_der(pki: RealmPki) -> None:
    assert fingerprint(pki.root_cert) == pki.root_cert.fingerprint(hashes.SHA256()).hex()
    assert len(fingerprint(pki.root_cert)) == 64


def test_add_writes_one_file_named_by_fingerprint(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore.in_state_dir(tmp_path)
    entry, added = store.add(pki.issuing_cert)
    assert added
    path = tmp_path / "ntauth" / f"{fingerprint(pki.issuing_cert)}.pem"
    assert entry.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # trust data: the server's alone
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert x509.load_pem_x509_certificate(path.read_bytes()) == pki.issuing_cert
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert entry.subject == pki.issuing_cert.subject.rfc4514_string()
    assert entry.issuer == pki.root_cert.subject.rfc4514_string()
    assert entry.serial == pki.issuing_cert.serial_number
    assert entry.not_after == pki.issuing_cert.not_valid_after_utc


def test_add_twice_is_idempotent(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "n")
    store.add(pki.root_cert)
    _, added = store.add(pki.root_cert)
    assert not added
    assert len(store.entries()) == 1


def test_add_refuses_a_leaf_certificate(user_cert: x509.Certificate, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "n")
    assert not is_ca_certificate(user_cert)
    with pytest.raises(ConfigError, match="is not a CA certificate"):
        store.add(user_cert)
    assert store.entries() == []


def test_list_contains_and_trusted_set(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "n")
    assert store.entries() == [] and store.certificates() == []
    store.add(pki.issuing_cert)
    store.add(pki.root_cert)
    subjects = [e.subject for e in store.entries()]
    assert subjects == sorted(subjects)
    assert set(store.certificates()) == {pki.issuing_cert, pki.root_cert}
    assert store.contains(pki.root_cert)
    untrusted, _ = pki.untrusted_ca()
    assert not store.contains(untrusted)


def test_remove_by_fingerprint_prefix_and_by_subject(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "n")
    store.add(pki.issuing_cert)
    store.add(pki.root_cert)
    prefix = fingerprint(pki.root_cert)[:10]
    colons = ":".join(prefix[i:i + 2] for i in range(0, 10, 2)).upper()
    assert store.remove(colons).fingerprint == fingerprint(pki.root_cert)
    assert not store.contains(pki.root_cert)
    removed = store.remove("example.test test issuing ca")  # common name, any case
    assert removed.subject == pki.issuing_cert.subject.rfc4514_string()
    assert store.entries() == []


def test_remove_unknown_and_short_prefix_fail_clearly(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "n")
    store.add(pki.root_cert)
    with pytest.raises(ConfigError, match="no CA in the NTAuth store matches"):
        store.remove("deadbeefdead")
    with pytest.raises(ConfigError, match="at least 6 hex digits"):
        store.remove(fingerprint(pki.root_cert)[:3])
    assert store.contains(pki.root_cert)


def test_damaged_entry_is_reported(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "n")
    entry, _ = store.add(pki.root_cert)
    entry.path.write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="not a certificate"):
        store.entries()
    # A file holding another CA than its name says is refused too.
    entry.path.write_bytes(pki.issuing_cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ConfigError, match="does not hold the certificate its name promises"):
        store.certificates()


def test_files_with_other_names_are_ignored(pki: RealmPki, tmp_path: Path) -> None:
    store = NtAuthStore(tmp_path / "n")
    store.add(pki.root_cert)
    (tmp_path / "n" / "README").write_text("not a CA")
    (tmp_path / "n" / ".abc.pem.tmp").write_text("half written")
    assert len(store.entries()) == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_parse_certificates_raises_only_config_error(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        parse_certificates(data, "input")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_find_never_raises_on_any_identifier(ident: str) -> None:
    store = NtAuthStore(Path("/nonexistent-ntauth-dir"))
    assert store.find(ident) == []
