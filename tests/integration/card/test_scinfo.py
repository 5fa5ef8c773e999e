"""``rdscard certutil -scinfo`` through pcscd and vpcd: the verdict of a sign-in, no PIN spent."""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from rdscard.pki.ca import RealmPki
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import READER_0, CardFile, insert, rdscard, run

pytestmark = pytest.mark.integration

WRONG_PIN = "000000"


def _tries(pcscd: IsolatedPcscd) -> int:
    out = run(["yubico-piv-tool", "-r", READER_0, "-a", "status"], pcscd.env).stdout
    match = re.search(r"PIN tries left:\s*(\d+)", out)
    assert match, out
    return int(match.group(1))


def _config(tmp_path: Path, account: str) -> Path:
    path = tmp_path / "rdscard.toml"
    path.write_text(f'[logon]\naccounts = {{ "alice@example.test" = "{account}" }}\n')
    return path


def test_scinfo_says_who_signs_in_then_not_in_ntauth_without_spending_a_pin_try(
        pcscd: IsolatedPcscd, rsa_card: CardFile, pki: RealmPki, tmp_path: Path) -> None:
    account = getpass.getuser()
    state = ["--config", str(_config(tmp_path, account)), "--state-dir", str(tmp_path / "state")]
    run(rdscard("certutil", *state, "-addstore", "-enterprise", "NTAuth",
                str(pki.layout.chain)), {})
    with insert(rsa_card.card(), pcscd):
        # one wrong PIN first, so that "unchanged" is not the card's maximum
        bad = run(["yubico-piv-tool", "-r", READER_0, "-a", "verify-pin", "-P", WRONG_PIN],
                  pcscd.env, check=False)
        assert bad.returncode != 0
        assert _tries(pcscd) == 2

        ok = run(rdscard("certutil", *state, "-scinfo", "--reader", READER_0), pcscd.env)
        out = ok.stdout
        assert f"reader: {READER_0}" in out
        assert "PIN: 2 tries left (not tried)" in out
        for slot in ("9A", "9C", "9D", "9E"):
            assert f"slot {slot} (" in out
        slot_9a = out.split("slot 9A")[1].split("slot 9C")[0]
        assert "UPN:      alice@example.test" in slot_9a
        assert "key:      RSA-2048" in slot_9a
        assert "msSmartcardLogin" in slot_9a
        assert "issuer:   " in slot_9a and "serial:   " in slot_9a
        assert "slot 9C (Digital Signature) ================\nempty" in out
        assert "certificate: valid" in out
        assert out.rstrip().splitlines()[-1].startswith(f"would sign in as {account}")
        assert _tries(pcscd) == 2

        issuing = pki.layout.issuing_cert.read_bytes()
        sha1 = x509.load_pem_x509_certificate(issuing).fingerprint(hashes.SHA1()).hex()
        run(rdscard("certutil", *state, "-delstore", "-enterprise", "NTAuth", sha1), {})
        refused = run(rdscard("certutil", *state, "-scinfo", "--reader", READER_0), pcscd.env,
                      check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        verdict = refused.stdout.rstrip().splitlines()[-1]
        assert verdict.startswith("would be refused: not_in_ntauth "), refused.stdout
        assert "NTAuth" in verdict and "rdscard ntauth add" in verdict
        assert "would sign in" not in refused.stdout
        assert "UPN:      alice@example.test" in refused.stdout  # the card is still shown
        assert _tries(pcscd) == 2
        status = run(rdscard("card", "status", "--reader", READER_0), pcscd.env).stdout
        assert "PIN: 2 tries left" in status


def test_scinfo_with_an_empty_reader_is_refused_with_status_1(
        pcscd: IsolatedPcscd, tmp_path: Path) -> None:
    result = run(rdscard("certutil", "--state-dir", str(tmp_path), "-scinfo",
                         "--reader", READER_0), pcscd.env, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "would be refused: card_error " in result.stdout
    assert "insert the card" in result.stdout
