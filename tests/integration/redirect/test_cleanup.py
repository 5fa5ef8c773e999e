"""A program that dies holding the card leaves nothing behind in the session.

The program's connections end with it; the service then disconnects its card
handles (resetting the card if it held a transaction, as pcscd does) and
releases its contexts, so the next program can take the card and does not
inherit a verified PIN.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import PIN, READER_0, CardFile, insert, run
from tests.integration.redirect.conftest import Lines, RedirectedSocket

pytestmark = pytest.mark.integration

COMMON = """
import sys, time
from smartcard.scard import *
SELECT_PIV = list(bytes.fromhex("00a4040009a0000003080000100000"))
def sw(response):
    return bytes(response[-2:]).hex()
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
assert hr == SCARD_S_SUCCESS, hex(hr)
"""

HOLDER = COMMON + """
hr, card, proto = SCardConnect(ctx, sys.argv[1], SCARD_SHARE_EXCLUSIVE,
                               SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
assert hr == SCARD_S_SUCCESS, hex(hr)
assert SCardBeginTransaction(card) == SCARD_S_SUCCESS
SCardTransmit(card, proto, SELECT_PIV)
pin = list(sys.argv[2].encode().ljust(8, b"\\xff"))
hr, response = SCardTransmit(card, proto, [0x00, 0x20, 0x00, 0x80, 0x08] + pin)
print("held", sw(response), flush=True)
time.sleep(120)
"""

CHECKER = COMMON + """
deadline = time.monotonic() + 10
while True:
    hr, card, proto = SCardConnect(ctx, sys.argv[1], SCARD_SHARE_EXCLUSIVE,
                                   SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
    if hr == SCARD_S_SUCCESS or sys.argv[2] == "once" or time.monotonic() > deadline:
        break
    time.sleep(0.1)
if hr != SCARD_S_SUCCESS:
    print("connect", hex(hr & 0xFFFFFFFF))
    sys.exit(0)
SCardTransmit(card, proto, SELECT_PIV)
hr, response = SCardTransmit(card, proto, [0x00, 0x20, 0x00, 0x80])  # PIN status only
print("pin", sw(response))
"""


def test_a_killed_programs_card_is_released_and_reset(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile
) -> None:
    with insert(rsa_card.card(), pcscd):
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, READER_0, PIN], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, **redirected.env},
        )
        try:
            assert Lines(holder).next() == "held 9000"  # PIN verified, card held exclusively
            check = run([sys.executable, "-c", CHECKER, READER_0, "once"], redirected.env)
            assert check.stdout.strip() == "connect 0x8010000b"  # SCARD_E_SHARING_VIOLATION
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            check = run([sys.executable, "-c", CHECKER, READER_0, "retry"], redirected.env)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
    status = check.stdout.strip()
    assert status.startswith("pin 63c"), status  # tries left: the PIN is not verified any more
