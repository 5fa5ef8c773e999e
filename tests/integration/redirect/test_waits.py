"""Waiting for reader changes, stop-waiting and cancel through our socket, with pyscard.

pyscard's SCardGetStatusChange is libpcsclite's: it reads the reader table,
registers with CMD_WAIT_READER_STATE_CHANGE, reads one 8-byte message (or
sends CMD_STOP_WAITING_READER_STATE_CHANGE on timeout) and SCardCancel
comes on a connection of its own. A stray or missing message would shift
every later reply, so each script ends with a wait that must time out cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rdscard.testbed.cards import CardInThread, wait_for_port
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import READER_0, CardFile, insert, run
from tests.integration.redirect.conftest import Lines, RedirectedSocket

pytestmark = pytest.mark.integration

WAITER = """
import sys, time
from smartcard.scard import *
reader = sys.argv[1]
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
assert hr == SCARD_S_SUCCESS, hex(hr)
hr, states = SCardGetStatusChange(ctx, 0, [(reader, SCARD_STATE_UNAWARE)])
state = states[0][1] & ~SCARD_STATE_CHANGED
print("start", "present" if state & SCARD_STATE_PRESENT else "empty", flush=True)
hr, _ = SCardGetStatusChange(ctx, 300, [(reader, state)])
print("quiet", "timeout" if hr == SCARD_E_TIMEOUT else hex(hr), flush=True)
for _ in sys.argv[2:]:
    started = time.monotonic()
    hr, states = SCardGetStatusChange(ctx, 20000, [(reader, state)])
    state = states[0][1] & ~SCARD_STATE_CHANGED
    print("event", "present" if state & SCARD_STATE_PRESENT else "empty", hex(hr),
          round(time.monotonic() - started, 2), flush=True)
hr, _ = SCardGetStatusChange(ctx, 300, [(reader, state)])
print("quiet", "timeout" if hr == SCARD_E_TIMEOUT else hex(hr), flush=True)
print("release", hex(SCardReleaseContext(ctx)), flush=True)
"""

CANCELLER = """
import sys, threading, time
from smartcard.scard import *
reader = sys.argv[1]
hr, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
assert hr == SCARD_S_SUCCESS, hex(hr)
hr, states = SCardGetStatusChange(ctx, 0, [(reader, SCARD_STATE_UNAWARE)])
state = states[0][1] & ~SCARD_STATE_CHANGED
result = {}
def wait():
    started = time.monotonic()
    hr, _ = SCardGetStatusChange(ctx, 30000, [(reader, state)])
    result["wait"] = (hex(hr), time.monotonic() - started)
waiter = threading.Thread(target=wait)
waiter.start()
time.sleep(0.5)
cancel = SCardCancel(ctx)
waiter.join(15)
code, seconds = result["wait"]
print("cancel", hex(cancel), "wait", code, "fast" if seconds < 5 else f"slow {seconds}")
hr, _ = SCardGetStatusChange(ctx, 300, [(reader, state)])
print("quiet", "timeout" if hr == SCARD_E_TIMEOUT else hex(hr))
hr, readers = SCardListReaders(ctx, [])
print("readers", readers)
"""


def test_a_waiting_program_is_woken_by_removal_and_insertion(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile
) -> None:
    card = rsa_card.card()
    runner = insert(card, pcscd)
    process = subprocess.Popen(
        [sys.executable, "-c", WAITER, READER_0, "removal", "insertion"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **redirected.env},
    )
    try:
        lines = Lines(process)
        assert lines.next() == "start present"
        assert lines.next() == "quiet timeout"  # stop-waiting answered once, nothing stray
        time.sleep(0.3)  # the program is now waiting for a change
        runner.remove()
        kind, state, code, seconds = lines.next().split()
        assert (kind, state, code) == ("event", "empty", "0x0")
        assert float(seconds) < 10
        port = pcscd.vpcd_ports()[0]
        wait_for_port("127.0.0.1", port)
        runner = CardInThread(card, port)
        runner.insert()
        kind, state, code, _ = lines.next().split()
        assert (kind, state, code) == ("event", "present", "0x0")
        assert lines.next() == "quiet timeout"
        assert lines.next() == "release 0x0"
        assert process.wait(10) == 0
    finally:
        runner.remove()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cancel_from_another_thread_wakes_the_waiter(
    pcscd: IsolatedPcscd, redirected: RedirectedSocket, rsa_card: CardFile
) -> None:
    with insert(rsa_card.card(), pcscd):
        output = run([sys.executable, "-c", CANCELLER, READER_0], redirected.env).stdout
    lines = output.splitlines()
    assert lines[0] == "cancel 0x0 wait 0x80100002 fast"  # SCARD_E_CANCELLED, at once
    assert lines[1] == "quiet timeout"
    assert lines[2] == f"readers ['{READER_0}', 'Virtual PCD 00 01']"
