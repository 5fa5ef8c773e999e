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

from rdscard.pki.ca import RealmPki
from rdscard.testbed.ports import free_tcp_port
from rdscard.testbed.samba import KdcPkinit, SambaDc
from tests.integration.card.conftest import ecc_card, pcscd, pki, rsa_card  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory: pytest.TempPathFactory,
             pki: RealmPki) -> Iterator[SambaDc]:  # noqa: F811 - the imported fixture
    """The DC, its KDC with PKINIT: the test PKI's KDC certificate; as client roots the
    PKI's root and a second CA of the KDC's own (``pki.untrusted_ca()``) that is in no
    NTAuth store, to show what Samba's KDC accepts and rdscard does not."""
    layout = pki.layout
    pki.untrusted_ca()
    pkinit = KdcPkinit(certificate=layout.kdc_cert, key=layout.kdc_key,
                       anchors=(layout.root_cert, layout.untrusted_cert),
                       pool=(layout.issuing_cert,))
    lock = (Path(tempfile.gettempdir()) / "rdscard-samba-dc.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with SambaDc(tmp_path_factory.mktemp("samba-dc"), kdc_port=free_tcp_port(),
                     pkinit=pkinit) as dc:
            yield dc
    finally:
        lock.close()
