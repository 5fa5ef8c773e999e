"""The KDC's trust anchors above the NTAuth CAs, and the TGT check's refusals (no KDC)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from rdscard.errors import ConfigError
from rdscard.logon.kdc_trust import kvno_program, ntauth_roots, verify_tgt, write_anchors
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


def test_kvno_sits_beside_a_configured_kinit() -> None:
    assert kvno_program("kinit") == "kvno"
    assert kvno_program("/opt/krb5/bin/kinit") == "/opt/krb5/bin/kvno"


def test_a_failed_check_names_the_trust_and_the_keytab(tmp_path: Path) -> None:
    fake = tmp_path / "kinit"
    (tmp_path / "kvno").write_text("#!/bin/sh\necho 'kvno: Server not found in Kerberos "
                                   "database while getting credentials' >&2\nexit 1\n")
    (tmp_path / "kvno").chmod(0o755)
    with pytest.raises(SignInRefused) as info:
        verify_tgt("FILE:/nonexistent", "host/rdsh@EXAMPLE.TEST", "", env={"PATH": "/bin"},
                   kinit=str(fake))
    assert info.value.reason_code is ReasonCode.TGT_UNVERIFIED
    assert "Server not found" in info.value.message and "trust" in info.value.message


def test_a_missing_kvno_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(SignInRefused) as info:
        verify_tgt("FILE:/x", "host/rdsh@EXAMPLE.TEST", "/k", env={},
                   kinit=str(tmp_path / "kinit"))
    assert info.value.reason_code is ReasonCode.TGT_UNVERIFIED
    assert "krb5-user" in info.value.message


@pytest.mark.parametrize("service", ["host", "host/rdsh", "-k@X", "a b@X", "host/@X"])
def test_verify_service_must_be_a_principal(service: str) -> None:
    with pytest.raises(ConfigError, match="verify_service"):
        KdcSettings.from_table({"verify_service": service})


def test_verify_settings_parse() -> None:
    settings = KdcSettings.from_table({"verify_service": "host/rdsh.example.test@EXAMPLE.TEST",
                                       "verify_keytab": "/etc/rdscard/host.keytab"})
    assert settings.verify_service == "host/rdsh.example.test@EXAMPLE.TEST"
    assert settings.verify_keytab == "/etc/rdscard/host.keytab"
    assert KdcSettings.from_table({}).verify_service == ""


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
