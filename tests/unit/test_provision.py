"""Host-side PIV: codecs, the client's exact APDUs against a scripted card, provisioning."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.cli.main import main
from rdscard.errors import ProtocolError
from rdscard.pdu.tlv import tlv
from rdscard.pki.ca import RealmPki
from rdscard.pki.piv_client import (
    DEFAULT_MANAGEMENT_KEY,
    PinBlockedError,
    PivClient,
    PivError,
    WrongPinError,
)
from rdscard.pki.piv_codec import (
    Algorithm,
    Chuid,
    KeyRef,
    decode_certificate_object,
    decode_general_authenticate,
    decode_public_key,
    encode_certificate_object,
    pad_pin,
    parse_tlvs,
)
from rdscard.pki.provision import (
    DEFAULT_PIN,
    DEFAULT_PUK,
    Credentials,
    ProvisionOptions,
    provision,
    read_status,
)
from rdscard.pki.transport import InProcessTransport
from rdscard.testbed.ports import free_tcp_port


class ScriptedCard:
    """A transport that checks each command APDU against a script and plays the answer."""

    def __init__(self, script: list[tuple[str, str]]) -> None:
        self.script = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in script]
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        assert self.script, f"unexpected APDU {apdu.hex()}"
        expected, response = self.script.pop(0)
        assert apdu.hex() == expected.hex()
        self.sent.append(apdu)
        return response

    def done(self) -> None:
        assert not self.script, f"{len(self.script)} scripted APDUs not sent"


def _fixed(value: bytes) -> Callable[[int], bytes]:
    return lambda n: value[:n]


# -- codecs (SP 800-73-4 Part 1 and 2 encodings) ---------------------------------


def test_pin_padding() -> None:
    # SP 800-73-4 Part 2 2.4.3: PIN "123456" padded with FF to 8 bytes.
    assert pad_pin(b"123456") == bytes.fromhex("313233343536FFFF")
    assert pad_pin(b"12345678") == b"12345678"
    with pytest.raises(ValueError, match="1 to 8"):
        pad_pin(b"123456789")
    with pytest.raises(ValueError, match="0xFF"):
        pad_pin(b"12\xff4")


def test_certificate_object_layout() -> None:
    cert = bytes(300)
    value = encode_certificate_object(cert)
    # 70 82 01 2C <cert>  71 01 00 (CertInfo: uncompressed)  FE 00 (error detection code)
    assert value[:4] == bytes.fromhex("7082012C")
    assert value[4:304] == cert
    assert value[304:] == bytes.fromhex("710100" "FE00")
    assert len(value) == 4 + 300 + 3 + 2
    assert decode_certificate_object(value) == cert


def test_compressed_certificate_is_refused() -> None:
    value = tlv(0x70, b"\x1f\x8b") + tlv(0x71, b"\x01") + tlv(0xFE, b"")
    with pytest.raises(ProtocolError, match="compressed"):
        decode_certificate_object(value)


def test_chuid_round_trip() -> None:
    chuid = Chuid(fascn=bytes(range(25)), guid=bytes(range(16)), expiration="20361231")
    data = chuid.encode()
    # 30 19 FASC-N, 34 10 GUID, 35 08 date, 3E 00 signature, FE 00 LRC
    assert data[:2] == bytes.fromhex("3019") and data[27:29] == bytes.fromhex("3410")
    assert data[45:47] == bytes.fromhex("3508") and data[-4:] == bytes.fromhex("3E00FE00")
    assert len(data) == 2 + 25 + 2 + 16 + 2 + 8 + 2 + 2
    assert Chuid.decode(data) == chuid


def test_tlv_long_forms_and_three_byte_tags() -> None:
    value = bytes(300)
    encoded = tlv(0x5FC105, value)
    assert encoded[:6] == bytes.fromhex("5FC105" "82012C")
    assert parse_tlvs(encoded, "test") == {0x5FC105: value}
    assert tlv(0x81, bytes(200))[:3] == bytes.fromhex("8181C8")


def test_tlv_duplicates_and_truncation_are_refused() -> None:
    with pytest.raises(ProtocolError, match="duplicate"):
        parse_tlvs(bytes.fromhex("800100" "800100"), "test")
    with pytest.raises(ProtocolError, match="truncated"):
        parse_tlvs(bytes.fromhex("8005010203"), "test")
    with pytest.raises(ProtocolError, match="indefinite"):
        parse_tlvs(bytes.fromhex("80800000"), "test")


def test_rsa_public_key_template() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    n = key.public_numbers().n.to_bytes(256, "big")
    # 7F49 82 0109 { 81 82 0100 modulus, 82 03 010001 }
    data = tlv(0x7F49, tlv(0x81, n) + tlv(0x82, b"\x01\x00\x01"))
    assert data[:5] == bytes.fromhex("7F49820109")
    assert decode_public_key(data, Algorithm.RSA_2048) == key
    with pytest.raises(ProtocolError, match="RSA-2048"):
        decode_public_key(tlv(0x7F49, tlv(0x81, n[1:]) + tlv(0x82, b"\x01\x00\x01")),
                          Algorithm.RSA_2048)


def test_ecc_public_key_template() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    data = tlv(0x7F49, tlv(0x86, point))  # 7F49 43 { 86 41 04 x y }
    assert data[:5] == bytes.fromhex("7F49438641")
    assert decode_public_key(data, Algorithm.ECC_P256) == key
    bad = bytearray(point)
    bad[-1] ^= 1
    with pytest.raises(ProtocolError, match="not a point"):
        decode_public_key(tlv(0x7F49, tlv(0x86, bytes(bad))), Algorithm.ECC_P256)


@pytest.mark.parametrize(
    "decoder",
    [
        lambda d: parse_tlvs(d, "fuzz"),
        lambda d: decode_public_key(d, Algorithm.RSA_2048),
        lambda d: decode_public_key(d, Algorithm.ECC_P256),
        decode_general_authenticate,
        decode_certificate_object,
        Chuid.decode,
    ],
    ids=["tlvs", "rsa-key", "ecc-key", "general-authenticate", "cert-object", "chuid"],
)
@given(data=st.binary(max_size=300))
def test_decoders_raise_only_protocol_error(decoder: Callable[[bytes], object],
                                            data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decoder(data)


# -- the client's APDUs ---------------------------------------------------------------


def test_select_fetches_the_rest_with_get_response() -> None:
    card = ScriptedCard([
        # SELECT by AID A0 00 00 03 08 00 00 10 00, Le 00 (SP 800-73-4 Part 2 3.1.1)
        ("00A4040009A00000030800001000" "00", "61" "AABB" "6102"),
        ("00C0000002", "CCDD" "9000"),
    ])
    assert PivClient(card).select() == bytes.fromhex("61AABBCCDD")
    card.done()


def test_verify_and_pin_status() -> None:
    card = ScriptedCard([
        ("0020008008313233343536FFFF", "9000"),  # VERIFY PIN 123456
        ("00200080", "9000"),  # empty VERIFY: verified
        ("0020008008313131313131FFFF", "63C2"),  # wrong PIN: 2 left
        ("00200080", "63C2"),
        ("0020008008313131313131FFFF", "6983"),  # blocked
        ("00200080", "6983"),
    ])
    client = PivClient(card)
    client.verify_pin(b"123456")
    assert client.pin_status().verified
    with pytest.raises(WrongPinError) as wrong:
        client.verify_pin(b"111111")
    assert wrong.value.tries_left == 2 and "2 tries left" in str(wrong.value)
    status = client.pin_status()
    assert (status.verified, status.tries_left, status.blocked) == (False, 2, False)
    with pytest.raises(PinBlockedError, match="unblock it with the PUK"):
        client.verify_pin(b"111111")
    assert client.pin_status().blocked
    card.done()


def test_change_and_unblock_commands() -> None:
    card = ScriptedCard([
        # CHANGE REFERENCE DATA, PIN: old || new, each padded (Part 2 3.2.2)
        ("0024008010313233343536FFFF363534333231FFFF", "9000"),
        # PUK (81)
        ("00240081103132333435363738" "3837363534333231", "9000"),
        # RESET RETRY COUNTER: PUK || new PIN (Part 2 3.2.3)
        ("002C0080103837363534333231" "313131313131FFFF", "63C1"),
    ])
    client = PivClient(card)
    client.change_pin(b"123456", b"654321")
    client.change_puk(b"12345678", b"87654321")
    with pytest.raises(WrongPinError, match="wrong PUK: 1 tries left"):
        client.unblock_pin(b"87654321", b"111111")
    card.done()


@pytest.mark.parametrize("algorithm", [Algorithm.TDES, Algorithm.AES_128, Algorithm.AES_256])
def test_admin_mutual_authentication(algorithm: Algorithm) -> None:
    size = {Algorithm.TDES: 24, Algorithm.AES_128: 16, Algorithm.AES_256: 32}[algorithm]
    key = DEFAULT_MANAGEMENT_KEY if algorithm == Algorithm.TDES else bytes(range(size))
    block = 8 if algorithm == Algorithm.TDES else 16
    cipher = Cipher(TripleDES(key) if algorithm == Algorithm.TDES else algorithms.AES(key),
                    modes.ECB())
    card_random = bytes(range(0x40, 0x40 + block))
    host_challenge = bytes(range(0x80, 0x80 + block))
    enc = cipher.encryptor()
    witness = enc.update(card_random) + enc.finalize()
    enc = cipher.encryptor()
    proof = enc.update(host_challenge) + enc.finalize()
    alg = f"{algorithm:02X}"
    step2 = tlv(0x7C, tlv(0x80, card_random) + tlv(0x81, host_challenge))
    card = ScriptedCard([
        (f"0087{alg}9B047C028000" "00", tlv(0x7C, tlv(0x80, witness)).hex() + "9000"),
        (f"0087{alg}9B{len(step2):02X}{step2.hex()}00", tlv(0x7C, tlv(0x82, proof)).hex()
         + "9000"),
    ])
    PivClient(card, rng=_fixed(host_challenge)).authenticate_admin(key, algorithm)
    card.done()


def test_admin_authentication_rejects_a_card_without_the_key() -> None:
    cipher = Cipher(TripleDES(DEFAULT_MANAGEMENT_KEY), modes.ECB())
    dec = cipher.decryptor()
    plain = dec.update(bytes(8)) + dec.finalize()
    step2 = tlv(0x7C, tlv(0x80, plain) + tlv(0x81, bytes(8)))
    card = ScriptedCard([
        ("0087039B047C02800000", tlv(0x7C, tlv(0x80, bytes(8))).hex() + "9000"),
        # The card answers with a proof that is not our challenge encrypted under the key.
        (f"0087039B{len(step2):02X}{step2.hex()}00", tlv(0x7C, tlv(0x82, bytes(8))).hex()
         + "9000"),
    ])
    with pytest.raises(PivError, match="failed to prove"):
        PivClient(card, rng=_fixed(bytes(8))).authenticate_admin()
    card.done()


def test_put_data_chains_long_objects() -> None:
    value = bytes(range(256)) * 2  # 512 bytes
    body = tlv(0x5C, bytes.fromhex("5FC105")) + tlv(0x53, value)  # 5 + 4 + 512 = 521 bytes
    assert len(body) == 521
    card = ScriptedCard([
        ("10DB3FFFFF" + body[:255].hex(), "9000"),  # CLA 10: more to come
        ("10DB3FFFFF" + body[255:510].hex(), "9000"),
        ("00DB3FFF0B" + body[510:].hex(), "9000"),  # last chunk, no Le
    ])
    PivClient(card).put_data(0x5FC105, value)
    card.done()


def test_get_data_of_a_large_object_and_missing_object() -> None:
    value = bytes(range(256)) * 6  # a 1.5 KB object
    answer = tlv(0x53, value)
    chunks = [answer[i:i + 256] for i in range(0, len(answer), 256)]
    script = [("00CB3FFF055C035FC10500", chunks[0].hex() + "6100")]
    for i, chunk in enumerate(chunks[1:], start=1):
        more = "6100" if i < len(chunks) - 1 else "9000"
        script.append(("00C0000000", chunk.hex() + more))
    script.append(("00CB3FFF055C035FC10A00", "6A82"))
    card = ScriptedCard(script)
    client = PivClient(card)
    assert client.get_data(0x5FC105) == value
    assert client.get_data(0x5FC10A) is None
    card.done()


def test_generate_key_and_security_status_message() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    card = ScriptedCard([
        # GENERATE ASYMMETRIC KEY PAIR, template AC 03 80 01 11 (Part 2 3.3.2)
        ("0047009A05AC0380011100", tlv(0x7F49, tlv(0x86, point)).hex() + "9000"),
        ("0047009D05AC0380010700", "6982"),
    ])
    client = PivClient(card)
    assert client.generate_key(KeyRef.AUTHENTICATION, Algorithm.ECC_P256) == key
    with pytest.raises(PivError, match="management key authentication needed"):
        client.generate_key(KeyRef.KEY_MANAGEMENT, Algorithm.RSA_2048)
    card.done()


def test_sign_sends_the_dynamic_authentication_template() -> None:
    digest = bytes(range(32))
    # 7C 24 { 82 00, 81 20 digest } -> 7C 04 { 82 02 30 00 }
    card = ScriptedCard([
        ("0087119A26" "7C24" "8200" "8120" + digest.hex() + "00", "7C0482023000" "9000"),
    ])
    assert PivClient(card).sign_ecdsa(KeyRef.AUTHENTICATION, digest) == b"\x30\x00"
    card.done()


def test_short_response_is_a_protocol_error() -> None:
    card = ScriptedCard([("00200080", "90")])
    with pytest.raises(ProtocolError, match="SW1-SW2"):
        PivClient(card).pin_status()


# -- provisioning the virtual card in process ---------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RealmPki:
    return RealmPki.create(tmp_path_factory.mktemp("pki"), "EXAMPLE.TEST", "example.test")


def _new_card() -> tuple[VirtualPivCard, PivClient]:
    card = VirtualPivCard(CardState.new(serial=0x1234))
    return card, PivClient(InProcessTransport(card))


def test_provisioned_keys_match_their_certificates(pki: RealmPki) -> None:
    _, client = _new_card()
    steps: list[str] = []
    result = provision(client, pki, "alice", Credentials(), ProvisionOptions(),
                       progress=steps.append)
    assert set(result.certificates) == {KeyRef.AUTHENTICATION, KeyRef.KEY_MANAGEMENT}
    assert steps[0] == "selecting the PIV application" and steps[-1] == "writing the CHUID"
    status = read_status(client)
    assert status.certificates == result.certificates
    assert status.chuid is not None and len(status.chuid.guid) == 16
    assert status.pin.tries_left == 3
    # The 9A key signs what its certificate verifies (PKCS#1 v1.5 over a SHA-256 DigestInfo).
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(digest_info)) + b"\x00" + digest_info
    client.verify_pin(DEFAULT_PIN)
    signature = client.rsa_private(KeyRef.AUTHENTICATION, block)
    public = result.certificates[KeyRef.AUTHENTICATION].public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, bytes(32), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    # The 9D key decrypts what is encrypted to its certificate.
    kmk = result.certificates[KeyRef.KEY_MANAGEMENT].public_key()
    assert isinstance(kmk, rsa.RSAPublicKey)
    raw = client.rsa_private(KeyRef.KEY_MANAGEMENT, kmk.encrypt(b"file key", padding.PKCS1v15()))
    assert raw.endswith(b"\x00file key") and raw[:2] == b"\x00\x02"


def test_ecc_card_with_new_secrets(pki: RealmPki) -> None:
    _, client = _new_card()
    aes_key = bytes(range(16))
    credentials = Credentials(new_pin=bytearray(b"24681357"), new_puk=bytearray(b"87654321"),
                              new_management_key=bytearray(aes_key),
                              new_management_algorithm=Algorithm.AES_128)
    result = provision(client, pki, "bob", credentials,
                       ProvisionOptions(key_type="p256", slots=(KeyRef.AUTHENTICATION,),
                                        write_chuid=False))
    public = result.certificates[KeyRef.AUTHENTICATION].public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    with pytest.raises(WrongPinError):
        client.verify_pin(DEFAULT_PIN)
    client.verify_pin(b"24681357")
    digest = hashlib.sha256(b"logon").digest()
    signature = client.sign_ecdsa(KeyRef.AUTHENTICATION, digest)
    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    with pytest.raises(PivError):
        client.authenticate_admin()  # the factory 3DES key no longer works
    client.authenticate_admin(aes_key, Algorithm.AES_128)


def test_pin_blocks_and_puk_unblocks(pki: RealmPki) -> None:
    _, client = _new_card()
    client.select()
    for left in (2, 1, 0):
        with pytest.raises(WrongPinError) as wrong:
            client.verify_pin(b"000000")
        assert wrong.value.tries_left == left
    assert client.pin_status().blocked
    with pytest.raises(PinBlockedError):
        client.verify_pin(DEFAULT_PIN)
    client.unblock_pin(DEFAULT_PUK, b"112233")
    assert client.pin_status().tries_left == 3
    client.verify_pin(b"112233")
    assert client.pin_status().verified


def test_provision_without_admin_key_fails_clearly(pki: RealmPki) -> None:
    _, client = _new_card()
    credentials = Credentials(management_key=bytearray(bytes(24)))
    with pytest.raises(PivError, match="wrong management key"):
        provision(client, pki, "alice", credentials)
    assert repr(credentials) == "Credentials(<hidden>)"
    credentials.wipe()
    assert credentials.management_key == bytes(24) and credentials.pin == bytes(6)


def test_cli_creates_and_shows_a_virtual_card(pki: RealmPki, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "carol.card"
    pin_file = tmp_path / "pin"
    pin_file.write_text("97531246\n")
    assert main(["card", "create", "--pki", str(pki.directory), "--user", "carol",
                 "--state", str(state), "--pin-file", str(pin_file), "--key-type", "p256"]) == 0
    created = capsys.readouterr()
    assert "slot 9A: CN=carol (Authentication)" in created.out
    assert "97531246" not in created.out + created.err
    assert main(["card", "status", "--state", str(state)]) == 0
    shown = capsys.readouterr().out
    assert "PIN: 3 tries left" in shown and "UPN:      carol@example.test" in shown
    assert "key:      ECC secp256r1" in shown
    card = VirtualPivCard(CardState.load(state))
    client = PivClient(InProcessTransport(card))
    client.select()
    client.verify_pin(b"97531246")
    assert main(["card", "create", "--pki", str(pki.directory), "--user", "carol",
                 "--state", str(state)]) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err


def test_cli_insert_names_the_missing_vpcd(tmp_path: Path, pki: RealmPki,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "dave.card"
    assert main(["card", "create", "--pki", str(pki.directory), "--user", "dave",
                 "--state", str(state), "--slots", "9a"]) == 0
    capsys.readouterr()
    port = free_tcp_port()
    assert main(["card", "insert", "--state", str(state), "--vpcd", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach vpcd at 127.0.0.1:{port}" in err and "vpcd driver" in err
