"""The virtual PIV card (NIST SP 800-73-4 Parts 1 and 2) driven with command APDUs."""

from __future__ import annotations

import datetime
import hashlib
import itertools
from collections.abc import Callable

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.card.constants import DEFAULT_MANAGEMENT_KEY, YUBIKEY_ATR
from rdscard.card.objects import FascN
from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState, SlotKey
from rdscard.pdu.apdu import CommandApdu
from rdscard.pdu.tlv import Tlv, decode_all, find, tlv

SELECT = "00A4040009A00000030800001000" + "00"
PIN_OK = "0020008008" + b"123456".hex() + "FFFF"
PIN_BAD = "0020008008" + b"654321".hex() + "FFFF"
# SHA-256 DigestInfo prefix (RFC 8017 9.2 note 1)
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def counter_rng() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: bytes((next(counter) + i) & 0xFF for i in range(n))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def der(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_state() -> CardState:
    return CardState.new(serial=12345678, rng=counter_rng(), today=datetime.date(2026, 11, 25))


def make_card(state: CardState | None = None, **kw: object) -> VirtualPivCard:
    card = VirtualPivCard(state or new_state(), rng=counter_rng(), **kw)  # type: ignore[arg-type]
    card.power_on()
    return card


def tx(card: VirtualPivCard, apdu: str | bytes) -> tuple[bytes, int]:
    raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
    out = card.transmit(raw)
    return out[:-2], int.from_bytes(out[-2:], "big")


def send(card: VirtualPivCard, ins: int, p1: int, p2: int, data: bytes = b"",
         le: int | None = 256) -> tuple[bytes, int]:
    """Send with command chaining and collect GET RESPONSE parts, as a host does."""
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    for chunk in chunks[:-1]:
        _, sw = tx(card, CommandApdu(0x10, ins, p1, p2, chunk).encode())
        assert sw == 0x9000
    out, sw = tx(card, CommandApdu(0x00, ins, p1, p2, chunks[-1], le).encode())
    body = out
    while sw >> 8 == 0x61:
        out, sw = tx(card, "00C00000" + f"{sw & 0xFF:02X}")
        body += out
    return body, sw


def selected(state: CardState | None = None, **kw: object) -> VirtualPivCard:
    card = make_card(state, **kw)
    assert tx(card, SELECT)[1] == 0x9000
    return card


def block(alg: int, key: bytes, data: bytes, decrypt: bool = False) -> bytes:
    c = Cipher(TripleDES(key) if alg == 0x03 else algorithms.AES(key), modes.ECB())
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def admin(card: VirtualPivCard, alg: int = 0x03, key: bytes = DEFAULT_MANAGEMENT_KEY) -> None:
    """Mutual authentication with the witness, as yubico-piv-tool does."""
    size = 8 if alg == 0x03 else 16
    out, sw = send(card, 0x87, alg, 0x9B, tlv(0x7C, tlv(0x80)))
    assert sw == 0x9000
    encrypted = find(Tlv.decode(out).children(), 0x80)
    assert encrypted is not None and len(encrypted.value) == size
    witness = block(alg, key, encrypted.value, decrypt=True)
    challenge = bytes(range(size))
    out, sw = send(card, 0x87, alg, 0x9B,
                   tlv(0x7C, tlv(0x80, witness) + tlv(0x81, challenge)))
    assert sw == 0x9000
    assert Tlv.decode(out).children() == [Tlv(0x82, block(alg, key, challenge))]


# -- ATR, SELECT -------------------------------------------------------------------
def test_atr_checksum_and_power_on() -> None:
    card = VirtualPivCard(new_state())
    assert card.power_on() == card.atr == YUBIKEY_ATR
    tck = 0
    for b in YUBIKEY_ATR[1:]:
        tck ^= b
    assert tck == 0


@pytest.mark.parametrize("aid", ["A000000308", "A00000030800001000", "A000000308000010000100"])
def test_select_piv_aid_returns_application_property_template(aid: str) -> None:
    card = make_card()
    out, sw = tx(card, f"00A40400{len(aid) // 2:02X}{aid}00")
    assert sw == 0x9000
    apt = Tlv.decode(out)
    assert apt.tag == 0x61
    items = apt.children()
    assert find(items, 0x4F) == Tlv(0x4F, bytes.fromhex("000010000100"))
    assert find(items, 0x79) == Tlv(0x79, tlv(0x4F, bytes.fromhex("A000000308")))
    assert find(items, 0x50) is not None
    algs = Tlv.decode(tlv(0xAC, find(items, 0xAC).value)).children()  # type: ignore[union-attr]
    assert {a.value[0] for a in algs if a.tag == 0x80} >= {0x03, 0x07, 0x08, 0x0A, 0x0C, 0x11}


@pytest.mark.parametrize(("apdu", "sw"), [
    ("00A4040007A0000005272101", 0x6A82),  # another application
    ("00A4040004A0000003", 0x6A82),  # shorter than the RID
    ("00A4000002" + "3F00", 0x6A86),  # select by file identifier
    ("00A4040C05A000000308", 0x9000),  # no response data wanted
])
def test_select_other(apdu: str, sw: int) -> None:
    out, got = tx(make_card(), apdu)
    assert got == sw and out == b""


def test_commands_need_the_application_selected() -> None:
    card = make_card()
    assert tx(card, "00CB3FFF035C017E00")[1] == 0x6D00
    tx(card, "00A4040007A000000527210100")  # failed select leaves nothing selected
    assert tx(card, "00FD000000")[1] == 0x6D00


def test_reselect_keeps_security_status_and_reset_clears_it() -> None:
    card = selected()
    assert tx(card, PIN_OK)[1] == 0x9000
    tx(card, SELECT)
    assert tx(card, "0020008000")[1] == 0x9000
    card.reset()
    tx(card, SELECT)
    assert tx(card, "0020008000")[1] == 0x63C3
    tx(card, PIN_OK)
    card.power_off()
    card.power_on()
    assert tx(card, "0020008000")[1] == 0x6D00


# -- GET DATA / PUT DATA -------------------------------------------------------------
def test_discovery_object_default() -> None:
    out, sw = tx(selected(), "00CB3FFF035C017E00")
    assert sw == 0x9000
    assert out == bytes.fromhex("7E124F0BA0000003080000100001005F2F024000")


def test_fasc_n_matches_the_tig_scepacs_example() -> None:
    # SS 9999 FS 9999 FS 999999 FS 0 FS 1 FS 0000000000 3 0000 1 ES LRC
    fasc_n = FascN("9999", "9999", "999999", "0", "1", "0000000000", "3", "0000", "1")
    assert fasc_n.encode() == bytes.fromhex(
        "D4E739DA739CED39CE739D836858210842108421C84210C3EB")


def test_chuid_and_ccc_are_generated() -> None:
    card = selected()
    out, sw = tx(card, "00CB3FFF055C035FC10200")
    assert sw == 0x9000
    items = Tlv.decode(out).children()
    assert [i.tag for i in items] == [0x30, 0x34, 0x35, 0x3E, 0xFE]
    assert len(items[0].value) == 25 and len(items[1].value) == 16
    assert items[1].value[6] >> 4 == 4  # RFC 4122 version 4 GUID
    assert items[2].value == b"20311125"
    out, sw = tx(card, "00CB3FFF055C035FC10700")
    ccc = Tlv.decode(out).children()
    assert sw == 0x9000 and ccc[0].tag == 0xF0 and ccc[0].value[:5] == bytes.fromhex("A000000116")
    assert len(ccc[0].value) == 21 and find(ccc, 0xF1) == Tlv(0xF1, b"\x21")


@pytest.mark.parametrize(("apdu", "sw"), [
    ("00CB3FFF055C035FC10500", 0x6A82),  # certificate absent
    ("00CB3FFF055C035FC10C00", 0x6A82),  # key history absent
    ("00CB3FFF055C035FC10400", 0x6A82),  # not a PIV object
    ("00CB3FFF045C025FC100", 0x6A82),  # unknown two-byte tag
    ("00CB3FFF055C035FC10900", 0x6982),  # printed information needs the PIN
    ("00CB3FFF055C035FC10800", 0x6982),  # facial image needs the PIN
    ("00CB3FFF055C035FC10300", 0x6982),  # fingerprints need the PIN
    ("00CB3FFF0453025FC100", 0x6A80),  # not a tag list
    ("00CB3FFF065C045FC1020100", 0x6A80),  # four-byte tag
    ("00CB3FFF045C035FC100", 0x6A80),  # truncated tag list
    ("00CB3FFE055C035FC10200", 0x6A86),
])
def test_get_data_errors(apdu: str, sw: int) -> None:
    assert tx(selected(), apdu) == (b"", sw)


def test_put_data_needs_admin() -> None:
    card = selected()
    data = tlv(0x5C, bytes.fromhex("5FC105")) + tlv(0x53, b"x")
    assert send(card, 0xDB, 0x3F, 0xFF, data)[1] == 0x6982
    tx(card, PIN_OK)
    assert send(card, 0xDB, 0x3F, 0xFF, data)[1] == 0x6982


def test_certificate_with_chaining_and_get_response() -> None:
    changes: list[CardState] = []
    card = selected(on_change=changes.append)
    admin(card)
    cert = bytes(range(256)) * 6  # 1536 bytes, as a certificate container
    content = tlv(0x70, cert) + tlv(0x71, b"\x00") + tlv(0xFE)
    data = tlv(0x5C, bytes.fromhex("5FC105")) + tlv(0x53, content)
    assert send(card, 0xDB, 0x3F, 0xFF, data) == (b"", 0x9000)
    assert card.state.data_objects[0x5FC105] == content and changes
    # the first response part is 256 bytes and 61xx, then GET RESPONSE parts
    out, sw = tx(card, "00CB3FFF055C035FC10500")
    assert len(out) == 256 and sw == 0x6100
    body, sw = send(card, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC105"))
    assert sw == 0x9000 and body == tlv(0x53, content)
    # an extended Le gets everything at once
    ext = CommandApdu(0, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC105"), 65536).encode()
    out, sw = tx(card, ext)
    assert sw == 0x9000 and out == tlv(0x53, content)
    # an empty container deletes the object
    send(card, 0xDB, 0x3F, 0xFF, tlv(0x5C, bytes.fromhex("5FC105")) + tlv(0x53))
    assert tx(card, "00CB3FFF055C035FC10500")[1] == 0x6A82


def test_get_response_rules() -> None:
    card = selected()
    assert tx(card, "00C0000000")[1] == 0x6985
    out, sw = tx(card, "00CB3FFF055C035FC10208")
    assert len(out) == 8 and sw >> 8 == 0x61
    rest = sw & 0xFF
    out2, sw2 = tx(card, "00C0000004")
    assert len(out2) == 4 and sw2 == 0x6100 | (rest - 4)
    tx(card, "00FD000000")  # another command drops the pending response
    assert tx(card, "00C0000000")[1] == 0x6985
    assert tx(card, "00C0010000")[1] == 0x6A86


def test_put_data_discovery_pin_protected_and_limits() -> None:
    card = selected()
    admin(card)
    new_discovery = tlv(0x7E, tlv(0x4F, bytes.fromhex("A000000308000010000100"))
                        + tlv(0x5F2F, b"\x60\x10"))
    assert send(card, 0xDB, 0x3F, 0xFF, new_discovery)[1] == 0x9000
    assert send(card, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C017E"))[0] == new_discovery
    printed = tlv(0x5C, bytes.fromhex("5FC109")) + tlv(0x53, tlv(0x01, b"NAME"))
    assert send(card, 0xDB, 0x3F, 0xFF, printed)[1] == 0x9000
    assert send(card, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC109"))[1] == 0x6982
    tx(card, PIN_OK)
    assert send(card, 0xCB, 0x3F, 0xFF, bytes.fromhex("5C035FC109")) == (
        tlv(0x53, tlv(0x01, b"NAME")), 0x9000)
    too_big = tlv(0x5C, bytes.fromhex("5FC105")) + tlv(0x53, bytes(33000))
    sws = [tx(card, CommandApdu(0x10, 0xDB, 0x3F, 0xFF, too_big[i:i + 255]).encode())[1]
           for i in range(0, len(too_big), 255)]
    assert sws[:128] == [0x9000] * 128 and sws[128] == 0x6A84  # the chain stops at 32 KiB
    ext = CommandApdu(0, 0xDB, 0x3F, 0xFF, too_big[:-100]).encode()
    assert tx(card, ext)[1] == 0x6A84  # one extended APDU over the object limit
    for bad in (tlv(0x5C, bytes.fromhex("5FC104")) + tlv(0x53, b"x"),  # unknown object
                tlv(0x53, b"x"),  # no tag list
                tlv(0x5C, b"\x7e") + tlv(0x53, b"x"),  # 7E is not a 53 container
                b"\x5c\x03\x5f"):  # malformed
        assert send(card, 0xDB, 0x3F, 0xFF, bad)[1] == 0x6A80
    assert send(card, 0xDB, 0x3F, 0xFE, printed)[1] == 0x6A86


# -- PIN and PUK ---------------------------------------------------------------------
def test_verify_counts_down_and_blocks() -> None:
    changes: list[int] = []
    card = selected(on_change=lambda s: changes.append(s.pin_retries_left))
    assert tx(card, "0020008000")[1] == 0x63C3
    assert tx(card, PIN_BAD)[1] == 0x63C2
    assert tx(card, PIN_OK)[1] == 0x9000  # a success restores the counter
    assert tx(card, "0020008000")[1] == 0x9000
    assert [tx(card, PIN_BAD)[1] for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert tx(card, "0020008000")[1] == 0x6983  # failure cleared the verified status
    assert tx(card, PIN_OK)[1] == 0x6983
    assert changes == [2, 3, 2, 1, 0]
    assert card.state.pin_retries_left == 0


def test_verify_reset_status_and_bad_parameters() -> None:
    card = selected()
    tx(card, PIN_OK)
    assert tx(card, "0020FF800131")[1] == 0x6700  # P1=FF takes no data
    assert tx(card, "00200080")[1] == 0x9000  # case 1 is the status query
    assert tx(card, "0020FF80")[1] == 0x9000  # reset the verification status
    assert tx(card, "0020008000")[1] == 0x63C3
    assert tx(card, "002000800431323334")[1] == 0x6700
    assert tx(card, "002000" + "9A08" + b"123456".hex() + "FFFF")[1] == 0x6A88
    assert tx(card, "0020018008313233343536FFFF")[1] == 0x6A86
    assert card.state.pin_retries_left == 3
    assert tx(card, "0020008108" + b"12345678".hex())[1] == 0x9000  # the PUK
    assert tx(card, "0020008100")[1] == 0x9000
    assert tx(card, "0020008108" + b"87654321".hex())[1] == 0x63C2


def _pad(v: bytes) -> str:
    return v.ljust(8, b"\xff").hex()


def test_change_pin_and_puk() -> None:
    card = selected()
    assert tx(card, "0024008010" + _pad(b"654321") + _pad(b"11112222"))[1] == 0x63C2
    assert tx(card, "0024008010" + _pad(b"123456") + _pad(b"11112222"))[1] == 0x9000
    assert card.state.pin == b"11112222" and card.state.pin_retries_left == 3
    assert tx(card, "0020008008" + _pad(b"11112222"))[1] == 0x9000
    assert tx(card, "0024008010" + _pad(b"11112222") + _pad(b"123"))[1] == 0x6A80
    assert tx(card, "0024008010" + _pad(b"11112222") + "31FF32FF33FF34FF")[1] == 0x6A80
    assert tx(card, "0024008008" + _pad(b"11112222"))[1] == 0x6700
    assert tx(card, "0024008110" + b"12345678".hex() + b"abcdefgh".hex())[1] == 0x9000
    assert card.state.puk == b"abcdefgh"
    assert tx(card, "0024009A10" + "00" * 16)[1] == 0x6A88


def test_reset_retry_counter() -> None:
    card = selected()
    for _ in range(3):
        tx(card, PIN_BAD)
    assert tx(card, PIN_OK)[1] == 0x6983
    bad = "002C008010" + b"00000000".hex() + _pad(b"999999")
    assert tx(card, bad)[1] == 0x63C2
    good = "002C008010" + b"12345678".hex() + _pad(b"999999")
    assert tx(card, good)[1] == 0x9000
    assert card.state.pin_retries_left == 3 and card.state.puk_retries_left == 3
    assert tx(card, "0020008008" + _pad(b"999999"))[1] == 0x9000
    assert tx(card, "002C008010" + b"12345678".hex() + _pad(b"12"))[1] == 0x6A80
    assert tx(card, "002C008110" + "00" * 16)[1] == 0x6A88
    for _ in range(3):
        tx(card, bad)
    assert tx(card, good)[1] == 0x6983
    assert tx(card, "0024008110" + b"12345678".hex() + b"12345678".hex())[1] == 0x6983


def test_set_pin_retries_and_reset() -> None:
    card = selected()
    assert tx(card, "00FA0805")[1] == 0x6982
    admin(card)
    assert tx(card, "00FA0805")[1] == 0x6982  # the PIN too
    tx(card, "0024008010" + _pad(b"123456") + _pad(b"24682468"))
    tx(card, "0020008008" + _pad(b"24682468"))
    assert tx(card, "00FA0005")[1] == 0x6A86
    assert tx(card, "00FA0805")[1] == 0x9000
    assert (card.state.pin, card.state.pin_retries_left, card.state.puk_retries_limit) == (
        b"123456", 8, 5)
    assert tx(card, "00FB0000")[1] == 0x6985  # not blocked
    card.state.keys[0x9E] = SlotKey(0x11, der(ec.generate_private_key(ec.SECP256R1())))
    for _ in range(8):
        tx(card, PIN_BAD)
    for _ in range(5):
        tx(card, "002C008010" + "00" * 16)
    assert tx(card, "00FB0000")[1] == 0x9000
    state = card.state
    assert state.keys == {} and list(state.data_objects) == [0x7E]
    assert (state.pin_retries_left, state.puk_retries_left) == (3, 3)
    assert state.management_key == DEFAULT_MANAGEMENT_KEY and not card.session.admin
    assert tx(card, PIN_OK)[1] == 0x9000


# -- card management key -----------------------------------------------------------------
@pytest.mark.parametrize(("alg", "size"), [(0x03, 24), (0x08, 16), (0x0A, 24), (0x0C, 32)])
def test_admin_authentication_each_algorithm(alg: int, size: int) -> None:
    card = selected()
    admin(card)
    key = bytes(range(0x40, 0x40 + size))
    assert tx(card, "00FFFFFF" + f"{size + 3:02X}{alg:02X}9B{size:02X}" + key.hex())[1] == 0x9000
    assert card.state.management_key == key and card.state.management_key_algorithm == alg
    card.reset()
    tx(card, SELECT)
    admin(card, alg, key)
    assert card.session.admin
    # external authentication: the card's challenge, the host's encryption of it
    card.reset()
    tx(card, SELECT)
    out, sw = send(card, 0x87, alg, 0x9B, tlv(0x7C, tlv(0x81)))
    challenge = Tlv.decode(out).children()[0].value
    assert sw == 0x9000 and len(challenge) == (8 if alg == 3 else 16)
    response = tlv(0x7C, tlv(0x82, block(alg, key, challenge)))
    assert send(card, 0x87, alg, 0x9B, response) == (b"", 0x9000)
    assert card.session.admin


def test_admin_failures() -> None:
    card = selected()
    assert send(card, 0x87, 0x08, 0x9B, tlv(0x7C, tlv(0x80)))[1] == 0x6A86
    send(card, 0x87, 0x03, 0x9B, tlv(0x7C, tlv(0x80)))
    bad = tlv(0x7C, tlv(0x80, bytes(8)) + tlv(0x81, bytes(8)))
    assert send(card, 0x87, 0x03, 0x9B, bad)[1] == 0x6982
    assert not card.session.admin
    # no witness outstanding any more
    assert send(card, 0x87, 0x03, 0x9B, bad)[1] == 0x6982
    assert send(card, 0x87, 0x03, 0x9B, tlv(0x7C, tlv(0x82, bytes(8))))[1] == 0x6982
    assert send(card, 0x87, 0x03, 0x9B, tlv(0x7C, tlv(0x80, bytes(7)) + tlv(0x81, bytes(8))))[
        1] == 0x6A80
    assert send(card, 0x87, 0x03, 0x9B, tlv(0x7D, b""))[1] == 0x6A80
    assert tx(card, "00FFFFFF1B039B18" + "00" * 24)[1] == 0x6982
    admin(card)
    assert tx(card, "00FFFFFF1B089B18" + "00" * 24)[1] == 0x6A80  # AES-128 with 24 bytes
    assert tx(card, "00FFFFFF03039B01")[1] == 0x6A80
    assert tx(card, "00FFFF001B039B18" + "00" * 24)[1] == 0x6A86


def test_card_challenge_and_get_challenge() -> None:
    card = selected()
    challenge = bytes.fromhex("0102030405060708")
    out, sw = send(card, 0x87, 0x03, 0x9B, tlv(0x7C, tlv(0x81, challenge) + tlv(0x82)))
    assert sw == 0x9000
    assert Tlv.decode(out).children() == [Tlv(0x82, block(3, DEFAULT_MANAGEMENT_KEY, challenge))]
    assert not card.session.admin
    out, sw = tx(card, "0087009B047C02810000")  # OpenSC's GET CHALLENGE
    assert sw == 0x9000 and len(Tlv.decode(out).children()[0].value) == 8
    assert not card.session.admin


# -- asymmetric keys ------------------------------------------------------------------------
def pkcs1_sha256(message: bytes, size: int = 256) -> bytes:
    info = SHA256_PREFIX + hashlib.sha256(message).digest()
    return b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info


def sign_template(data: bytes) -> bytes:
    return tlv(0x7C, tlv(0x82) + tlv(0x81, data))


def test_generate_rsa_and_sign(rsa_key: rsa.RSAPrivateKey) -> None:
    card = selected()
    assert send(card, 0x47, 0x00, 0x9A, tlv(0xAC, tlv(0x80, b"\x07")))[1] == 0x6982
    admin(card)
    out, sw = send(card, 0x47, 0x00, 0x9A, tlv(0xAC, tlv(0x80, b"\x07")))
    assert sw == 0x9000
    pub = Tlv.decode(out)
    assert pub.tag == 0x7F49
    n = int.from_bytes(find(pub.children(), 0x81).value, "big")  # type: ignore[union-attr]
    e = int.from_bytes(find(pub.children(), 0x82).value, "big")  # type: ignore[union-attr]
    assert n.bit_length() == 2048 and e == 65537
    public = rsa.RSAPublicNumbers(e, n).public_key()
    message = b"PKINIT AuthPack"
    assert send(card, 0x87, 0x07, 0x9A, sign_template(pkcs1_sha256(message)))[1] == 0x6982
    tx(card, PIN_OK)
    out, sw = send(card, 0x87, 0x07, 0x9A, sign_template(pkcs1_sha256(message)))
    assert sw == 0x9000
    signature = Tlv.decode(out).children()[0].value
    public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    assert send(card, 0x87, 0x07, 0x9A, sign_template(b"\xff" * 256))[1] == 0x6A80
    assert send(card, 0x87, 0x07, 0x9A, sign_template(b"\x00" * 255))[1] == 0x6A80
    assert send(card, 0x87, 0x11, 0x9A, sign_template(b"\x00" * 256))[1] == 0x6A86
    for bad in (tlv(0x7C, tlv(0x81, bytes(256))), tlv(0x7C, tlv(0x82) + tlv(0x85, b"\x04"))):
        assert send(card, 0x87, 0x07, 0x9A, bad)[1] == 0x6A80


def test_rsa_decrypt_imported_key(rsa_key: rsa.RSAPrivateKey) -> None:
    state = new_state()
    state.keys[0x9D] = SlotKey(0x07, der(rsa_key), generated=False)
    card = selected(state)
    tx(card, PIN_OK)
    ciphertext = rsa_key.public_key().encrypt(b"session key", padding.PKCS1v15())
    out, sw = send(card, 0x87, 0x07, 0x9D, sign_template(ciphertext))
    assert sw == 0x9000
    plain = Tlv.decode(out).children()[0].value
    assert plain[:2] == b"\x00\x02" and plain.endswith(b"\x00session key")


def test_ecc_signature_pin_always_for_9c() -> None:
    card = selected()
    admin(card)
    out, sw = send(card, 0x47, 0x00, 0x9C, tlv(0xAC, tlv(0x80, b"\x11")))
    point = Tlv.decode(out).children()[0]
    assert sw == 0x9000 and point.tag == 0x86 and len(point.value) == 65
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point.value)
    digest = hashlib.sha256(b"document").digest()
    assert send(card, 0x87, 0x11, 0x9C, sign_template(digest))[1] == 0x6982
    tx(card, PIN_OK)
    out, sw = send(card, 0x87, 0x11, 0x9C, sign_template(digest))
    assert sw == 0x9000
    public.verify(Tlv.decode(out).children()[0].value, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    # the PIN stays verified for the session but 9C wants it again
    assert send(card, 0x87, 0x11, 0x9C, sign_template(digest))[1] == 0x6982
    assert tx(card, "0020008000")[1] == 0x9000
    tx(card, PIN_OK)
    assert send(card, 0x87, 0x11, 0x9C, sign_template(b"\x00" * 33))[1] == 0x6A80


def test_ecdh_9d_and_card_authentication_9e_without_pin() -> None:
    key9d, key9e = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    state = new_state()
    state.keys[0x9D] = SlotKey(0x11, der(key9d), generated=False)
    state.keys[0x9E] = SlotKey(0x11, der(key9e), generated=False)
    card = selected(state)
    peer = ec.generate_private_key(ec.SECP256R1())
    point = peer.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    template = tlv(0x7C, tlv(0x82) + tlv(0x85, point))
    assert send(card, 0x87, 0x11, 0x9D, template)[1] == 0x6982
    tx(card, PIN_OK)
    out, sw = send(card, 0x87, 0x11, 0x9D, template)
    assert sw == 0x9000
    assert Tlv.decode(out).children()[0].value == peer.exchange(ec.ECDH(), key9d.public_key())
    bad_point = tlv(0x7C, tlv(0x82) + tlv(0x85, b"\x04" + bytes(64)))
    assert send(card, 0x87, 0x11, 0x9D, bad_point)[1] == 0x6A80
    card.reset()
    tx(card, SELECT)
    digest = hashlib.sha256(b"challenge").digest()
    out, sw = send(card, 0x87, 0x11, 0x9E, sign_template(digest))
    assert sw == 0x9000
    key9e.public_key().verify(Tlv.decode(out).children()[0].value, digest,
                              ec.ECDSA(Prehashed(hashes.SHA256())))


def test_general_authenticate_slot_errors() -> None:
    card = selected()
    assert send(card, 0x87, 0x07, 0x9A, sign_template(bytes(256)))[1] == 0x6A88
    assert send(card, 0x87, 0x07, 0x80, sign_template(bytes(256)))[1] == 0x6A86
    admin(card)
    assert send(card, 0x47, 0x00, 0x9B, tlv(0xAC, tlv(0x80, b"\x07")))[1] == 0x6A86
    assert send(card, 0x47, 0x00, 0x9A, tlv(0xAC, tlv(0x80, b"\x03")))[1] == 0x6A80
    assert send(card, 0x47, 0x00, 0x9A, tlv(0xAB, tlv(0x80, b"\x11")))[1] == 0x6A80


# -- YubiKey extensions, classes, robustness ----------------------------------------------------
def test_version_serial_metadata(rsa_key: rsa.RSAPrivateKey) -> None:
    state = new_state()
    state.keys[0x9A] = SlotKey(0x07, der(rsa_key), generated=False)
    card = selected(state)
    assert tx(card, "00FD000000") == (b"\x05\x04\x03", 0x9000)
    assert tx(card, "00F8000000") == ((12345678).to_bytes(4, "big"), 0x9000)
    tx(card, PIN_BAD)
    out, sw = tx(card, "00F7008000")
    assert sw == 0x9000 and find(decode_all(out), 0x06) == Tlv(0x06, b"\x03\x02")
    assert find(decode_all(out), 0x05) == Tlv(0x05, b"\x01")
    out, _ = tx(card, "00F7009B00")
    assert find(decode_all(out), 0x01) == Tlv(0x01, b"\x03")
    out, sw = send(card, 0xF7, 0x00, 0x9A)
    items = decode_all(out)
    assert sw == 0x9000 and find(items, 0x03) == Tlv(0x03, b"\x02")
    assert len(find(items, 0x04).value) > 256  # type: ignore[union-attr]
    assert tx(card, "00F7009C00")[1] == 0x6A88


@pytest.mark.parametrize(("apdu", "sw"), [
    ("0001000000", 0x6D00), ("80FD000000", 0x6E00), ("01FD000000", 0x6881),
    ("0CFD000000", 0x6882), ("00A404", 0x6700), ("00A4040005A0", 0x6700),
])
def test_instruction_and_class_errors(apdu: str, sw: int) -> None:
    assert tx(selected(), apdu)[1] == sw


def test_chain_interrupted_by_other_command() -> None:
    card = selected()
    assert tx(card, "10DB3FFF025C03")[1] == 0x9000
    assert tx(card, "00FD000000")[1] == 0x9000
    assert tx(card, "00DB3FFF035FC105")[1] == 0x6982  # the chain was dropped


def test_on_change_failure_does_not_break_the_card() -> None:
    def boom(_state: CardState) -> None:
        raise OSError("disk full")

    card = selected(on_change=boom)
    assert tx(card, PIN_BAD)[1] == 0x63C2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), max_size=6))
def test_arbitrary_apdus_never_raise(apdus: list[bytes]) -> None:
    card = selected()
    for apdu in apdus:
        out = card.transmit(apdu)
        assert len(out) >= 2 and out[-2:] != b"\x6f\x00"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([0x20, 0x24, 0x2C, 0x47, 0x87, 0xCB, 0xDB, 0xF7, 0xFF, 0xC0, 0xA4]),
       st.integers(0, 255), st.integers(0, 255), st.binary(max_size=80))
def test_structured_apdus_never_raise(ins: int, p1: int, p2: int, data: bytes) -> None:
    card = selected()
    admin(card)
    tx(card, PIN_OK)
    out = card.transmit(CommandApdu(0, ins, p1, p2, data, 256).encode())
    assert out[-2:] != b"\x6f\x00"
