"""Sign-in certificate validation: NTAuth, chain, validity, EKU, key usage, CRLs, UPN."""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.logon.ntauth import NtAuthStore
from rdscard.logon.settings import LogonConfig
from rdscard.logon.validation import (
    CertificateValidator,
    ReasonCode,
    SignInRefused,
    extract_upn,
    load_crls,
)
from rdscard.pki.ca import (
    OID_MS_SMARTCARD_LOGON,
    OID_MS_UPN,
    PrivateKey,
    RealmPki,
    generate_key,
    load_private_key,
)

NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


@pytest.fixture(scope="module")
def issuing_key(pki: RealmPki) -> PrivateKey:
    return load_private_key(pki.layout.issuing_key)


@pytest.fixture(scope="module")
def alice(pki: RealmPki) -> x509.Certificate:
    return pki.issue_user_certificate("alice", generate_key("p256").public_key())


def validator(pki: RealmPki, **kwargs: object) -> CertificateValidator:
    return CertificateValidator([pki.issuing_cert], **kwargs)  # type: ignore[arg-type]


def refused(v: CertificateValidator, cert: x509.Certificate,
            now: datetime.datetime = NOW) -> SignInRefused:
    with pytest.raises(SignInRefused) as info:
        v.validate(cert, now=now)
    return info.value


def make_crl(issuer: x509.Certificate, key: PrivateKey, serials: list[int], *,
             last: datetime.datetime = NOW - datetime.timedelta(hours=1),
             next_: datetime.datetime = NOW + datetime.timedelta(days=7)
             ) -> x509.CertificateRevocationList:
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.subject).last_update(last).next_update(next_))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(NOW - datetime.timedelta(minutes=5)).build())
    return builder.sign(key, hashes.SHA256())


# -- accepted ------------------------------------------------------------------------------
def test_trusted_certificate_is_accepted(pki: RealmPki, alice: x509.Certificate) -> None:
    result = validator(pki).validate(alice, now=NOW)
    assert result.upn == "alice@example.test"
    assert result.subject == alice.subject.rfc4514_string()
    assert result.issuer == pki.issuing_cert.subject.rfc4514_string()
    assert result.serial == alice.serial_number
    assert result.chain == (alice, pki.issuing_cert)  # the NTAuth CA is the anchor


def test_chain_up_to_a_configured_root(pki: RealmPki, alice: x509.Certificate) -> None:
    v = CertificateValidator([pki.issuing_cert], roots=[pki.root_cert])
    # The presented intermediate is the issuing CA; the path ends at an anchor either way.
    result = v.validate(alice, [pki.issuing_cert], now=NOW)
    assert result.chain[0] == alice and result.chain[1] == pki.issuing_cert


def test_certificate_without_upn_validates_with_upn_none(pki: RealmPki) -> None:
    cert = pki.issue_user_certificate("carol", generate_key("p256").public_key(), upn=False)
    assert validator(pki).validate(cert, now=NOW).upn is None


# -- NTAuth ---------------------------------------------------------------------------------
def test_untrusted_ca_is_refused_naming_the_issuer_and_the_fix(pki: RealmPki) -> None:
    cert = pki.issue_user_certificate("eve", generate_key("p256").public_key(), untrusted=True)
    error = refused(validator(pki), cert)
    assert error.reason_code is ReasonCode.NOT_IN_NTAUTH
    assert "CN=EXAMPLE.TEST Untrusted CA" in error.message
    assert "rdscard ntauth add" in error.message


def test_root_in_ntauth_is_not_enough(pki: RealmPki, alice: x509.Certificate) -> None:
    # Windows requires the issuing CA itself in NTAuth, not only a root above it.
    v = CertificateValidator([pki.root_cert], intermediates=[pki.issuing_cert])
    error = refused(v, alice)
    assert error.reason_code is ReasonCode.NOT_IN_NTAUTH
    assert "Test Issuing CA" in error.message


def test_forged_issuer_name_is_refused(pki: RealmPki) -> None:
    # Signed by another key under the issuing CA's name: the name alone proves nothing.
    forger = generate_key()
    key = generate_key("p256")
    cert = (x509.CertificateBuilder().subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")]))
            .issuer_name(pki.issuing_cert.subject).public_key(key.public_key())
            .serial_number(7).not_valid_before(NOW - datetime.timedelta(hours=1))
            .not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([OID_MS_SMARTCARD_LOGON]), critical=False)
            .sign(forger, hashes.SHA256()))
    assert refused(validator(pki), cert).reason_code is ReasonCode.NOT_IN_NTAUTH


def test_expired_ntauth_ca_breaks_the_chain(pki: RealmPki, alice: x509.Certificate) -> None:
    later = pki.issuing_cert.not_valid_after_utc + datetime.timedelta(days=1)
    leaf = pki.issue_user_certificate("dave", generate_key("p256").public_key(),
                                      now=later - datetime.timedelta(days=2))
    error = refused(validator(pki), leaf, later)
    assert error.reason_code is ReasonCode.CHAIN_INVALID
    assert "does not chain to a trusted CA" in error.message


# -- validity ---------------------------------------------------------------------------------
def test_expired_certificate_is_refused(pki: RealmPki) -> None:
    cert = pki.issue_user_certificate("old", generate_key("p256").public_key(), expired=True)
    error = refused(validator(pki), cert)
    assert error.reason_code is ReasonCode.EXPIRED
    assert "expired on" in error.message and "new sign-in certificate" in error.message


def test_validity_uses_the_injected_now(pki: RealmPki, alice: x509.Certificate) -> None:
    after = alice.not_valid_after_utc + datetime.timedelta(seconds=1)
    assert refused(validator(pki), alice, after).reason_code is ReasonCode.EXPIRED
    before = alice.not_valid_before_utc - datetime.timedelta(seconds=1)
    assert refused(validator(pki), alice, before).reason_code is ReasonCode.NOT_YET_VALID
    assert validator(pki).validate(alice, now=alice.not_valid_after_utc).upn


# -- EKU and key usage --------------------------------------------------------------------------
def _leaf(pki: RealmPki, issuing_key: PrivateKey, *, ekus: list[x509.ObjectIdentifier],
          digital_signature: bool = True, upn_value: bytes | None = None) -> x509.Certificate:
    key = generate_key("p256")
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custom")]))
               .issuer_name(pki.issuing_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(hours=1))
               .not_valid_after(NOW + datetime.timedelta(days=1))
               .add_extension(x509.KeyUsage(digital_signature, False, not digital_signature,
                                            False, False, False, False, False, False),
                              critical=True))
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if upn_value is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.OtherName(OID_MS_UPN, upn_value)]), critical=False)
    return builder.sign(issuing_key, hashes.SHA256())


def test_email_only_certificate_is_refused(pki: RealmPki, issuing_key: PrivateKey) -> None:
    cert = _leaf(pki, issuing_key, ekus=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    error = refused(validator(pki), cert)
    assert error.reason_code is ReasonCode.WRONG_EKU
    assert "1.3.6.1.4.1.311.20.2.2" in error.message


def test_no_eku_is_refused(pki: RealmPki, issuing_key: PrivateKey) -> None:
    assert refused(validator(pki), _leaf(pki, issuing_key, ekus=[])).reason_code \
        is ReasonCode.WRONG_EKU


@pytest.mark.parametrize("eku", [OID_MS_SMARTCARD_LOGON, ExtendedKeyUsageOID.CLIENT_AUTH])
def test_either_sign_in_eku_is_enough(pki: RealmPki, issuing_key: PrivateKey,
                                      eku: x509.ObjectIdentifier) -> None:
    assert validator(pki).validate(_leaf(pki, issuing_key, ekus=[eku]), now=NOW).upn is None


def test_key_usage_without_digital_signature_is_refused(pki: RealmPki,
                                                        issuing_key: PrivateKey) -> None:
    cert = _leaf(pki, issuing_key, ekus=[OID_MS_SMARTCARD_LOGON], digital_signature=False)
    assert refused(validator(pki), cert).reason_code is ReasonCode.WRONG_KEY_USAGE


def test_malformed_upn_is_refused(pki: RealmPki, issuing_key: PrivateKey) -> None:
    # IA5String "a@b.c" (16 05 ...) where the UPN must be a UTF8String (0C).
    cert = _leaf(pki, issuing_key, ekus=[OID_MS_SMARTCARD_LOGON],
                 upn_value=bytes.fromhex("1605") + b"a@b.c")
    error = refused(validator(pki), cert)
    assert error.reason_code is ReasonCode.BAD_UPN
    assert "UPN otherName" in error.message


def test_extract_upn(pki: RealmPki, alice: x509.Certificate, issuing_key: PrivateKey) -> None:
    assert extract_upn(alice) == "alice@example.test"
    # UTF8String "bob@x.test": 0C 0A 62 6F 62 40 78 2E 74 65 73 74
    cert = _leaf(pki, issuing_key, ekus=[OID_MS_SMARTCARD_LOGON],
                 upn_value=bytes.fromhex("0c0a626f6240782e74657374"))
    assert extract_upn(cert) == "bob@x.test"


# -- revocation -----------------------------------------------------------------------------------
def test_revoked_serial_is_refused(pki: RealmPki, issuing_key: PrivateKey,
                                   alice: x509.Certificate) -> None:
    crl = make_crl(pki.issuing_cert, issuing_key, [12345, alice.serial_number])
    error = refused(validator(pki, crls=[crl]), alice)
    assert error.reason_code is ReasonCode.REVOKED
    assert f"{alice.serial_number:X}" in error.message


def test_crl_without_the_serial_accepts(pki: RealmPki, issuing_key: PrivateKey,
                                        alice: x509.Certificate) -> None:
    crl = make_crl(pki.issuing_cert, issuing_key, [12345])
    v = validator(pki, crls=[crl], require_revocation_check=True)
    assert v.validate(alice, now=NOW).upn == "alice@example.test"


def test_expired_crl_is_refused(pki: RealmPki, issuing_key: PrivateKey,
                                alice: x509.Certificate) -> None:
    crl = make_crl(pki.issuing_cert, issuing_key, [], last=NOW - datetime.timedelta(days=9),
                   next_=NOW - datetime.timedelta(days=2))
    error = refused(validator(pki, crls=[crl]), alice)
    assert error.reason_code is ReasonCode.CRL_INVALID and "expired" in error.message


def test_future_crl_is_refused(pki: RealmPki, issuing_key: PrivateKey,
                               alice: x509.Certificate) -> None:
    crl = make_crl(pki.issuing_cert, issuing_key, [], last=NOW + datetime.timedelta(days=1),
                   next_=NOW + datetime.timedelta(days=8))
    assert refused(validator(pki, crls=[crl]), alice).reason_code is ReasonCode.CRL_INVALID


def test_wrongly_signed_crl_is_refused(pki: RealmPki, alice: x509.Certificate) -> None:
    _, other_key = pki.untrusted_ca()
    crl = make_crl(pki.issuing_cert, other_key, [])  # the issuing CA's name, another key
    error = refused(validator(pki, crls=[crl]), alice)
    assert error.reason_code is ReasonCode.CRL_INVALID
    assert "not signed by that CA" in error.message


def test_required_revocation_check_without_crl(pki: RealmPki, alice: x509.Certificate) -> None:
    error = refused(validator(pki, require_revocation_check=True), alice)
    assert error.reason_code is ReasonCode.REVOCATION_UNKNOWN
    assert "crl_files" in error.message
    # Without the requirement a missing CRL is no refusal.
    assert validator(pki).validate(alice, now=NOW).upn


# -- configuration -------------------------------------------------------------------------------
def test_from_config_reads_store_roots_and_crl_files(pki: RealmPki, issuing_key: PrivateKey,
                                                     alice: x509.Certificate,
                                                     tmp_path: Path) -> None:
    NtAuthStore.in_state_dir(tmp_path).add(pki.issuing_cert)
    crl_path = tmp_path / "issuing.crl"
    crl_path.write_bytes(make_crl(pki.issuing_cert, issuing_key, [alice.serial_number])
                         .public_bytes(serialization.Encoding.DER))
    config = LogonConfig.from_table({"roots": [str(pki.layout.root_cert)]})
    assert CertificateValidator.from_config(config, tmp_path).validate(alice, now=NOW).upn
    config = LogonConfig.from_table({"roots": [str(pki.layout.root_cert)],
                                     "crl_files": [str(crl_path)]})
    v = CertificateValidator.from_config(config, tmp_path)
    assert refused(v, alice).reason_code is ReasonCode.REVOKED


def test_bad_crl_file_is_a_config_error(tmp_path: Path) -> None:
    from rdscard.errors import ConfigError

    bad = tmp_path / "bad.crl"
    bad.write_bytes(b"not a crl")
    config = LogonConfig.from_table({"crl_files": [str(bad)]})
    with pytest.raises(ConfigError, match="is not a CRL"):
        CertificateValidator.from_config(config, tmp_path)


def test_empty_store_refuses_everything(alice: x509.Certificate) -> None:
    error = refused(CertificateValidator([]), alice)
    assert error.reason_code is ReasonCode.NOT_IN_NTAUTH


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_crl_files_of_arbitrary_bytes_raise_only_config_error(data: bytes) -> None:
    import tempfile

    from rdscard.errors import ConfigError

    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        with contextlib.suppress(ConfigError):
            load_crls([Path(f.name)])
