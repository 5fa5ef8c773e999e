"""PIN retry counter, blocking and unblocking, seen by yubico-piv-tool, OpenSC and rdscard."""

from __future__ import annotations

import re

import pytest

from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import (
    OPENSC_PKCS11,
    PIN,
    PUK,
    READER_0,
    CardFile,
    insert,
    rdscard,
    run,
)

pytestmark = pytest.mark.integration

WRONG_PIN = "000000"


def _tries_by_yubico(pcscd: IsolatedPcscd) -> int:
    out = run(["yubico-piv-tool", "-r", READER_0, "-a", "status"], pcscd.env).stdout
    match = re.search(r"PIN tries left:\s*(\d+)", out)
    assert match, out
    return int(match.group(1))


def _status_by_rdscard(pcscd: IsolatedPcscd) -> str:
    out = run(rdscard("card", "status", "--reader", READER_0), pcscd.env).stdout
    return next(line for line in out.splitlines() if line.startswith("PIN:"))


def test_wrong_pins_count_down_block_and_the_puk_unblocks(pcscd: IsolatedPcscd,
                                                         rsa_card: CardFile) -> None:
    with insert(rsa_card.card(), pcscd):
        assert _tries_by_yubico(pcscd) == 3
        assert _status_by_rdscard(pcscd) == "PIN: 3 tries left"
        failed = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", WRONG_PIN,
                      "-O"], pcscd.env, check=False)
        assert failed.returncode != 0 and "CKR_PIN_INCORRECT" in failed.stderr
        assert _tries_by_yubico(pcscd) == 2
        assert _status_by_rdscard(pcscd) == "PIN: 2 tries left"
        for left in (1, 0):
            bad = run(["yubico-piv-tool", "-r", READER_0, "-a", "verify-pin", "-P", WRONG_PIN],
                      pcscd.env, check=False)
            assert bad.returncode != 0
            assert _tries_by_yubico(pcscd) == left
        assert _status_by_rdscard(pcscd) == "PIN: BLOCKED (unblock it with the PUK)"
        blocked = run(["yubico-piv-tool", "-r", READER_0, "-a", "verify-pin", "-P", PIN],
                      pcscd.env, check=False)
        assert blocked.returncode != 0  # even the right PIN is refused now
        run(["yubico-piv-tool", "-r", READER_0, "-a", "unblock-pin", "-P", PUK, "-N", "654321"],
            pcscd.env)
        assert _tries_by_yubico(pcscd) == 3
        run(["yubico-piv-tool", "-r", READER_0, "-a", "verify-pin", "-P", "654321"], pcscd.env)
        objects = run(["pkcs11-tool", "--module", OPENSC_PKCS11, "--login", "--pin", "654321",
                       "-O"], pcscd.env).stdout
        assert "Private Key Object" in objects
