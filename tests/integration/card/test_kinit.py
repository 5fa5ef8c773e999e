"""MIT kinit gets a TGT by PKINIT with the key on the virtual card."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdscard.pki.ca import RealmPki
from rdscard.testbed.kdc import MitKdc
from rdscard.testbed.pcscd import IsolatedPcscd
from tests.integration.card.conftest import OPENSC_PKCS11, PIN, REALM, CardFile, insert, run

pytestmark = pytest.mark.integration


def test_kinit_with_the_card_gets_a_tgt(pcscd: IsolatedPcscd, rsa_card: CardFile,
                                        pki: RealmPki, tmp_path: Path) -> None:
    with MitKdc(tmp_path / "kdc", REALM, pki) as kdc:
        principal = kdc.add_user("alice")
        env = {**kdc.env, **pcscd.env}
        with insert(rsa_card.card(), pcscd):
            result = run(["kinit", "-X", f"X509_user_identity=PKCS11:{OPENSC_PKCS11}",
                          principal], env, stdin=PIN + "\n", check=False)
            assert result.returncode == 0, result.stderr + "\n" + kdc.log()
        tickets = run(["klist"], env).stdout
        assert f"Default principal: {principal}" in tickets
        assert f"krbtgt/{REALM}@{REALM}" in tickets


def test_kinit_refuses_another_users_card(pcscd: IsolatedPcscd, rsa_card: CardFile,
                                          pki: RealmPki, tmp_path: Path) -> None:
    with MitKdc(tmp_path / "kdc", REALM, pki) as kdc:
        kdc.add_user("mallory")
        env = {**kdc.env, **pcscd.env}
        with insert(rsa_card.card(), pcscd):
            result = run(["kinit", "-X", f"X509_user_identity=PKCS11:{OPENSC_PKCS11}",
                          f"mallory@{REALM}"], env, stdin=PIN + "\n", check=False)
        assert result.returncode != 0
        assert "mismatch" in result.stderr.lower()
