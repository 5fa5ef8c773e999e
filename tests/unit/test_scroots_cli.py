"""``rdscard certutil -scroots`` on an in-process virtual card (the pcscd run is an integration
test)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.cli import certutil, scroots
from rdscard.errors import ConfigError, RdscardError
from rdscard.logon.mapping import AccountMapper
from rdscard.logon.scinfo import inspect_card
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import CertificateValidator
from rdscard.pki.ca import RealmPki, generate_key, make_ca, pem
from rdscard.pki.msroots import MSROOTS_OBJECTS, read_roots, sha1
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport, Transport

READER = "Virtual PCD 00 00"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def _opener(card: VirtualPivCard, seen: list[str | None]) -> scroots.CardOpener:
    @contextlib.contextmanager
    def opener(reader: str | None) -> Iterator[tuple[Transport, str]]:
        seen.append(reader)
        yield InProcessTransport(card), reader or READER

    return opener


def _run(card: VirtualPivCard, *argv: str, seen: list[str | None] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rdscard")
    certutil.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["certutil", *argv])
    assert args.verb == "scroots"
    return scroots.run_scroots(args.arguments, args, reader=args.reader, overwrite=args.force,
                               opener=_opener(card, seen if seen is not None else []))


def _roots(card: VirtualPivCard) -> set[str]:
    client = PivClient(InProcessTransport(card))
    client.select()
    return {sha1(c) for c in read_roots(client)}


def test_update_replaces_plus_adds_delete_removes(
        pki: RealmPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = VirtualPivCard(CardState.new(serial=21))
    other = make_ca("Other Root", "scroots test", generate_key("p256"))
    other_file = tmp_path / "other.p7b"
    other_file.write_bytes(pkcs7.serialize_certificates([other], Encoding.DER))
    seen: list[str | None] = []
    assert _run(card, "-scroots", "update", str(pki.layout.root_cert), READER, seen=seen) == 0
    out = capsys.readouterr().out
    assert seen == [READER]
    assert "wrote 1 roots to the card (msroots: " in out and "in 5FFF11)" in out
    assert f"Cert Hash(sha1): {sha1(pki.root_cert)}" in out
    assert _roots(card) == {sha1(pki.root_cert)}
    assert _run(card, "-scroots", "update", f"+{other_file}") == 0
    assert _roots(card) == {sha1(pki.root_cert), sha1(other)}
    assert _run(card, "-scroots", "update", f"+{pki.layout.root_cert}") == 0  # no duplicate
    assert "wrote 2 roots" in capsys.readouterr().out
    assert _run(card, "-scroots", "view", "--reader", READER) == 0
    assert "roots on the card (msroots): 2" in capsys.readouterr().out
    assert _run(card, "-scroots", "update", str(other_file)) == 0  # without +: replaced
    assert _roots(card) == {sha1(other)}
    assert _run(card, "-scroots", "delete") == 0
    assert "deleted the roots on the card (msroots, 1 before)" in capsys.readouterr().out
    assert _roots(card) == set()
    assert not any(t in card.state.data_objects for t in MSROOTS_OBJECTS)


def test_save_writes_the_cards_roots_and_keeps_an_existing_file(
        pki: RealmPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = VirtualPivCard(CardState.new(serial=24))
    out = tmp_path / "roots.p7b"
    with pytest.raises(RdscardError, match="carries no roots"):
        _run(card, "-scroots", "save", f"@{out}")
    assert not out.exists()
    other = make_ca("Other Root", "scroots test", generate_key("p256"))
    other_file = tmp_path / "other.p7b"
    other_file.write_bytes(pkcs7.serialize_certificates([other], Encoding.DER))
    assert _run(card, "-scroots", "update", str(pki.layout.root_cert)) == 0
    assert _run(card, "-scroots", "update", f"+{other_file}") == 0
    capsys.readouterr()
    assert _run(card, "-scroots", "save", f"@{out}", READER) == 0
    assert f"saved 2 roots from the card to {out}" in capsys.readouterr().out
    saved = pkcs7.load_der_pkcs7_certificates(out.read_bytes())
    assert {sha1(c) for c in saved} == {sha1(pki.root_cert), sha1(other)}
    # what update reads back in: the same roots
    assert _run(card, "-scroots", "update", str(out)) == 0
    assert _roots(card) == {sha1(pki.root_cert), sha1(other)}
    out.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="exists: give -f"):
        _run(card, "-scroots", "save", str(out))
    assert out.read_bytes() == b"keep me"
    assert _run(card, "-f", "-scroots", "save", str(out)) == 0  # certutil -f -scroots ...
    assert len(pkcs7.load_der_pkcs7_certificates(out.read_bytes())) == 2
    parser = argparse.ArgumentParser(prog="rdscard")
    certutil.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["certutil", "-f", "-scroots", "view"])
    with pytest.raises(ConfigError, match="-f only with save"):
        args.handler(args)
    with pytest.raises(ConfigError, match="needs the output file"):
        _run(card, "-scroots", "save", "@")


def test_the_management_key_is_needed_and_can_be_given(pki: RealmPki, tmp_path: Path) -> None:
    aes = bytes(range(32))
    state = CardState.new(serial=22)
    state.management_key_algorithm, state.management_key = 0x0C, aes
    card = VirtualPivCard(state)
    with pytest.raises(RdscardError, match="management key"):
        _run(card, "-scroots", "update", str(pki.layout.root_cert))
    key_file = tmp_path / "mgm.hex"
    key_file.write_text(aes.hex() + "\n")
    assert _run(card, "-scroots", "update", str(pki.layout.root_cert),
                "--management-key-file", str(key_file),
                "--management-algorithm", "aes256") == 0
    assert _roots(card) == {sha1(pki.root_cert)}
    with pytest.raises(ConfigError, match="24 bytes, not 32"):
        _run(card, "-scroots", "delete", "--management-key-file", str(key_file))  # 3des
    assert _roots(card) == {sha1(pki.root_cert)}


def test_arguments_are_checked(pki: RealmPki, tmp_path: Path) -> None:
    card = VirtualPivCard(CardState.new(serial=23))
    leaf = tmp_path / "kdc.pem"
    leaf.write_bytes(pem(pki.kdc_cert))
    with pytest.raises(ConfigError, match="not a CA certificate"):
        _run(card, "-scroots", "update", str(leaf))
    with pytest.raises(ConfigError, match="needs an action"):
        _run(card, "-scroots")
    with pytest.raises(ConfigError, match="needs the root file"):
        _run(card, "-scroots", "update", "+")
    with pytest.raises(ConfigError, match="too many arguments"):
        _run(card, "-scroots", "delete", "Virtual", "PCD")
    with pytest.raises(ConfigError, match="reader once"):
        _run(card, "-scroots", "delete", READER, "--reader", READER)
    with pytest.raises(ConfigError, match="no certificate"):
        bad = tmp_path / "bad.pem"
        bad.write_text("not a certificate")
        _run(card, "-scroots", "update", str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        _run(card, "-scroots", "update", str(tmp_path / "absent.pem"))
    parser = argparse.ArgumentParser(prog="rdscard")
    certutil.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["certutil", "-scroots", "-enterprise", "delete"])
    with pytest.raises(ConfigError, match="no -enterprise"):
        args.handler(args)
    assert _roots(card) == set()


def test_scinfo_lists_the_roots_on_the_card(pki: RealmPki, tmp_path: Path) -> None:
    card = VirtualPivCard(CardState.new(serial=24))
    provision(PivClient(InProcessTransport(card)), pki, "alice", Credentials(),
              ProvisionOptions(key_type="p256"))
    config = LogonConfig()

    def lines() -> str:
        report = inspect_card(PivClient(InProcessTransport(card)),
                              CertificateValidator.from_config(config, tmp_path),
                              AccountMapper(config))
        return "\n".join(certutil.scinfo_lines(report))

    assert "roots on the card (msroots): 0 ================\nnone" in lines()
    assert _run(card, "-scroots", "update", str(pki.layout.root_cert)) == 0
    out = lines()
    assert "roots on the card (msroots): 1 ================" in out
    assert f"subject:  {pki.root_cert.subject.rfc4514_string()}" in out
    assert f"Cert Hash(sha1): {sha1(pki.root_cert)}" in out
    assert "would be refused: not_in_ntauth" in out  # the card's roots are no NTAuth
