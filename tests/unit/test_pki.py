"""Test PKI: DER otherName values, certificate profiles, chains, files and negative options."""

from __future__ import annotations

import contextlib
import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ConfigError, ProtocolError
from rdscard.pki.ca import (
    OID_MS_EFS,
    OID_MS_SMARTCARD_LOGON,
    OID_MS_UPN,
    OID_PKINIT_KPKDC,
    OID_PKINIT_SAN,
    CertProfile,
    RealmPki,
    generate_key,
)
from rdscard.pki.der import Krb5PrincipalName, NameType, decode_upn, encode_length, encode_upn
from rdscard.pki.inspect import summarize

# RFC 4556 3.2.2 KRB5PrincipalName for krbtgt/EXAMPLE.TEST@EXAMPLE.TEST, by hand:
KRBTGT_DER = bytes.fromhex(
    "3033"  # KRB5PrincipalName SEQUENCE, 51 bytes
    "a00e"  # [0] realm
    "1b0c4558414d504c452e54455354"  # GeneralString "EXAMPLE.TEST"
    "a121"  # [1] principalName
    "301f"  # PrincipalName SEQUENCE
    "a003020102"  # [0] name-type INTEGER 2 (KRB5_NT_SRV_INST)
    "a118"  # [1] name-string
    "3016"  # SEQUENCE OF KerberosString
    "1b066b7262746774"  # "krbtgt"
    "1b0c4558414d504c452e54455354"  # "EXAMPLE.TEST"
)
# The UPN otherName value: UTF8String "alice@example.test".
UPN_DER = bytes.fromhex("0c12" "616c696365406578616d706c652e74657374")


# -- DER values ------------------------------------------------------------------


def test_krbtgt_principal_encodes_to_the_hand_built_der() -> None:
    name = Krb5PrincipalName.parse("krbtgt/EXAMPLE.TEST@EXAMPLE.TEST")
    assert name.name_type == NameType.KRB5_NT_SRV_INST
    assert name.encode() == KRBTGT_DER
    assert len(name.encode()) == 53


def test_krbtgt_principal_decodes_and_round_trips() -> None:
    name = Krb5PrincipalName.decode(KRBTGT_DER)
    assert name == Krb5PrincipalName("EXAMPLE.TEST", 2, ("krbtgt", "EXAMPLE.TEST"))
    assert str(name) == "krbtgt/EXAMPLE.TEST@EXAMPLE.TEST"
    assert Krb5PrincipalName.decode(name.encode()) == name


def test_user_principal_has_nt_principal() -> None:
    name = Krb5PrincipalName.parse("alice@EXAMPLE.TEST")
    assert name.name_type == NameType.KRB5_NT_PRINCIPAL
    assert Krb5PrincipalName.decode(name.encode()).name_string == ("alice",)


def test_principal_without_realm_is_refused() -> None:
    with pytest.raises(ValueError, match="no realm"):
        Krb5PrincipalName.parse("alice")


def test_upn_value_encodes_and_decodes() -> None:
    assert encode_upn("alice@example.test") == UPN_DER
    assert decode_upn(UPN_DER) == "alice@example.test"


def test_der_long_lengths() -> None:
    assert encode_length(0x7F) == b"\x7f"
    assert encode_length(0x80) == b"\x81\x80"
    assert encode_length(0x1234) == b"\x82\x12\x34"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (KRBTGT_DER[:-1], "KRB5PrincipalName"),  # outer length promises one more byte
        (KRBTGT_DER + b"\x00", "(end)"),  # trailing byte
        (b"\x31" + KRBTGT_DER[1:], "KRB5PrincipalName tag"),  # SET, not SEQUENCE
        # name-string claims 0x17 bytes inside a 0x18 box holding 0x16: truncated inside
        (KRBTGT_DER[:30] + b"\x17" + KRBTGT_DER[31:], "name-string"),
        (bytes.fromhex("3081033003020100"), "KRB5PrincipalName length"),  # non-minimal length
    ],
)
def test_malformed_principal_names_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as err:
        Krb5PrincipalName.decode(data)
    assert err.value.pdu == "KRB5PrincipalName"
    assert err.value.field.startswith(field.split()[0])


def test_upn_with_bad_utf8_is_refused() -> None:
    with pytest.raises(ProtocolError, match="utf-8"):
        decode_upn(b"\x0c\x02\xff\xfe")


@given(st.binary(max_size=200))
def test_principal_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        Krb5PrincipalName.decode(data)


@given(st.binary(max_size=64))
def test_upn_decoder_raises_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_upn(data)


@given(st.lists(st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True), min_size=1, max_size=4),
       st.from_regex(r"[A-Z]{1,10}\.TEST", fullmatch=True))
def test_principal_round_trip_property(parts: list[str], realm: str) -> None:
    name = Krb5PrincipalName(realm, 1, tuple(parts))
    assert Krb5PrincipalName.decode(name.encode()) == name


# -- the PKI ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


@pytest.fixture(scope="module")
def user_key() -> rsa.RSAPrivateKey:
    key = generate_key("rsa2048")
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _verify_client(pki: RealmPki, cert: x509.Certificate,
                   when: datetime.datetime | None = None) -> None:
    store = verification.Store([pki.root_cert])
    builder = verification.PolicyBuilder().store(store)
    if when is not None:
        builder = builder.time(when)
    builder.build_client_verifier().verify(cert, [pki.issuing_cert])


def _other_names(cert: x509.Certificate) -> dict[str, bytes]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {o.type_id.dotted_string: o.value for o in san.get_values_for_type(x509.OtherName)}


def test_layout_and_key_modes(pki: RealmPki) -> None:
    layout = pki.layout
    for path in (layout.root_cert, layout.issuing_cert, layout.chain, layout.kdc_cert,
                 layout.kdc_chain, layout.metadata):
        assert path.is_file()
    for path in (layout.root_key, layout.issuing_key, layout.kdc_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(layout.chain.read_bytes())
    assert chain == [pki.issuing_cert, pki.root_cert]


def test_ca_hierarchy(pki: RealmPki) -> None:
    root_bc = pki.root_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    issuing_bc = pki.issuing_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert root_bc.ca and root_bc.path_length == 1
    assert issuing_bc.ca and issuing_bc.path_length == 0
    pki.issuing_cert.verify_directly_issued_by(pki.root_cert)
    pki.kdc_cert.verify_directly_issued_by(pki.issuing_cert)


def test_kdc_certificate_profile(pki: RealmPki) -> None:
    eku = pki.kdc_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [OID_PKINIT_KPKDC, ExtendedKeyUsageOID.SERVER_AUTH]
    others = _other_names(pki.kdc_cert)
    assert others[OID_PKINIT_SAN.dotted_string] == KRBTGT_DER


def test_user_authentication_certificate_profile(pki: RealmPki,
                                                 user_key: rsa.RSAPrivateKey) -> None:
    cert = pki.issue_user_certificate("alice", user_key.public_key(), pkinit_san=True)
    others = _other_names(cert)
    assert others[OID_MS_UPN.dotted_string] == UPN_DER
    assert Krb5PrincipalName.decode(others[OID_PKINIT_SAN.dotted_string]) == \
        Krb5PrincipalName("EXAMPLE.TEST", 1, ("alice",))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [OID_MS_SMARTCARD_LOGON, ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_encipherment
    _verify_client(pki, cert)
    summary = summarize(cert)
    assert summary.upns == ("alice@example.test",)
    assert summary.pkinit_principals == ("alice@EXAMPLE.TEST",)
    assert summary.problems == ()


def test_key_management_certificate_profile(pki: RealmPki, user_key: rsa.RSAPrivateKey) -> None:
    cert = pki.issue_user_certificate("alice", user_key.public_key(),
                                      profile=CertProfile.KEY_MANAGEMENT)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment and not usage.digital_signature
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.EMAIL_PROTECTION, OID_MS_EFS}
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_cert = pki.issue_user_certificate("alice", ec_key.public_key(),
                                         profile=CertProfile.KEY_MANAGEMENT)
    ec_usage = ec_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ec_usage.key_agreement and not ec_usage.key_encipherment


def test_certificate_without_upn(pki: RealmPki, user_key: rsa.RSAPrivateKey) -> None:
    cert = pki.issue_user_certificate("alice", user_key.public_key(), upn=False)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert summarize(cert).upns == ()


def test_expired_certificate_fails_verification(pki: RealmPki,
                                                user_key: rsa.RSAPrivateKey) -> None:
    cert = pki.issue_user_certificate("alice", user_key.public_key(), expired=True)
    assert cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    with pytest.raises(verification.VerificationError):
        _verify_client(pki, cert)


def test_untrusted_certificate_fails_verification(pki: RealmPki,
                                                  user_key: rsa.RSAPrivateKey) -> None:
    cert = pki.issue_user_certificate("alice", user_key.public_key(), untrusted=True)
    untrusted_ca, _ = pki.untrusted_ca()
    cert.verify_directly_issued_by(untrusted_ca)
    with pytest.raises(verification.VerificationError):
        _verify_client(pki, cert)
    # The same CA is reused, not recreated.
    assert pki.untrusted_ca()[0] == untrusted_ca


def test_load_returns_the_same_pki(pki: RealmPki, user_key: rsa.RSAPrivateKey) -> None:
    loaded = RealmPki.load(pki.directory)
    assert (loaded.realm, loaded.domain) == ("EXAMPLE.TEST", "example.test")
    assert loaded.root_cert == pki.root_cert and loaded.kdc_cert == pki.kdc_cert
    cert = loaded.issue_user_certificate("bob", user_key.public_key())
    _verify_client(pki, cert)


def test_software_user_files(pki: RealmPki) -> None:
    cert, key = pki.create_software_user("carol", key_type="p256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    layout = pki.layout
    assert stat.S_IMODE(layout.user_key("carol", CertProfile.AUTHENTICATION).stat().st_mode) \
        == 0o600
    on_disk = x509.load_pem_x509_certificate(
        layout.user_cert("carol", CertProfile.AUTHENTICATION).read_bytes())
    assert on_disk == cert
    assert "carol" in pki.users()


def test_create_refuses_existing_pki_and_bad_names(pki: RealmPki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="already holds a PKI"):
        RealmPki.create(pki.directory, "EXAMPLE.TEST", "example.test")
    with pytest.raises(ConfigError, match="upper case"):
        RealmPki.create(tmp_path / "x", "example.test", "example.test")
    with pytest.raises(ConfigError, match="not allowed"):
        pki.upn("../etc")
    with pytest.raises(ConfigError, match="holds no PKI"):
        RealmPki.load(tmp_path / "missing")
