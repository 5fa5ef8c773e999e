"""The KDC's certificate seen through the relay: krb5.conf KDC lists, the PA-PK-AS-REP
walk (RFC 4556 3.2.3 in EXPLICIT tags), the NTAuth issuer check, the TCP relay itself."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from rdscard.efs.asn1 import encode_oid
from rdscard.errors import ProtocolError
from rdscard.logon.kdc_relay import KdcRelay, kdc_certificates, overlay, realm_kdcs
from rdscard.logon.kdc_trust import check_kdc_issuer, kdc_certificate
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.pki.ca import RealmPki
from rdscard.pki.der import encode_integer, tlv


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealmPki, RealmPki]:
    return (RealmPki.create(tmp_path_factory.mktemp("a"), "EXAMPLE.TEST", "example.test"),
            RealmPki.create(tmp_path_factory.mktemp("b"), "PARTNER.TEST", "partner.test"))


def test_kdcs_come_from_the_realms_block_of_every_file_in_order(tmp_path: Path) -> None:
    first = tmp_path / "a.conf"
    first.write_text(
        "[libdefaults]\n    default_realm = EXAMPLE.TEST\n"
        "[realms]\n"
        "    EXAMPLE.TEST = {\n        kdc = kdc1.example.test\n"
        "        auth_to_local = {\n            kdc = not-a-kdc\n        }\n"
        "        # kdc = commented.example.test\n"
        "        kdc = tcp/kdc2.example.test:8888\n        kdc = udp/kdc3.example.test\n"
        "        kdc = https://kkdcp.example.test/KdcProxy\n"
        "        kdc = [2001:db8::1]:750\n    }\n"
        "    PARTNER.TEST = {\n        kdc = kdc.partner.test\n    }\n"
        "[domain_realm]\n    kdc = x\n")
    second = tmp_path / "b.conf"
    second.write_text("[realms]\nEXAMPLE.TEST = {\n kdc = 127.0.0.1:99\n"
                      " kdc = kdc1.example.test\n}\n")
    assert realm_kdcs([first, tmp_path / "missing.conf", second], "EXAMPLE.TEST") == [
        ("kdc1.example.test", 88), ("kdc2.example.test", 8888), ("2001:db8::1", 750),
        ("127.0.0.1", 99)]
    assert realm_kdcs([first], "PARTNER.TEST") == [("kdc.partner.test", 88)]
    assert realm_kdcs([first], "OTHER.TEST") == []


def test_the_overlay_puts_the_relay_first_over_tcp() -> None:
    text = overlay("PARTNER.TEST", 4242)
    assert "udp_preference_limit = 1" in text and "kdc = 127.0.0.1:4242" in text


def as_rep(padata: list[tuple[int, bytes]]) -> bytes:
    """A KDC-REP with ``padata`` and dummy later fields, as [APPLICATION 11]."""
    items = b"".join(tlv(0x30, tlv(0xA1, encode_integer(kind)) + tlv(0xA2, tlv(0x04, value)))
                     for kind, value in padata)
    body = (tlv(0xA0, encode_integer(5)) + tlv(0xA1, encode_integer(11))
            + tlv(0xA2, tlv(0x30, items)) + tlv(0xA3, tlv(0x1B, b"PARTNER.TEST")))
    return tlv(0x6B, tlv(0x30, body))


def dh_rep(certificates: list[x509.Certificate]) -> bytes:
    signed = pkcs7.serialize_certificates(certificates, serialization.Encoding.DER)
    return tlv(0xA0, tlv(0x30, tlv(0x80, signed) + tlv(0xA1, tlv(0x04, b"nonce"))))


def test_the_kdc_certificates_come_out_of_the_dh_reply(
        pkis: tuple[RealmPki, RealmPki]) -> None:
    home, _ = pkis
    chain = [home.kdc_cert, home.issuing_cert]
    reply = as_rep([(19, b"etype-info"), (17, dh_rep(chain))])
    assert sorted(kdc_certificates(reply) or [], key=str) == sorted(chain, key=str)
    assert kdc_certificate(chain) == home.kdc_cert
    assert kdc_certificates(as_rep([(19, b"")])) is None
    assert kdc_certificates(b"\x7e\x03\x02\x01\x05") is None  # a KRB-ERROR
    assert kdc_certificates(b"") is None


def heimdal_signed_data(certificates: list[x509.Certificate]) -> bytes:
    """A ContentInfo shaped as Samba 4.17's (Heimdal's) KDC sends it: SignerInfo version 1
    naming its signer by subjectKeyIdentifier ([0]), a SHA-512 digest with NULL parameters."""
    sha512 = tlv(0x30, encode_oid("2.16.840.1.101.3.4.2.3") + b"\x05\x00")
    signer = tlv(0x30, encode_integer(1) + tlv(0x80, bytes(range(20))) + sha512
                 + tlv(0x30, encode_oid("1.2.840.113549.1.1.13") + b"\x05\x00")
                 + tlv(0x04, b"signature"))
    content = tlv(0x30, encode_oid("1.3.6.1.5.2.3.2") + tlv(0xA0, tlv(0x04, b"KDCDHKeyInfo")))
    der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in certificates)
    body = (encode_integer(3) + tlv(0x31, sha512) + content + tlv(0xA0, der)
            + tlv(0x31, signer))
    return tlv(0x30, encode_oid("1.2.840.113549.1.7.2") + tlv(0xA0, tlv(0x30, body)))


def test_the_kdc_certificates_come_out_of_heimdals_signed_data(
        pkis: tuple[RealmPki, RealmPki]) -> None:
    home, _ = pkis
    signed = heimdal_signed_data([home.issuing_cert, home.kdc_cert])
    with pytest.raises(ValueError):  # why the SignedData is read field by field
        pkcs7.load_der_pkcs7_certificates(signed)
    reply = as_rep([(17, tlv(0xA0, tlv(0x30, tlv(0x80, signed))))])
    assert kdc_certificates(reply) == [home.issuing_cert, home.kdc_cert]
    assert check_kdc_issuer([reply], [home.issuing_cert], "EXAMPLE.TEST") == home.kdc_cert
    unsigned = heimdal_signed_data([])
    assert kdc_certificates(as_rep([(17, tlv(0xA0, tlv(0x30, tlv(0x80, unsigned))))])) == []


@pytest.mark.parametrize("reply", [
    as_rep([(17, tlv(0x81, b"enveloped"))]),  # RSA key transport
    as_rep([(17, tlv(0xA0, tlv(0x30, tlv(0xA1, b""))))]),  # no dhSignedData
    as_rep([(17, tlv(0xA0, tlv(0x30, tlv(0x80, b"\x30\x00"))))]),  # not SignedData
    b"\x6b\x05\x30\x03\xa0\x01",  # truncated
])
def test_malformed_replies_are_protocol_errors(reply: bytes) -> None:
    with pytest.raises(ProtocolError):
        kdc_certificates(reply)


def test_the_kdc_certificate_must_come_from_an_ntauth_ca(
        pkis: tuple[RealmPki, RealmPki]) -> None:
    home, partner = pkis
    reply = as_rep([(17, dh_rep([home.issuing_cert, home.kdc_cert]))])
    assert check_kdc_issuer([b"\x7e\x00", reply], [partner.issuing_cert, home.issuing_cert],
                            "EXAMPLE.TEST") == home.kdc_cert
    with pytest.raises(SignInRefused) as info:
        check_kdc_issuer([reply], [partner.issuing_cert], "EXAMPLE.TEST")
    assert info.value.reason_code is ReasonCode.KDC_UNTRUSTED
    assert "EXAMPLE.TEST Test Issuing CA" in info.value.message
    # the root above the issuing CA is not enough: Windows wants the issuer itself
    with pytest.raises(SignInRefused):
        check_kdc_issuer([reply], [home.root_cert], "EXAMPLE.TEST")


@pytest.mark.parametrize("replies", [[], [b"\x7e\x00"], [as_rep([(19, b"")])]])
def test_no_kdc_certificate_seen_is_a_refusal(replies: list[bytes],
                                              pkis: tuple[RealmPki, RealmPki]) -> None:
    with pytest.raises(SignInRefused, match="was not seen") as info:
        check_kdc_issuer(replies, [pkis[0].issuing_cert], "EXAMPLE.TEST")
    assert info.value.reason_code is ReasonCode.KDC_UNTRUSTED


def test_a_garbled_pkinit_reply_is_a_refusal(pkis: tuple[RealmPki, RealmPki]) -> None:
    with pytest.raises(SignInRefused, match="cannot be checked"):
        check_kdc_issuer([as_rep([(17, tlv(0x81, b"x"))])], [pkis[0].issuing_cert], "X")


def fake_kdc(answer: bytes) -> tuple[socket.socket, list[bytes]]:
    """A KDC on loopback answering every framed request with ``answer``."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                length = int.from_bytes(conn.recv(4), "big")
                seen.append(conn.recv(length))
                conn.sendall(len(answer).to_bytes(4, "big") + answer)

    threading.Thread(target=serve, daemon=True).start()
    return server, seen


def test_the_relay_passes_requests_on_and_keeps_the_replies() -> None:
    dead = socket.create_server(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # the first KDC is down: the relay tries the next
    kdc, seen = fake_kdc(b"\x6b\x00reply")
    with KdcRelay([("127.0.0.1", dead_port), ("127.0.0.1", kdc.getsockname()[1])],
                  timeout=5) as relay, socket.create_connection(("127.0.0.1", relay.port)) as c:
        c.sendall((7).to_bytes(4, "big") + b"request")
        length = int.from_bytes(c.recv(4), "big")
        assert c.recv(length) == b"\x6b\x00reply"
    assert seen == [b"request"] and relay.replies == [b"\x6b\x00reply"]


def test_an_oversized_request_is_dropped() -> None:
    kdc, seen = fake_kdc(b"never")
    with KdcRelay([("127.0.0.1", kdc.getsockname()[1])], timeout=5) as relay, \
            socket.create_connection(("127.0.0.1", relay.port)) as c:
        c.sendall((1 << 30).to_bytes(4, "big"))
        c.settimeout(5)
        assert c.recv(4) == b""  # closed without an answer
    assert seen == [] and relay.replies == []
    kdc.close()


def test_a_relay_needs_a_kdc() -> None:
    with pytest.raises(ValueError):
        KdcRelay([])


def test_a_connection_held_open_does_not_block_another() -> None:
    kdc, seen = fake_kdc(b"\x6b\x00ok")
    with KdcRelay([("127.0.0.1", kdc.getsockname()[1])], timeout=5) as relay, \
            socket.create_connection(("127.0.0.1", relay.port)) as idle, \
            socket.create_connection(("127.0.0.1", relay.port)) as c:
        idle.sendall(b"\x00\x00")  # half a length, then nothing
        c.sendall((2).to_bytes(4, "big") + b"hi")
        c.settimeout(5)
        length = int.from_bytes(c.recv(4), "big")
        assert c.recv(length) == b"\x6b\x00ok"
    assert seen == [b"hi"]


def test_include_and_includedir_are_followed(tmp_path: Path) -> None:
    snippets = tmp_path / "krb5.conf.d"
    snippets.mkdir()
    (snippets / "partner").write_text("[realms]\nPARTNER.TEST = {\n kdc = kdc1.partner.test\n}\n")
    (snippets / "partner.conf").write_text(
        "[realms]\nPARTNER.TEST = {\n kdc = kdc2.partner.test\n}\n")
    (snippets / "ignored.rpmsave").write_text(
        "[realms]\nPARTNER.TEST = {\n kdc = stale.partner.test\n}\n")
    extra = tmp_path / "extra.conf"
    extra.write_text("[realms]\nPARTNER.TEST = {\n kdc = kdc3.partner.test:89\n}\n")
    main = tmp_path / "krb5.conf"
    main.write_text(f"include {extra}\nincludedir {snippets}\n"
                    f"include {main}\n"  # a loop is read once
                    "[libdefaults]\n default_realm = PARTNER.TEST\n")
    assert realm_kdcs([main], "PARTNER.TEST") == [
        ("kdc3.partner.test", 89), ("kdc1.partner.test", 88), ("kdc2.partner.test", 88)]
