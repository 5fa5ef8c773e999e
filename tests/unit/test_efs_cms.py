"""The master key's CMS envelope: sealed for RSA and P-256 certificates, opened in software
and with the virtual card's slot 9D, and refused when altered or malformed."""

from __future__ import annotations

import os
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.efs import cms
from rdscard.efs.asn1 import encode_integer, encode_oid, seq, tlv
from rdscard.efs.keywrap import UnwrapError, aes_unwrap, oaep_decode
from rdscard.efs.operators import CardKeyOperator, SoftwareKeyOperator
from rdscard.pki.ca import CertProfile, RealmPki, generate_key
from rdscard.pki.piv_client import PivClient
from rdscard.pki.piv_codec import KeyRef
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.secret import Secret

PIN = b"123456"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def agent(pki: RealmPki, key_type: str) -> tuple[object, object]:
    key = generate_key(key_type)
    cert = pki.issue_user_certificate(f"agent-{key_type}", key.public_key(),
                                      profile=CertProfile.KEY_MANAGEMENT)
    return cert, key


def provisioned(pki: RealmPki, key_type: str) -> PivClient:
    card = VirtualPivCard(CardState.new(serial=0x7100, pin=PIN))
    client = PivClient(InProcessTransport(card))
    provision(client, pki, "alice", Credentials(), ProvisionOptions(key_type=key_type))
    client.select()
    return client


@pytest.mark.parametrize("key_type", ["rsa2048", "p256"])
def test_the_card_opens_its_recipient_entry_and_the_agent_opens_its_own(
        pki: RealmPki, key_type: str) -> None:
    client = provisioned(pki, key_type)
    card_cert = client.read_certificate(KeyRef.KEY_MANAGEMENT)
    assert card_cert is not None
    agent_cert, agent_key = agent(pki, "rsa2048" if key_type == "p256" else "p256")
    master = os.urandom(64)
    envelope = cms.parse_envelope(cms.seal(Secret(master), [card_cert, agent_cert]))
    assert len(envelope.recipients) == 2
    client.verify_pin(PIN)
    operator = CardKeyOperator(client, card_cert.public_key())
    recipient = envelope.recipient_for(card_cert)
    assert recipient is not None
    with cms.open_envelope(envelope, recipient, operator) as opened:
        assert bytes(opened.reveal()) == master
    assert operator.operations == 1
    agent_entry = envelope.recipient_for(agent_cert)  # type: ignore[arg-type]
    assert agent_entry is not None
    with cms.open_envelope(envelope, agent_entry,
                           SoftwareKeyOperator(agent_key)) as opened:  # type: ignore[arg-type]
        assert bytes(opened.reveal()) == master


def test_the_card_refuses_9d_without_the_pin(pki: RealmPki) -> None:
    client = provisioned(pki, "p256")
    card_cert = client.read_certificate(KeyRef.KEY_MANAGEMENT)
    assert card_cert is not None
    envelope = cms.parse_envelope(cms.seal(Secret(os.urandom(64)), [card_cert]))
    recipient = envelope.recipient_for(card_cert)
    assert recipient is not None
    with pytest.raises(Exception, match=r"6982|security"):
        cms.open_envelope(envelope, recipient, CardKeyOperator(client, card_cert.public_key()))


def test_a_certificate_that_is_no_recipient_is_not_found(pki: RealmPki) -> None:
    mine, _ = agent(pki, "p256")
    other, _ = agent(pki, "p256")
    envelope = cms.parse_envelope(cms.seal(Secret(os.urandom(64)), [mine]))  # type: ignore
    assert envelope.recipient_for(other) is None  # type: ignore[arg-type]


def test_an_altered_envelope_does_not_open(pki: RealmPki) -> None:
    cert, key = agent(pki, "p256")
    sealed = bytearray(cms.seal(Secret(os.urandom(64)), [cert]))  # type: ignore[list-item]
    envelope = cms.parse_envelope(bytes(sealed))
    recipient = envelope.recipient_for(cert)  # type: ignore[arg-type]
    assert isinstance(recipient, cms.KeyAgreeRecipient)
    bad = bytearray(recipient.encrypted_key)
    bad[5] ^= 1
    altered = cms.KeyAgreeRecipient(recipient.rid, recipient.originator_point, None,
                                    recipient.kdf_hash, recipient.wrap_algorithm,
                                    recipient.wrap_key_size, bytes(bad))
    with pytest.raises(UnwrapError, match="integrity"):
        cms.open_envelope(envelope, altered, SoftwareKeyOperator(key))  # type: ignore[arg-type]


@pytest.mark.parametrize("data, why", [
    (b"", "truncated"),
    (b"\x30\x80\x00\x00", "indefinite"),
    (bytes.fromhex("300f06092a864886f70d010701a0020400"), "not a CMS EnvelopedData"),
    (b"\x30\x05\x02\x01\x00", "overruns|unexpected"),
])
def test_malformed_envelopes_are_refused_with_a_clear_error(data: bytes, why: str) -> None:
    with pytest.raises(cms.EnvelopeError, match=why):
        cms.parse_envelope(data)


def test_rsa_pkcs1_v15_key_transport_is_refused(pki: RealmPki) -> None:
    cert, _ = agent(pki, "rsa2048")
    sealed = cms.seal(Secret(os.urandom(64)), [cert])  # type: ignore[list-item]
    oaep = bytes.fromhex("06092a864886f70d010107")
    v15 = bytes.fromhex("06092a864886f70d010101")
    with pytest.raises(cms.EnvelopeError, match=r"PKCS#1 v1\.5"):
        cms.parse_envelope(sealed.replace(oaep, v15))


def test_a_signing_certificate_cannot_receive_the_key(pki: RealmPki) -> None:
    key = generate_key("p256")
    cert = pki.issue_user_certificate("alice", key.public_key())
    with pytest.raises(cms.EnvelopeError, match="keyAgreement"):
        cms.seal(Secret(os.urandom(64)), [cert])


def test_oaep_decoding_matches_the_library_and_rejects_a_wrong_block() -> None:
    key = rsa.generate_private_key(65537, 2048)
    message = os.urandom(32)
    block = key.public_key().encrypt(message, padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    numbers = key.private_numbers()
    raw = pow(int.from_bytes(block, "big"), numbers.d,
              numbers.public_numbers.n).to_bytes(256, "big")
    assert bytes(oaep_decode(raw, "sha256")) == message
    with pytest.raises(UnwrapError, match="decryption error"):
        oaep_decode(raw, "sha1")
    with pytest.raises(UnwrapError, match="decryption error"):
        oaep_decode(b"\x01" + raw[1:], "sha256")


def test_aes_unwrap_inverts_the_library_wrap_and_checks_integrity() -> None:
    kek, cek = os.urandom(32), os.urandom(32)
    wrapped = aes_key_wrap(kek, cek)
    assert bytes(aes_unwrap(kek, wrapped)) == cek
    with pytest.raises(UnwrapError):
        aes_unwrap(os.urandom(32), wrapped)
    with pytest.raises(UnwrapError, match="multiple of 8"):
        aes_unwrap(kek, wrapped[:-1])


def test_a_point_off_the_card_key_curve_is_refused_before_the_card(pki: RealmPki) -> None:
    client = provisioned(pki, "p256")
    cert = client.read_certificate(KeyRef.KEY_MANAGEMENT)
    assert cert is not None
    operator = CardKeyOperator(client, cert.public_key())  # type: ignore[arg-type]
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    from cryptography.hazmat.primitives import serialization
    point = other.public_bytes(serialization.Encoding.X962,
                               serialization.PublicFormat.UncompressedPoint)
    with pytest.raises(UnwrapError, match="curve"):
        operator.agree(point)
    assert operator.operations == 0


# -- fuzz findings (bench/fuzz_decoders.py --only cms_envelope): each an IndexError before ----
def _enveloped(info: bytes, algorithm: bytes | None = None) -> bytes:
    """A ContentInfo whose only RecipientInfo is ``info`` (raw DER), with AES-256-CBC content
    (or the contentEncryptionAlgorithm ``algorithm``)."""
    if algorithm is None:
        algorithm = seq(encode_oid(cms.AES256_CBC), tlv(0x04, bytes(16)))
    content = seq(encode_oid(cms.ID_DATA), algorithm, tlv(0x80, bytes(16)))
    body = seq(encode_integer(2), tlv(0x31, info), content)
    return seq(encode_oid(cms.ID_ENVELOPED_DATA), tlv(0xA0, body))


RID = seq(seq(), encode_integer(1))  # issuer (an empty Name) and serial 1
SHA256 = seq(encode_oid(cms.HASH_OIDS["sha256"]))
WRAP = seq(encode_oid(cms.AES256_WRAP))
ORIGINATOR = tlv(0xA0, tlv(0xA1, seq(encode_oid(cms.ID_EC_PUBLIC_KEY))
                           + tlv(0x03, b"\x00\x04" + bytes(64))))
REKS = seq(seq(RID, tlv(0x04, bytes(40))))


def _ktri(params: bytes) -> bytes:
    algorithm = seq(encode_oid(cms.ID_RSAES_OAEP), params) if params != b"-" else seq()
    return seq(encode_integer(0), RID, algorithm, tlv(0x04, bytes(256)))


def _kari(originator: bytes = ORIGINATOR, ukm: bytes | None = None,
          kea: bytes = seq(encode_oid(cms.STD_DH_SHA256), WRAP)) -> bytes:
    parts = [encode_integer(3), originator, *([ukm] if ukm is not None else []), kea, REKS]
    return tlv(0xA1, b"".join(parts))


@pytest.mark.parametrize("info", [
    _ktri(seq(tlv(0xA0, b""))),  # OAEP hash [0] empty (_parse_oaep)
    _ktri(seq(tlv(0xA1, b""))),  # OAEP maskGenAlgorithm [1] empty (_parse_oaep)
    _ktri(seq(tlv(0xA0, seq()))),  # OAEP hash AlgorithmIdentifier empty (_hash_of)
    _ktri(seq(tlv(0xA1, seq(encode_oid(cms.ID_MGF1), seq())))),  # MGF1 hash empty
    _ktri(b"-"),  # keyEncryptionAlgorithm an empty SEQUENCE
    _kari(originator=tlv(0xA0, b"")),  # originator [0] empty (_parse_kari)
    _kari(ukm=tlv(0xA1, b"")),  # ukm [1] empty
    _kari(kea=seq()),  # keyEncryptionAlgorithm empty
    _kari(kea=seq(encode_oid(cms.STD_DH_SHA256), seq())),  # KeyWrapAlgorithm empty
], ids=["oaep-hash", "oaep-mgf", "oaep-hash-alg", "mgf1-hash", "ktri-alg", "originator",
        "ukm", "kari-alg", "wrap-alg"])
def test_empty_constructed_fields_are_malformed_envelopes(info: bytes) -> None:
    envelope = _enveloped(info)
    with pytest.raises(cms.EnvelopeError, match="malformed envelope"):
        cms.parse_envelope(envelope)


def test_empty_content_and_content_algorithm_are_malformed_envelopes() -> None:
    info = _ktri(cms._oaep_params("sha256"))
    assert len(cms.parse_envelope(_enveloped(info)).recipients) == 1  # the frame is sound
    with pytest.raises(cms.EnvelopeError, match="malformed envelope"):
        cms.parse_envelope(_enveloped(info, algorithm=seq()))
    with pytest.raises(cms.EnvelopeError, match="malformed envelope"):
        cms.parse_envelope(seq(encode_oid(cms.ID_ENVELOPED_DATA), tlv(0xA0, b"")))


def test_a_huge_object_identifier_is_refused_at_once() -> None:
    huge = tlv(0x06, b"\x2a" + b"\xff" * 200_000 + b"\x01")
    started = time.perf_counter()
    with pytest.raises(cms.EnvelopeError, match="object identifier"):
        cms.parse_envelope(seq(huge, tlv(0xA0, seq())))
    assert time.perf_counter() - started < 0.5
