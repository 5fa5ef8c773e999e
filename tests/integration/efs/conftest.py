"""Peers for the encrypted-folder tests: an ext4 image with the encrypt feature, loop-mounted
by the test (root), a recovery agent, and card wrappers that count the PIN VERIFYs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.pki.ca import CertProfile, RealmPki, generate_key, key_pem, pem
from tests.integration.card.conftest import (  # noqa: F401 - fixtures
    CardFile,
    ecc_card,
    pcscd,
    pki,
    rdscard,
    rsa_card,
    run,
)
from tests.integration.desktops.conftest import (  # noqa: F401 - fixtures
    desktop_servers,
    pam_recorder,
)


@dataclass
class Ext4Image:
    """An ext4 filesystem made with ``mkfs.ext4 -O encrypt``, mounted on ``mountpoint``."""

    image: Path
    mountpoint: Path

    def folder(self, owner: int, group: int, name: str) -> Path:
        """An empty directory on the image owned by ``owner``."""
        path = self.mountpoint / name
        path.mkdir(mode=0o700)
        os.chown(path, owner, group)
        return path


@pytest.fixture
def ext4_image() -> Iterator[Ext4Image]:
    """A 64 MiB ext4 image with the encrypt feature, loop-mounted for this test."""
    base = Path(tempfile.mkdtemp(prefix="rdscard-efs-", dir="/tmp"))
    base.chmod(0o755)
    image, mountpoint = base / "fs.img", base / "mnt"
    mountpoint.mkdir()
    with image.open("wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "encrypt", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"mount -o loop failed: {mounted.stderr}"
    mountpoint.chmod(0o755)
    try:
        yield Ext4Image(image, mountpoint)
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class RecoveryAgent:
    certificate: Path
    key: Path


@pytest.fixture(scope="session")
def recovery_agent(pki: RealmPki,  # noqa: F811 - fixture
                   tmp_path_factory: pytest.TempPathFactory) -> RecoveryAgent:
    """A recovery agent: an RSA key-management certificate with its key in a file."""
    directory = tmp_path_factory.mktemp("agent")
    key = generate_key("rsa2048")
    cert = pki.issue_user_certificate("recovery-agent", key.public_key(),
                                      profile=CertProfile.KEY_MANAGEMENT)
    (directory / "agent.crt").write_bytes(pem(cert))
    (directory / "agent.key").write_bytes(key_pem(key))
    return RecoveryAgent(directory / "agent.crt", directory / "agent.key")


class CountingCard(VirtualPivCard):
    """The virtual card, counting the VERIFY commands that carry a PIN (tries spent or not)."""

    def __init__(self, state: CardState) -> None:
        super().__init__(state)
        self.pin_verifies = 0
        self.key_management_operations = 0

    def transmit(self, apdu: bytes) -> bytes:
        if len(apdu) > 5 and apdu[1] == 0x20:
            self.pin_verifies += 1
        if len(apdu) > 4 and apdu[1] == 0x87 and apdu[3] == 0x9D and not apdu[0] & 0x10:
            # the last APDU of a chain (an RSA block is sent in two)
            self.key_management_operations += 1
        return super().transmit(apdu)


def counting(card: CardFile) -> CountingCard:
    return CountingCard(CardState.load(card.state))


def efs_cli(state_dir: Path, *args: str, check: bool = True) -> str:
    """``rdscard efs ARGS`` for the server whose state is ``state_dir``."""
    result = run(rdscard("efs", "--state-dir", str(state_dir), *args), {}, check=check)
    return result.stdout + result.stderr


Enroller = Callable[..., Path]
