"""A Samba AD DC for the directory tests: provisioned and started once per test session.

Samba's LDAP ports cannot be moved, so one DC runs on the machine at a time:
the directory tests are one xdist group (``scripts/test.sh`` runs pytest with
``--dist loadgroup``), so one worker runs them all; a lock file held while a
DC runs keeps other runs on the machine (a second pytest) from colliding.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.testbed.ports import free_tcp_port
from rdscard.testbed.samba import SambaDc
from tests.integration.card.conftest import ecc_card, pcscd, pki, rsa_card  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDc]:
    lock = (Path(tempfile.gettempdir()) / "rdscard-samba-dc.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with SambaDc(tmp_path_factory.mktemp("samba-dc"), kdc_port=free_tcp_port()) as dc:
            yield dc
    finally:
        lock.close()
