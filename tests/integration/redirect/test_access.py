"""Only the session user and root may use a session's pcsc-lite socket.

The directory (mode 0700, owned by the session user) keeps other users away
from the socket; SO_PEERCRED is the second line, checked on every connection
that reaches the socket anyway. Both are exercised with ``opensc-tool`` run
as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import READER_0, CardFile, insert, run
from tests.integration.redirect.conftest import (
    RedirectedSocket,
    start_local_service,
    stop_local_service,
)

pytestmark = pytest.mark.integration

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


ESTABLISH = (
    "from smartcard.scard import *; "
    "print(hex(SCardEstablishContext(SCARD_SCOPE_USER)[0] & 0xFFFFFFFF))"
)


def _establish(redirected: RedirectedSocket, *prefix: str) -> str:
    result = run([*prefix, sys.executable, "-c", ESTABLISH], redirected.env)
    return result.stdout.strip()


def _opensc_list(redirected: RedirectedSocket, home: Path, *prefix: str) -> str:
    result = run([*prefix, "opensc-tool", "-l"], {**redirected.env, "HOME": str(home)},
                 check=False)
    return result.stdout + result.stderr


def test_the_socket_directory_is_private_to_the_session_user(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile, tmp_path: Path
) -> None:
    info = os.stat(redirected.directory)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == 0
    with insert(rsa_card.card(), pcscd):
        assert READER_0 in _opensc_list(redirected, tmp_path)
        output = _opensc_list(redirected, tmp_path, *AS_NOBODY)
    assert READER_0 not in output
    assert _establish(redirected, *AS_NOBODY) == "0x8010001d"  # SCARD_E_NO_SERVICE
    assert _establish(redirected) == "0x0"


@pytest.fixture
def exposed(pcscd: IsolatedPcscd) -> Iterator[RedirectedSocket]:
    """A service whose socket other users can reach: in a directory they may traverse."""
    base = Path(tempfile.mkdtemp(prefix="rdscard-access-"))
    os.chmod(base, 0o711)
    service = start_local_service(pcscd, base / "session")
    try:
        yield service
    finally:
        assert stop_local_service(service) == 0, service.log()
        shutil.rmtree(base, ignore_errors=True)


def test_a_connection_from_another_user_is_refused_with_a_log_line(
    pcscd: IsolatedPcscd, exposed: RedirectedSocket, rsa_card: CardFile, tmp_path: Path
) -> None:
    # A mistake in the directory's permissions must not open the session's cards.
    redirected = exposed
    os.chmod(redirected.directory, 0o711)
    os.chmod(redirected.socket_path, 0o666)
    home = Path(tempfile.mkdtemp(prefix="rdscard-home-"))
    os.chmod(home, 0o777)
    try:
        with insert(rsa_card.card(), pcscd):
            output = _opensc_list(redirected, home, *AS_NOBODY)
            assert READER_0 not in output
            # connected, then closed at once, as pcscd does when polkit says no: libpcsclite
            # reports SCARD_W_SECURITY_VIOLATION if it reads the end of the connection, or
            # SCARD_E_NO_SERVICE if the close comes before it has written CMD_VERSION
            assert _establish(redirected, *AS_NOBODY) in ("0x8010006a", "0x8010001d")
            assert READER_0 in _opensc_list(redirected, tmp_path)  # root still served
    finally:
        shutil.rmtree(home, ignore_errors=True)
    deadline = time.monotonic() + 5
    while "refused a connection from uid 65534" not in redirected.log():
        assert time.monotonic() < deadline, redirected.log()
        time.sleep(0.05)
    assert " pid " in redirected.log()
