"""The KDC's trust anchors above the NTAuth CAs, and the TGT check's refusals (no KDC)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from rdscard.errors import ConfigError
from rdscard.logon.kdc_trust import ntauth_roots, write_anchors
from rdscard.logon.ntauth import parse_certificates
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import KdcSettings
from rdscard.pki.ca import RealmPki, generate_key, make_ca


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealmPki, RealmPki]:
    return (RealmPki.create(tmp_path_factory.mktemp("a"), "EXAMPLE.TEST", "example.test"),
            RealmPki.create(tmp_path_factory.mktemp("b"), "PARTNER.TEST", "partner.test"))


def test_each_ntauth_ca_brings_its_own_root_only(pkis: tuple[RealmPki, RealmPki]) -> None:
    home, partner = pkis
    roots = [home.root_cert, partner.root_cert]
    assert ntauth_roots([partner.issuing_cert], roots) == [partner.root_cert]
    assert ntauth_roots([home.issuing_cert, partner.issuing_cert, home.issuing_cert],
                        roots) == [home.root_cert, partner.root_cert]
    assert ntauth_roots([], roots) == []


def test_an_ntauth_ca_with_no_configured_root_brings_nothing(
        pkis: tuple[RealmPki, RealmPki]) -> None:
    home, partner = pkis
    assert ntauth_roots([partner.issuing_cert], [home.root_cert]) == []
    # a root is never taken for another root's CA because the names alone match
    assert ntauth_roots([home.issuing_cert], []) == []


def test_a_self_signed_ntauth_ca_is_its_own_anchor(pkis: tuple[RealmPki, RealmPki]) -> None:
    home, _ = pkis
    assert ntauth_roots([home.root_cert], []) == [home.root_cert]


def test_the_path_runs_through_intermediates(pkis: tuple[RealmPki, RealmPki]) -> None:
    home, _ = pkis
    now = datetime.datetime.now(datetime.UTC)
    key = generate_key("p256")
    # a CA below the issuing CA (path length 0 aside: only the names and signatures count here)
    sub = make_ca("Sub CA", "test", key, issuer_cert=home.issuing_cert,
                  issuer_key=home._issuing_key, path_length=0, now=now)
    assert ntauth_roots([sub], [home.root_cert]) == []  # the issuing CA is unknown
    assert ntauth_roots([sub], [home.root_cert], [home.issuing_cert]) == [home.root_cert]


def test_anchor_bundle_is_replaced_whole(tmp_path: Path,
                                         pkis: tuple[RealmPki, RealmPki]) -> None:
    home, partner = pkis
    path = tmp_path / "state" / "kdc-anchors.pem"
    write_anchors([home.root_cert, partner.root_cert], path)
    write_anchors([partner.root_cert], path)
    assert parse_certificates(path.read_bytes(), "bundle") == [partner.root_cert]
    assert [p.name for p in path.parent.iterdir()] == ["kdc-anchors.pem"]


def test_validate_turns_the_keytab_check_on_for_every_tgt() -> None:
    settings = KdcSettings.from_table({"validate": True,
                                       "validate_principal": "host/rdsh.example.test@EX.TEST",
                                       "validate_keytab": "/etc/rdscard/host.keytab"})
    assert settings.validate and not settings.card_roots
    assert str(settings.validate_keytab) == "/etc/rdscard/host.keytab"
    assert KdcSettings.from_table({}).validate is False
    with pytest.raises(ConfigError, match="validate"):
        KdcSettings.from_table({"validate": "yes"})


def test_validation_runs_for_every_tgt_with_validate(tmp_path: Path) -> None:
    """A kinit that leaves a TGT, then a kvno that refuses: the sign-in is refused."""
    from rdscard.logon.pkinit import run_pkinit
    from rdscard.secret import Secret
    from tests.unit.test_logon_pkinit import CCACHE_V4

    cache = tmp_path / "tgt.ccache"
    cache.write_bytes(CCACHE_V4)
    kinit = tmp_path / "kinit"
    kinit.write_text("#!/bin/sh\ncat > /dev/null\ncp " + str(cache)
                     + ' "${KRB5CCNAME#FILE:}"\n')
    kinit.chmod(0o755)
    kvno = tmp_path / "kvno"
    kvno.write_text("#!/bin/sh\necho 'kvno: Server not found in Kerberos database' >&2\n"
                    "exit 1\n")
    kvno.chmod(0o755)
    for validate, refused in ((False, False), (True, True)):
        settings = KdcSettings.from_table({"kinit": str(kinit), "kvno": str(kvno),
                                           "validate": validate,
                                           "validate_principal": "host/rdsh@EXAMPLE.TEST"})
        base = tmp_path / f"cc-{validate}"
        if refused:
            with pytest.raises(SignInRefused) as info:
                run_pkinit("alice@EXAMPLE.TEST", Secret(b"123456"), settings,
                           ccache_base=base, base_env={"PATH": "/usr/bin:/bin"})
            assert info.value.reason_code is ReasonCode.TGT_UNVERIFIED
            assert "Server not found" in info.value.message
            assert list(base.iterdir()) == []
        else:
            result = run_pkinit("alice@EXAMPLE.TEST", Secret(b"123456"), settings,
                                ccache_base=base, base_env={"PATH": "/usr/bin:/bin"})
            assert result.principal == "alice@EXAMPLE.TEST"


def test_a_realm_whose_kdcs_krb5_conf_does_not_list_is_refused_before_kinit(
        tmp_path: Path, pkis: tuple[RealmPki, RealmPki]) -> None:
    from rdscard.logon.pkinit import run_pkinit
    from rdscard.secret import Secret

    conf = tmp_path / "krb5.conf"
    conf.write_text("[realms]\n    EXAMPLE.TEST = {\n        kdc = 127.0.0.1:88\n    }\n")
    ran = tmp_path / "kinit-ran"
    kinit = tmp_path / "kinit"
    kinit.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    kinit.chmod(0o755)
    settings = KdcSettings.from_table({"krb5_config": str(conf), "kinit": str(kinit)})
    pin = Secret(b"123456")
    with pytest.raises(SignInRefused) as info:
        run_pkinit("carol@PARTNER.TEST", pin, settings, ccache_base=tmp_path / "cc",
                   kdc_issuers=[pkis[1].issuing_cert])
    assert info.value.reason_code is ReasonCode.KDC_UNKNOWN
    assert "[realms] PARTNER.TEST kdc" in info.value.message
    assert not ran.exists() and list((tmp_path / "cc").iterdir()) == []
    assert pin.reveal() == bytearray()  # wiped
