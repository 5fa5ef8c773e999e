"""Card-bound encrypted folders through xfreerdp /smartcard /smartcard-logon.

An account's folder on an ext4 image made with ``-O encrypt`` is enrolled
for the key-management certificate (slot 9D) of its card and a recovery
agent. Signing in opens it with one PIN VERIFY in all; logoff locks it
(names encrypted, reads ENOKEY); the next sign-in opens it again. The
recovery agent's key opens the envelope with ``openssl cms`` and unlocks
with ``rdscard efs recover``. Another user's card is refused before its PIN.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from rdscard.efs import fscrypt
from rdscard.secret import Secret
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.xclient import wait_for
from tests.integration.card.conftest import PIN, CardFile
from tests.integration.desktops.conftest import DesktopServer, account, seat
from tests.integration.efs.conftest import (
    Ext4Image,
    RecoveryAgent,
    counting,
    efs_cli,
)

pytestmark = pytest.mark.integration

SECRET_TEXT = "the quarterly figures, for alice only\n"
EFS_CONFIG = "[efs]\nenabled = true\nbusy_retry = 0.2\n"


def enroll(server: DesktopServer, image: Ext4Image, name: str, card: CardFile,
           agent: RecoveryAgent) -> Path:
    user = account(name)
    folder = image.folder(user.pw_uid, user.pw_gid, f"{name}-private")
    link = Path(user.pw_dir) / "Private"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(folder)
    out = efs_cli(server.server.state_dir, "enroll", "--user", name, "--dir", str(folder),
                  "--card-state", str(card.state), "--recovery-cert", str(agent.certificate))
    assert "enrolled" in out, out
    return folder


def key_status(folder: Path) -> fscrypt.KeyStatus:
    identifier = fscrypt.get_policy_identifier(folder)
    assert identifier is not None
    return fscrypt.key_status(folder, identifier)


def status_of(server: DesktopServer, name: str) -> str:
    """The state column of ``name`` in ``rdscard efs status``."""
    for line in efs_cli(server.server.state_dir, "status").splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return fields[1]
    raise AssertionError(f"{name} is not in rdscard efs status")


def session_of(server: DesktopServer, count: int = 1) -> int:
    return server.started(count)[-1][0]


def cat_in_session(server: DesktopServer, session: int) -> subprocess.CompletedProcess[str]:
    return server.session("exec", str(session), "--", "sh", "-c", "cat ~/Private/secret",
                          check=False)


@pytest.mark.parametrize("card_name", ["rsa_card", "ecc_card"])
def test_sign_in_opens_the_folder_with_one_verify_and_logoff_locks_it(
    card_name: str, request: pytest.FixtureRequest,
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    ext4_image: Ext4Image, recovery_agent: RecoveryAgent,
) -> None:
    card: CardFile = request.getfixturevalue(card_name)
    name = f"rdscard-efs-{card.key_type[:3]}"
    server = desktop_servers(**{card.user: name}, extra=EFS_CONFIG)
    folder = enroll(server, ext4_image, name, card, recovery_agent)
    user = account(name)
    assert key_status(folder) is fscrypt.KeyStatus.ABSENT

    # The recovery agent puts the file there (and locks again): no card needed.
    assert "unlocked" in efs_cli(server.server.state_dir, "recover", "--user", name,
                                 "--recovery-key", str(recovery_agent.key))
    (folder / "secret").write_text(SECRET_TEXT)
    os.chown(folder / "secret", user.pw_uid, user.pw_gid)
    efs_cli(server.server.state_dir, "lock", "--user", name)
    assert key_status(folder) is fscrypt.KeyStatus.ABSENT
    assert "secret" not in os.listdir(folder)

    virtual = counting(card)
    with seat(server, pcscd, virtual) as me:
        session = session_of(server)
        read = cat_in_session(server, session)
        assert read.stdout == SECRET_TEXT, (read.stderr, server.server.log[-3000:])
        assert virtual.pin_verifies == 1, "one VERIFY for the sign-in and the unlock"
        assert virtual.key_management_operations == 1
        assert status_of(server, name) == "unlocked"
        server.session("logoff", str(session))
        assert wait_for(lambda: key_status(folder) is fscrypt.KeyStatus.ABSENT, 30), (
            server.server.log[-3000:])
        names = os.listdir(folder)
        assert len(names) == 1 and names[0] != "secret", names
        with pytest.raises(OSError) as denied:
            (folder / names[0]).read_bytes()
        assert denied.value.errno == errno.ENOKEY
        assert status_of(server, name) == "locked"

        me.reconnect()
        session = session_of(server, 2)
        read = cat_in_session(server, session)
        assert read.stdout == SECRET_TEXT, (read.stderr, server.server.log[-3000:])
        assert virtual.pin_verifies == 2
        # a disconnected session stays unlocked; its logoff locks
        me.client.close()
        assert wait_for(lambda: "disconnected" in server.listing().get(session, ""), 20)
        assert key_status(folder) is fscrypt.KeyStatus.PRESENT
        server.session("logoff", str(session))
        assert wait_for(lambda: key_status(folder) is fscrypt.KeyStatus.ABSENT, 30)
    assert "is locked" in server.server.log


def test_card_removal_locks_the_folder_and_the_card_and_pin_at_the_lock_screen_unlock_it(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    ext4_image: Ext4Image, recovery_agent: RecoveryAgent, ecc_card: CardFile,
) -> None:
    name = "rdscard-efs-rmv"
    server = desktop_servers(bob=name, extra=EFS_CONFIG, logon='card_removal = "lock"\n')
    folder = enroll(server, ext4_image, name, ecc_card, recovery_agent)
    virtual = counting(ecc_card)
    with seat(server, pcscd, virtual) as me:
        session = session_of(server)
        assert key_status(folder) is fscrypt.KeyStatus.PRESENT
        (folder / "note").write_text(SECRET_TEXT)
        me.card.remove()
        assert wait_for(lambda: key_status(folder) is fscrypt.KeyStatus.ABSENT, 30), (
            server.server.log[-3000:])
        assert "the card was removed: locking the encrypted folder" in server.server.log
        assert (virtual.pin_verifies, virtual.key_management_operations) == (1, 1)

        # back at the lock screen: the card again and its PIN unlock the session and the folder
        me.card.insert()
        me.client.type_keys(*PIN, "Return")
        assert wait_for(lambda: "unlocked: the desktop is shown again" in server.server.log,
                        40), server.server.log[-4000:]
        assert key_status(folder) is fscrypt.KeyStatus.PRESENT
        assert (virtual.pin_verifies, virtual.key_management_operations) == (2, 2), (
            "one more VERIFY and one more 9D operation")
        read = server.session("exec", str(session), "--", "sh", "-c", "cat ~/Private/note",
                              check=False)
        assert read.stdout == SECRET_TEXT, (read.stderr, server.server.log[-3000:])
        assert len(server.started()) == 1, "the same desktop, not a new one"
        server.session("logoff", str(session))
        assert wait_for(lambda: key_status(folder) is fscrypt.KeyStatus.ABSENT, 30)


def test_a_reconnect_takes_the_key_claim_over_and_the_final_logoff_locks(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    ext4_image: Ext4Image, recovery_agent: RecoveryAgent, rsa_card: CardFile,
) -> None:
    name = "rdscard-efs-rcn"
    server = desktop_servers(alice=name, extra=EFS_CONFIG)
    folder = enroll(server, ext4_image, name, rsa_card, recovery_agent)
    virtual = counting(rsa_card)
    with seat(server, pcscd, virtual) as me:
        session = session_of(server)
        (folder / "note").write_text(SECRET_TEXT)
        # the same account from a new connection takes the session over; the sign-in of the
        # new connection (its own session id until the take-over) finds the key held
        me.reconnect()
        assert wait_for(lambda: "reconnected: connection from" in server.server.log, 40), (
            server.server.log[-4000:])
        assert wait_for(lambda: "active" in server.listing().get(session, ""), 20)
        assert len(server.listing()) == 1, server.listing()
        assert (virtual.pin_verifies, virtual.key_management_operations) == (2, 1)
        assert key_status(folder) is fscrypt.KeyStatus.PRESENT
        read = server.session("exec", str(session), "--", "sh", "-c", "cat ~/Private/note",
                              check=False)
        assert read.stdout == SECRET_TEXT, (read.stderr, server.server.log[-3000:])
        assert "locking the encrypted folder" not in server.server.log
        server.session("logoff", str(session))
        assert wait_for(lambda: key_status(folder) is fscrypt.KeyStatus.ABSENT, 30), (
            server.server.log[-3000:])
    locks = [line for line in server.server.log.splitlines()
             if "locking the encrypted folder" in line]
    assert len(locks) == 1 and f"[session {session}] logged off" in locks[0], locks


def test_the_recovery_agent_opens_the_envelope_with_openssl_and_recovers(
    desktop_servers: Callable[..., DesktopServer], ext4_image: Ext4Image,
    recovery_agent: RecoveryAgent, rsa_card: CardFile, tmp_path: Path,
) -> None:
    name = "rdscard-efs-rec"
    server = desktop_servers(alice=name)
    folder = enroll(server, ext4_image, name, rsa_card, recovery_agent)
    envelope = server.server.state_dir / "efs" / f"{name}.p7m"
    assert envelope.stat().st_mode & 0o777 == 0o600
    opened = subprocess.run(
        ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(envelope),
         "-recip", str(recovery_agent.certificate), "-inkey", str(recovery_agent.key)],
        capture_output=True, check=True)
    master = Secret(opened.stdout)
    assert len(master) == 64
    # the key OpenSSL found is the one the directory's policy names (as the kernel computes)
    assert fscrypt.key_identifier(master) == fscrypt.get_policy_identifier(folder)
    efs_cli(server.server.state_dir, "recover", "--user", name, "--recovery-key",
            str(recovery_agent.key))
    assert key_status(folder) is fscrypt.KeyStatus.PRESENT
    (folder / "note").write_text("recovered")
    efs_cli(server.server.state_dir, "lock", "--user", name)
    assert key_status(folder) is fscrypt.KeyStatus.ABSENT


def test_another_users_card_is_refused_before_its_pin_and_nothing_unlocks(
    desktop_servers: Callable[..., DesktopServer], pcscd: IsolatedPcscd,
    ext4_image: Ext4Image, recovery_agent: RecoveryAgent, rsa_card: CardFile,
    ecc_card: CardFile,
) -> None:
    name = "rdscard-efs-oth"
    # both UPNs map to the same account, enrolled for alice's card only
    server = desktop_servers(alice=name, bob=name, extra=EFS_CONFIG)
    folder = enroll(server, ext4_image, name, rsa_card, recovery_agent)
    virtual = counting(ecc_card)
    with seat(server, pcscd, virtual):
        audit = server.server.state_dir / "audit.jsonl"
        assert wait_for(lambda: audit.exists() and "efs_not_recipient" in audit.read_text(),
                        30), server.server.log[-3000:]
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    refused = [r for r in records if r.get("reason") == "efs_not_recipient"]
    assert refused and refused[0]["account"] == name, records
    assert virtual.pin_verifies == 0, "no PIN try spent"
    assert virtual.key_management_operations == 0
    assert key_status(folder) is fscrypt.KeyStatus.ABSENT
    assert "desktop started" not in server.server.log
