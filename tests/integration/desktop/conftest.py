"""Fixtures for the desktop tests: the test account and its X server."""

from __future__ import annotations

import pwd
from collections.abc import Iterator

import pytest

from rdscard.desktop import XDisplay
from tests.integration.desktop.xsession import UserXServer, ensure_account

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def xtest_account() -> pwd.struct_passwd:
    """The non-root account the X servers and session programs run as."""
    return ensure_account()


@pytest.fixture
def xserver(xtest_account: pwd.struct_passwd) -> Iterator[UserXServer]:
    """A fresh Xvfb (1280x800) as the test account."""
    with UserXServer(xtest_account) as server:
        yield server


@pytest.fixture
def xdisplay(xserver: UserXServer) -> Iterator[XDisplay]:
    """The server-side connection to ``xserver``, made as root with the cookie."""
    display = XDisplay.connect(xserver.display, xserver.cookie)
    try:
        yield display
    finally:
        display.close()
