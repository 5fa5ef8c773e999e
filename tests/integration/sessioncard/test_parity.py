"""pcsc-lite parity: the session's socket answers as the client's own pcscd does.

One battery of calls (:mod:`tests.integration.sessioncard.pcsc_battery`) runs
with a raw pcsc-lite client against the client's pcscd and then against the
session's socket, with the same card in the same reader; the records must
match one by one, except the allow-listed ones below, each with the reason
it cannot match.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rdscard.testbed.pcsclite_client import WireClient
from tests.integration.card.conftest import READER_0
from tests.integration.sessioncard.conftest import RedirectedSession
from tests.integration.sessioncard.pcsc_battery import Battery, CardSlot, Record, entry

pytestmark = pytest.mark.integration

NAME = (READER_0.encode() + b"\0").hex()
#: Records allowed to differ: step -> (pcscd's record, the session's record). Each is asserted
#: as it is, so a change on either side shows up.
#:
#: The reader's names through SCardGetAttrib with a buffer that fits: pcscd 1.9.9 answers these
#: itself (winscard.c SCardGetAttrib) after asking the reader driver, and vpcd's driver sets the
#: length to 0 for a tag it does not know, so pcscd finds "no room" in any buffer. That is the
#: client's driver, not pcscd's rule, and MS-RDPESC cannot carry it (FreeRDP's client answers
#: SCARD_E_UNSUPPORTED_FEATURE instead): the session answers pcscd's rule, the name. With a
#: short buffer both say SCARD_E_INSUFFICIENT_BUFFER and the length needed.
ALLOWED: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    step: ({"rv": "0x80100008", "length": 18, "value": ""},
           {"rv": "0x0", "length": 18, "value": NAME})
    for step in ("get attrib friendly name", "get attrib system name")
}


def battery(path: Path, session: RedirectedSession) -> list[Record]:
    outside = Path(session.pcscd.env["PCSCLITE_CSOCK_NAME"])
    card = CardSlot(READER_0, session.card.remove, session.card.insert, outside)
    return Battery(path, card).run()


def fresh_card(session: RedirectedSession, timeout: float = 20.0) -> None:
    """Take the card out and back in, and wait until the client's pcscd shows each step.

    The session's battery runs first: pcscd 1.9.9 wakes no waiter when a
    handle disconnects, so after a battery on the client's pcscd the
    session's view of the reader's sharing (the client's report) would stay
    as stale as the last card event. pcscd's own view never is, but it keeps
    the card's protocol from the session's connections: a fresh insertion
    gives the direct battery the card as the session's battery found it.
    """
    direct = Path(session.pcscd.env["PCSCLITE_CSOCK_NAME"])

    def wait(state: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with WireClient(direct) as client:
                found = entry(client.readers_state(), READER_0)
            if found.get("state") == state and found.get("sharing") == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the client's pcscd shows {found}, not {state}")
            time.sleep(0.05)

    session.card.remove()
    wait("0x2")
    session.card.insert()
    wait("0x34")


def test_the_session_socket_answers_the_battery_as_pcscd_does(
    redirected: RedirectedSession,
) -> None:
    session = battery(redirected.socket, redirected)
    fresh_card(redirected)
    direct = battery(Path(redirected.pcscd.env["PCSCLITE_CSOCK_NAME"]), redirected)
    assert [step for step, _ in direct] == [step for step, _ in session]
    differ = [(step, a, b) for (step, a), (_, b) in zip(direct, session, strict=True)
              if a != b and ALLOWED.get(step) != (a, b)]
    allowed = {step: (a, b) for (step, a), (_, b) in zip(direct, session, strict=True)
               if step in ALLOWED}
    assert allowed == ALLOWED  # each allowed difference is still exactly as documented
    report = "\n".join(f"{step}:\n  pcscd   {json.dumps(a)}\n  session {json.dumps(b)}"
                       for step, a, b in differ)
    assert differ == [], report
