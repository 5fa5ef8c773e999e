"""KB5014754 strong certificate mapping: the SID extension codec and the decision table."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from rdscard.cli.main import main
from rdscard.directory.strong import (
    StrongMapping,
    certificate_sid,
    check_mapping,
    strong_alt_identity,
)
from rdscard.errors import ProtocolError
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.pki.ca import RealmPki
from rdscard.pki.der import decode_sid_extension, encode_sid_extension, is_sid

SID = "S-1-5-21-1-2-3-1105"
OTHER = "S-1-5-21-1-2-3-1106"
# GeneralNames { otherName { type-id szOID_NTDS_OBJECTSID, value [0] OCTET STRING "S-1-..." } }
SID_EXT = bytes.fromhex(
    "3025"                          # SEQUENCE (GeneralNames), 37 bytes
    "a023"                          # [0] otherName, 35 bytes
    "060a2b060104018237190201"      # OID 1.3.6.1.4.1.311.25.2.1
    "a015"                          # [0] EXPLICIT value
    "0413") + SID.encode()          # OCTET STRING, 19 bytes of ASCII


def test_sid_extension_encodes_as_windows_writes_it() -> None:
    assert encode_sid_extension(SID) == SID_EXT
    assert decode_sid_extension(SID_EXT) == SID


@pytest.mark.parametrize("bad", [
    SID_EXT + b"\x00",                                            # trailing bytes
    SID_EXT.replace(bytes.fromhex("190201"), bytes.fromhex("190202")),  # another type-id
    SID_EXT.replace(b"S-1-5", b"X-1-5"),                          # not a SID string
    SID_EXT[:-1],                                                 # truncated
    bytes.fromhex("3027") + SID_EXT[2:] + bytes.fromhex("8200"),  # a second name
    b"",
])
def test_malformed_sid_extensions_are_errors(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_sid_extension(bad)


def test_sid_strings() -> None:
    assert is_sid("S-1-5-21-3623811015-3361044348-30300820-1013") and is_sid("S-1-5-18")
    for bad in ("S-1-5", "s-1-5-18", "S-1-5-18-", "S-1-5-x", "S-1-5-18\n"):
        assert not is_sid(bad)
    with pytest.raises(ValueError):
        encode_sid_extension("alice")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


@pytest.fixture(scope="module")
def certs(pki: RealmPki) -> dict[str, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {"sid": pki.issue_user_certificate("alice", key, sid=SID),
            "other": pki.issue_user_certificate("alice", key, sid=OTHER),
            "none": pki.issue_user_certificate("alice", key)}


def test_issued_certificate_carries_the_sid(certs: dict[str, x509.Certificate]) -> None:
    assert certificate_sid(certs["sid"]) == SID
    assert certificate_sid(certs["none"]) is None
    ext = certs["sid"].extensions.get_extension_for_oid(
        x509.ObjectIdentifier("1.3.6.1.4.1.311.25.2"))
    assert not ext.critical


def issuer_serial(cert: x509.Certificate) -> str:
    """As Windows writes it: issuer most significant RDN first, serial bytes reversed."""
    issuer = ",".join(rdn.rfc4514_string() for rdn in cert.issuer.rdns)
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
    return f"X509:<I>{issuer}<SR>{serial[::-1].hex().upper()}"


def test_strong_alt_security_identities(certs: dict[str, x509.Certificate]) -> None:
    cert = certs["none"]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    sha1 = hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest()
    assert strong_alt_identity(cert, (issuer_serial(cert),)) == "X509IssuerSerial"
    rfc4514 = f"X509:<I>{cert.issuer.rfc4514_string()}<SR>" + issuer_serial(cert).split(
        "<SR>")[1]
    assert strong_alt_identity(cert, (rfc4514,)) == "X509IssuerSerial"
    assert strong_alt_identity(cert, (f"X509:<SKI>{ski.hex().upper()}",)) == "X509SKI"
    assert strong_alt_identity(cert, (f"X509:<SHA1-PUKEY>{sha1}",)) == "X509SHA1PublicKey"
    # weak forms, another certificate's serial, another certificate's hash: not strong
    subject = ",".join(rdn.rfc4514_string() for rdn in cert.subject.rdns)
    issuer = ",".join(rdn.rfc4514_string() for rdn in cert.issuer.rdns)
    assert strong_alt_identity(cert, (
        f"X509:<I>{issuer}<S>{subject}", f"X509:<S>{subject}", "X509:<RFC822>alice@example.test",
        issuer_serial(certs["sid"]), f"X509:<SHA1-PUKEY>{'0' * 40}", "Kerberos:alice",
    )) is None


@pytest.mark.parametrize(("mode", "cert", "alt", "outcome"), [
    (StrongMapping.OFF, "none", False, "allowed"),
    (StrongMapping.OFF, "other", False, "allowed"),
    (StrongMapping.COMPATIBILITY, "sid", False, "strong"),
    (StrongMapping.COMPATIBILITY, "none", True, "strong"),
    (StrongMapping.COMPATIBILITY, "none", False, "warning"),
    (StrongMapping.COMPATIBILITY, "other", False, ReasonCode.SID_MISMATCH),
    (StrongMapping.COMPATIBILITY, "other", True, ReasonCode.SID_MISMATCH),
    (StrongMapping.FULL, "sid", False, "strong"),
    (StrongMapping.FULL, "none", True, "strong"),
    (StrongMapping.FULL, "none", False, ReasonCode.WEAK_MAPPING),
    (StrongMapping.FULL, "other", True, ReasonCode.SID_MISMATCH),
])
def test_decision_table(certs: dict[str, x509.Certificate], mode: StrongMapping, cert: str,
                        alt: bool, outcome: str | ReasonCode) -> None:
    identities = (issuer_serial(certs[cert]),) if alt else ("X509:<S>CN=alice",)
    if isinstance(outcome, ReasonCode):
        with pytest.raises(SignInRefused) as info:
            check_mapping(mode, certs[cert], "alice", SID, identities)
        assert info.value.reason_code is outcome
        return
    result = check_mapping(mode, certs[cert], "alice", SID, identities)
    assert bool(result.how) is (outcome == "strong")
    assert bool(result.warning) is (outcome == "warning")


def test_a_malformed_sid_extension_is_refused(pki: RealmPki) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = pki.issue_user_certificate("alice", key)
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
               .public_key(key).serial_number(1).not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc)
               .add_extension(x509.UnrecognizedExtension(
                   x509.ObjectIdentifier("1.3.6.1.4.1.311.25.2"), b"\x30\x00"), critical=False))
    bad = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    with pytest.raises(SignInRefused) as info:
        check_mapping(StrongMapping.FULL, bad, "alice", SID, ())
    assert info.value.reason_code is ReasonCode.SID_MISMATCH and "malformed" in info.value.message


def test_pki_issue_with_sid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "create", "--dir", str(tmp_path / "pki"), "--realm", "EXAMPLE.TEST",
                 "--domain", "example.test"]) == 0
    out = tmp_path / "alice.pem"
    assert main(["pki", "issue", "--dir", str(tmp_path / "pki"), "--user", "alice",
                 "--key-type", "p256", "--sid", SID, "--out", str(out)]) == 0
    assert certificate_sid(x509.load_pem_x509_certificate(out.read_bytes())) == SID
    assert main(["pki", "issue", "--dir", str(tmp_path / "pki"), "--user", "alice",
                 "--key-type", "p256", "--sid", "alice", "--out", str(out)]) != 0
    assert "objectSid as S-1-5-21" in capsys.readouterr().err
