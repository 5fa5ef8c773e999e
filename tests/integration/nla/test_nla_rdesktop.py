"""Network Level Authentication with rdesktop 1.9: plain Kerberos, CredSSP version 2.

rdesktop takes the ticket from the user's credential cache (``kinit`` by
PKINIT with the card beforehand) and delegates the PIN with ``-i``; it
accepts only RSA server certificates (``[server] certificate_type``). Its
smart card redirection (``-r scard``) writes MS-RDPESC returns by hand, with
an understated ObjectBufferLength, arbitrary referent ids and a Connect_Return
whose handle lacks its context (see rdscard.pdu.ndr and
tests/unit/test_esc_rdesktop.py): the sign-in goes through them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.pki.ca import RealmPki
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd, require_program
from rdscard.xclient import VirtualScreen, wait_for
from tests.integration.card.conftest import insert
from tests.integration.logon.conftest import LOGON_PIN, logon_card_state  # noqa: F401
from tests.integration.nla.test_nla_xfreerdp3 import OPENSC, REALM, kdc, nla_server  # noqa: F401
from tests.integration.sessioncard.test_signin import ACCOUNT, local_account  # noqa: F401

pytestmark = pytest.mark.integration


def test_rdesktop_signs_in_with_delegated_smart_card_credentials(
    tmp_path: Path, pki: RealmPki, kdc: MitKdc, pcscd: IsolatedPcscd,  # noqa: F811
    logon_card_state: Path, local_account: str,  # noqa: F811
) -> None:
    server = nla_server(tmp_path, pki, kdc, extra='[server]\ncertificate_type = "rsa"\n')
    card = VirtualPivCard(CardState.load(logon_card_state))
    inserted = insert(card, pcscd)
    screen = VirtualScreen(1088, 832).start()
    env = {**os.environ, **screen.env(), **pcscd.env, "KRB5_CONFIG": str(kdc.krb5_conf),
           "KRB5CCNAME": f"FILE:{tmp_path / 'client.ccache'}", "HOME": str(tmp_path)}
    kinit = subprocess.run(
        [require_program("kinit", "krb5-user"), "-X", f"X509_user_identity=PKCS11:{OPENSC}",
         f"alice@{REALM}"], input=LOGON_PIN + b"\n", capture_output=True, env=env, timeout=60)
    assert kinit.returncode == 0, kinit.stderr
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    client = subprocess.Popen(
        [require_program("rdesktop", "rdesktop"), "-u", "alice", "-d", REALM,
         "-p", LOGON_PIN.decode(), "-i", "-r", "scard", "-g", "1024x768",
         "-o", "sc-reader-name=Virtual PCD 00 00", f"localhost:{server.port}"],
        stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env)
    assert client.stdin is not None
    client.stdin.write(b"yes\n")  # trust the self-signed certificate
    client.stdin.flush()

    def output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")

    try:
        # The CredSSP phase (version 2, bare Kerberos, credType 2 with NUL-terminated
        # strings) completes and the connection goes on to MCS and Client Info.
        assert wait_for(lambda: "client info:" in server.log or "refused" in server.log
                        or client.poll() is not None, 60), server.log[-3000:] + output()
        assert "selected CredSSP" in server.log
        assert re.search(rf"NLA: alice@{REALM} authenticated by Kerberos \(account "
                         rf"{ACCOUNT}\), smart card credentials delegated", server.log), \
            server.log
        assert "Connection established using CredSSP" in output()
        assert "NLA refused" not in server.log
        # rdesktop waits for the server's Control Cooperate and Granted Control before
        # it sends its Font List: each finalisation PDU is answered as it arrives.
        assert wait_for(lambda: "session active after" in server.log, 20), \
            server.log[-3000:] + output()
        # The sign-in runs over rdesktop's redirected card with the delegated PIN.
        assert wait_for(lambda: "signed in:" in server.log or "refused" in server.log, 60), \
            server.log[-4000:] + output()
        text = server.log
        assert re.search(rf"signed in: alice@example.test as local account {ACCOUNT} .*"
                         rf"TGT for alice@{REALM}", text), text[-4000:]
        assert "malformed" not in text and "Type your PIN" not in text
        # kinit's PKINIT verified the PIN once, the host once: no try lost.
        assert card.state.pin_retries_left == 3
        records = [json.loads(line) for line in
                   (server.state_dir / "audit.jsonl").read_text().splitlines()]
        assert [(r["result"], r["principal"], r["upn"]) for r in records] == [
            ("success", f"alice@{REALM}", "alice@example.test")]
        forms = (LOGON_PIN, LOGON_PIN.decode().encode("utf-16-le"), LOGON_PIN.hex().encode())
        assert not any(form in text.encode() for form in forms)
    finally:
        client.kill()
        client.wait(10)
        log.close()
        screen.close()
        inserted.remove()
        server.stop()
