"""The administrator's commands against real sign-ins (xfreerdp /smartcard /smartcard-logon).

- ``rdscard efs rekey``: the folder of an account enrolled for card A is sealed
  for card B's key-management certificate, once by the recovery agent and
  once by the old card (its PIN); the new card then opens the folder at
  sign-in with one VERIFY and the files written before are there (the key
  did not change); the old card is no recipient any more, refused before
  its PIN and audited.
- ``rdscard efs enroll --cert FILE``: the 9D certificate from a file (DER or
  PEM) opens at sign-in like one read from the card; a certificate that is
  not a key-management one (9A) is refused and nothing is enrolled.
- ``rdscard efs lock`` asks the running server: refused while the account is
  signed in (the server holds the folder open), done with ``--force``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rdscard.efs import fscrypt
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import wait_for
from tests.integration.card.conftest import PIN, CardFile
from tests.integration.desktops.conftest import DesktopServer, account, seat
from tests.integration.efs.conftest import Ext4Image, RecoveryAgent, counting, efs_cli
from tests.integration.efs.test_efs_signin import (
    EFS_CONFIG,
    SECRET_TEXT,
    cat_in_session,
    enroll,
    key_status,
    session_of,
)

pytestmark = pytest.mark.integration


def card_certificate(card: CardFile, slot: KeyRef = KeyRef.KEY_MANAGEMENT) -> x509.Certificate:
    client = PivClient(InProcessTransport(card.card()))
    client.select()
    cert = client.read_certificate(slot)
    assert cert is not None
    return cert


def write_secret(server: DesktopServer, name: str, folder: Path,
                 agent: RecoveryAgent) -> None:
    """The recovery agent opens the folder, puts the secret file there and locks it again."""
    user = account(name)
    efs_cli(server.server.state_dir, "recover", "--user", name, "--recovery-key", str(agent.key))
    (folder / "secret").write_text(SECRET_TEXT)
    os.chown(folder / "secret", user.pw_uid, user.pw_gid)
    efs_cli(server.server.state_dir, "lock", "--user", name)
    assert key_status(folder) is fscrypt.KeyStatus.ABSENT


def signs_in_and_reads(server: DesktopServer, pcscd: IsolatedPcscd, card: CardFile,
                       folder: Path, count: int) -> None:
    """``card`` signs in (desktop number ``count``), the folder opens with one VERIFY and one
    9D operation, the secret is read in the session; logoff locks the folder."""
    virtual = counting(card)
    with seat(server, pcscd, virtual):
        session = session_of(server, count)
        read = cat_in_session(server, session)
        assert read.stdout == SECRET_TEXT, (read.stderr, server.server.log[-3000:])
        assert (virtual.pin_verifies, virtual.key_management_operations) == (1, 1)
        server.session("logoff", str(session))
        assert wait_for(lambda: key_status(folder) is fscrypt.KeyStatus.ABSENT, 30), (
            server.server.log[-3000:])


def refused_before_the_pin(server: DesktopServer, pcscd: IsolatedPcscd, card: CardFile,
                           name: str, folder: Path) -> None:
    """``card`` is no recipient: refused before its PIN, audited, nothing opens."""
    audit = server.server.state_dir / "audit.jsonl"

    def refusals() -> int:
        if not audit.exists():
            return 0
        return sum(1 for line in audit.read_text().splitlines()
                   if json.loads(line).get("reason") == "efs_not_recipient"
                   and json.loads(line).get("account") == name)

    before = refusals()
    virtual = counting(card)
    with seat(server, pcscd, virtual):
        assert wait_for(lambda: refusals() > before, 30), server.server.log[-3000:]
    assert virtual.pin_verifies == 0, "no PIN try spent on a card that is no recipient"
    assert virtual.key_management_operations == 0
    assert key_status(folder) is fscrypt.KeyStatus.ABSENT


def test_rekey_to_a_new_card_by_the_recovery_agent_and_by_the_old_card(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    ext4_image: Ext4Image, recovery_agent: RecoveryAgent, rsa_card: CardFile,
    ecc_card: CardFile, tmp_path: Path,
) -> None:
    name = "rdscard-efs-rky"
    # both test cards' UPNs map to the one account: card A (RSA), then card B (P-256)
    server = desktop_servers(alice=name, bob=name, extra=EFS_CONFIG)
    state = server.server.state_dir
    folder = enroll(server, ext4_image, name, rsa_card, recovery_agent)
    write_secret(server, name, folder, recovery_agent)
    policy = fscrypt.get_policy_identifier(folder)

    # A lost card A: the recovery agent seals the key for card B (read from the card).
    out = efs_cli(state, "rekey", "--user", name, "--recovery-key", str(recovery_agent.key),
                  "--new-card-state", str(ecc_card.state))
    assert "rekeyed" in out and "1 recovery agent" in out, out
    assert fscrypt.get_policy_identifier(folder) == policy, "the files keep their key"
    refused_before_the_pin(server, pcscd, rsa_card, name, folder)
    signs_in_and_reads(server, pcscd, ecc_card, folder, 1)

    # Back to card A's certificate (a file), opened by card B with its PIN.
    cert_a = tmp_path / "a-9d.pem"
    cert_a.write_bytes(card_certificate(rsa_card).public_bytes(serialization.Encoding.PEM))
    pin = tmp_path / "pin"
    pin.write_text(PIN + "\n")
    out = efs_cli(state, "rekey", "--user", name, "--old-card-state", str(ecc_card.state),
                  "--pin-file", str(pin), "--new-cert", str(cert_a))
    assert "rekeyed" in out, out
    refused_before_the_pin(server, pcscd, ecc_card, name, folder)
    signs_in_and_reads(server, pcscd, rsa_card, folder, 2)

    # a wrong PIN of the old card rekeys nothing
    pin.write_text("999999\n")
    out = efs_cli(state, "rekey", "--user", name, "--old-card-state", str(rsa_card.state),
                  "--pin-file", str(pin), "--new-card-state", str(ecc_card.state), check=False)
    assert "rdscard: error:" in out and "Traceback" not in out and "rekeyed" not in out, out
    records = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in records if r.get("reason", "").startswith("efs")] == [
        "efs_not_recipient", "efs_not_recipient"], records
    # the recovery agent stayed a recipient through both rekeys
    efs_cli(state, "recover", "--user", name, "--recovery-key", str(recovery_agent.key))
    assert (folder / "secret").read_text() == SECRET_TEXT
    efs_cli(state, "lock", "--user", name)


@pytest.mark.parametrize("encoding", ["der", "pem"])
def test_enroll_with_the_certificate_from_a_file(
    encoding: str, desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    ext4_image: Ext4Image, recovery_agent: RecoveryAgent, ecc_card: CardFile, tmp_path: Path,
) -> None:
    name = f"rdscard-efs-c{encoding[0]}"
    server = desktop_servers(bob=name, extra=EFS_CONFIG)
    state = server.server.state_dir
    user = account(name)
    folder = ext4_image.folder(user.pw_uid, user.pw_gid, f"{name}-private")
    link = Path(user.pw_dir) / "Private"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(folder)
    form = serialization.Encoding.DER if encoding == "der" else serialization.Encoding.PEM

    # the card's authentication certificate (9A, digitalSignature) cannot receive the key
    signing = tmp_path / f"9a.{encoding}"
    signing.write_bytes(card_certificate(ecc_card, KeyRef.AUTHENTICATION).public_bytes(form))
    out = efs_cli(state, "enroll", "--user", name, "--dir", str(folder), "--cert",
                  str(signing), check=False)
    assert "keyAgreement" in out and "9D" in out, out
    assert fscrypt.get_policy_identifier(folder) is None
    assert not (state / "efs" / f"{name}.p7m").exists()

    cert = tmp_path / f"9d.{encoding}"
    cert.write_bytes(card_certificate(ecc_card).public_bytes(form))
    out = efs_cli(state, "enroll", "--user", name, "--dir", str(folder), "--cert", str(cert),
                  "--recovery-cert", str(recovery_agent.certificate))
    assert "enrolled" in out, out
    write_secret(server, name, folder, recovery_agent)
    signs_in_and_reads(server, pcscd, ecc_card, folder, 1)


def test_lock_from_the_command_line_is_refused_while_the_account_is_signed_in(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    ext4_image: Ext4Image, recovery_agent: RecoveryAgent, ecc_card: CardFile,
) -> None:
    name = "rdscard-efs-lck"
    server = desktop_servers(bob=name, extra=EFS_CONFIG)
    state = server.server.state_dir
    folder = enroll(server, ext4_image, name, ecc_card, recovery_agent)
    with seat(server, pcscd, counting(ecc_card)) as me:
        session = session_of(server)
        assert key_status(folder) is fscrypt.KeyStatus.PRESENT
        out = efs_cli(state, "lock", "--user", name, check=False)
        assert f"is signed in (session {session})" in out and "--force" in out, out
        assert key_status(folder) is fscrypt.KeyStatus.PRESENT
        # a disconnected session holds the folder open too
        me.client.close()
        assert wait_for(lambda: "disconnected" in server.listing().get(session, ""), 20)
        out = efs_cli(state, "lock", "--user", name, check=False)
        assert f"is signed in (session {session})" in out, out
        assert "locked the folder" in efs_cli(state, "lock", "--user", name, "--force")
        assert key_status(folder) is fscrypt.KeyStatus.ABSENT
        server.session("logoff", str(session))
        assert wait_for(lambda: session not in server.listing(), 30)
    # no session any more: the lock is done at once
    assert "locked already" in efs_cli(state, "lock", "--user", name)
