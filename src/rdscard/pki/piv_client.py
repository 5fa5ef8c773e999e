"""PIV card operations from the host side, over any :class:`~rdscard.pki.transport.Transport`.

Only ISO 7816-4 and NIST SP 800-73-4 Part 2 commands are used (plus the
YubiKey SET MANAGEMENT KEY, INS FF), so the same code drives the virtual card
and a real PIV card. Long commands are sent with command chaining (CLA 10),
long responses fetched with GET RESPONSE (61xx), so short APDUs suffice.
PINs, PUKs and keys pass through ``bytearray`` buffers wiped after use.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from rdscard.errors import ProtocolError, RdscardError
from rdscard.pdu.tlv import tlv
from rdscard.pki.piv_codec import (
    CERT_OBJECT_FOR_SLOT,
    PIV_AID_SHORT,
    SYMMETRIC_KEY_LENGTHS,
    Algorithm,
    Ins,
    KeyRef,
    Sw,
    data_object_selector,
    decode_certificate_object,
    decode_general_authenticate,
    decode_public_key,
    encode_certificate_object,
    general_authenticate_data,
    pad_pin,
    unwrap,
)
from rdscard.pki.transport import Transport

MAX_RESPONSE: Final = 16 * 1024
CHUNK: Final = 255
DEFAULT_MANAGEMENT_KEY: Final = bytes.fromhex("010203040506070801020304050607080102030405060708")
RESPONSE_PDU: Final = "PIV response APDU"


class PivError(RdscardError):
    """A PIV command failed with status word ``sw``."""

    def __init__(self, command: str, sw: int, message: str | None = None) -> None:
        self.command = command
        self.sw = sw
        super().__init__(message or f"{command} failed with status {sw:04X}")


class WrongPinError(PivError):
    """Wrong PIN or PUK; ``tries_left`` before the card blocks it."""

    def __init__(self, command: str, sw: int, what: str, tries_left: int) -> None:
        self.tries_left = tries_left
        super().__init__(command, sw, f"wrong {what}: {tries_left} tries left before it blocks")


class PinBlockedError(PivError):
    """The PIN (or PUK) is blocked."""


@dataclass(frozen=True)
class PinStatus:
    """What an empty VERIFY says: verified in this session, or the tries left."""

    verified: bool
    tries_left: int | None
    blocked: bool


def _cipher(algorithm: Algorithm, key: bytes | bytearray) -> Cipher[modes.ECB]:
    if algorithm == Algorithm.TDES:
        return Cipher(TripleDES(bytes(key)), modes.ECB())
    return Cipher(algorithms.AES(bytes(key)), modes.ECB())


def _sw_of(response: bytes) -> int:
    if len(response) < 2:
        raise ProtocolError(RESPONSE_PDU, "SW1-SW2", f"{len(response)}-byte response")
    return int.from_bytes(response[-2:], "big")


class PivClient:
    """A session with the PIV application of one card."""

    def __init__(self, transport: Transport, *, rng: Callable[[int], bytes] = os.urandom) -> None:
        self.transport = transport
        self._rng = rng

    # -- APDU exchange ---------------------------------------------------------
    def send(self, ins: int, p1: int, p2: int, data: bytes | bytearray = b"",
             *, expect_data: bool = True, name: str = "command") -> tuple[bytes, int]:
        """Send one command (chained when long); returns (response data, SW)."""
        buf = bytearray(data)
        try:
            offset = 0
            while True:
                chunk = buf[offset:offset + CHUNK]
                last = offset + CHUNK >= len(buf)
                header = bytes([0x00 if last else 0x10, ins, p1, p2])
                apdu = bytearray(header)
                if chunk:
                    apdu.append(len(chunk))
                    apdu += chunk
                if last and expect_data:
                    apdu.append(0x00)
                try:
                    response = self.transport.transmit(bytes(apdu))
                finally:
                    apdu[:] = bytes(len(apdu))
                sw = _sw_of(response)
                if last:
                    break
                if sw != Sw.SUCCESS:
                    return b"", sw
                offset += CHUNK
        finally:
            buf[:] = bytes(len(buf))
        out = bytearray(response[:-2])
        while sw >> 8 == 0x61:
            if len(out) > MAX_RESPONSE:
                raise ProtocolError(RESPONSE_PDU, "data", f"more than {MAX_RESPONSE} bytes")
            response = self.transport.transmit(bytes([0x00, Ins.GET_RESPONSE, 0, 0, sw & 0xFF]))
            sw = _sw_of(response)
            out += response[:-2]
        return bytes(out), sw

    def _check(self, name: str, sw: int) -> None:
        if sw != Sw.SUCCESS:
            if sw == Sw.SECURITY_STATUS_NOT_SATISFIED:
                raise PivError(name, sw, f"{name}: security status not satisfied "
                                         "(PIN or management key authentication needed)")
            raise PivError(name, sw)

    # -- application -------------------------------------------------------------
    def select(self) -> bytes:
        """SELECT the PIV application (Part 2 3.1.1); returns the application property template."""
        data, sw = self.send(Ins.SELECT, 0x04, 0x00, PIV_AID_SHORT, name="SELECT")
        if sw == Sw.FILE_NOT_FOUND:
            raise PivError("SELECT", sw, "the card has no PIV application")
        self._check("SELECT", sw)
        return data

    # -- PIN and PUK ----------------------------------------------------------------
    def _pin_result(self, name: str, what: str, sw: int) -> None:
        if sw == Sw.SUCCESS:
            return
        if sw & 0xFFF0 == 0x63C0:
            raise WrongPinError(name, sw, what, sw & 0x0F)
        if sw == Sw.AUTH_METHOD_BLOCKED:
            raise PinBlockedError(name, sw, f"the {what} is blocked"
                             + (": unblock it with the PUK" if what == "PIN" else ""))
        raise PivError(name, sw)

    def pin_status(self, ref: int = KeyRef.PIV_PIN) -> PinStatus:
        """Empty VERIFY (Part 2 3.2.1): verified, tries left, or blocked."""
        _, sw = self.send(Ins.VERIFY, 0x00, ref, expect_data=False, name="VERIFY")
        if sw == Sw.SUCCESS:
            return PinStatus(verified=True, tries_left=None, blocked=False)
        if sw & 0xFFF0 == 0x63C0:
            return PinStatus(verified=False, tries_left=sw & 0x0F, blocked=sw & 0x0F == 0)
        if sw == Sw.AUTH_METHOD_BLOCKED:
            return PinStatus(verified=False, tries_left=0, blocked=True)
        raise PivError("VERIFY", sw)

    def verify_pin(self, pin: bytes | bytearray, ref: int = KeyRef.PIV_PIN) -> None:
        """VERIFY the PIN (or with ``ref=KeyRef.PUK`` the PUK)."""
        what = "PUK" if ref == KeyRef.PUK else "PIN"
        padded = pad_pin(pin, what)
        try:
            _, sw = self.send(Ins.VERIFY, 0x00, ref, padded, expect_data=False, name="VERIFY")
        finally:
            padded[:] = bytes(len(padded))
        self._pin_result("VERIFY", what, sw)

    def change_reference(self, ref: int, old: bytes | bytearray, new: bytes | bytearray) -> None:
        """CHANGE REFERENCE DATA (Part 2 3.2.2) for the PIN (80) or PUK (81)."""
        what = "PUK" if ref == KeyRef.PUK else "PIN"
        data = pad_pin(old, what) + pad_pin(new, f"new {what}")
        try:
            _, sw = self.send(Ins.CHANGE_REFERENCE_DATA, 0x00, ref, data, expect_data=False,
                              name="CHANGE REFERENCE DATA")
        finally:
            data[:] = bytes(len(data))
        self._pin_result("CHANGE REFERENCE DATA", what, sw)

    def change_pin(self, old: bytes | bytearray, new: bytes | bytearray) -> None:
        self.change_reference(KeyRef.PIV_PIN, old, new)

    def change_puk(self, old: bytes | bytearray, new: bytes | bytearray) -> None:
        self.change_reference(KeyRef.PUK, old, new)

    def unblock_pin(self, puk: bytes | bytearray, new_pin: bytes | bytearray) -> None:
        """RESET RETRY COUNTER (Part 2 3.2.3): set a new PIN with the PUK."""
        data = pad_pin(puk, "PUK") + pad_pin(new_pin, "new PIN")
        try:
            _, sw = self.send(Ins.RESET_RETRY_COUNTER, 0x00, KeyRef.PIV_PIN, data,
                              expect_data=False, name="RESET RETRY COUNTER")
        finally:
            data[:] = bytes(len(data))
        self._pin_result("RESET RETRY COUNTER", "PUK", sw)

    # -- administration ---------------------------------------------------------------
    def authenticate_admin(self, key: bytes | bytearray = DEFAULT_MANAGEMENT_KEY,
                           algorithm: Algorithm = Algorithm.TDES) -> None:
        """Mutual authentication with the card management key 9B (Part 2 appendix A.1).

        The card sends an encrypted witness; we return it decrypted with our
        own challenge, and check the card's encryption of that challenge.
        """
        if len(key) != SYMMETRIC_KEY_LENGTHS.get(algorithm, -1):
            raise ValueError(f"a {algorithm.name} management key is "
                             f"{SYMMETRIC_KEY_LENGTHS.get(algorithm)} bytes, not {len(key)}")
        name = "GENERAL AUTHENTICATE (9B)"
        block = 8 if algorithm == Algorithm.TDES else 16
        cipher = _cipher(algorithm, key)
        data, sw = self.send(Ins.GENERAL_AUTHENTICATE, algorithm, KeyRef.CARD_MANAGEMENT,
                             general_authenticate_data(a80=b""), name=name)
        if sw == Sw.INCORRECT_P1_P2:
            raise PivError(name, sw, f"the card's management key is not {algorithm.name}")
        self._check(name, sw)
        witness = decode_general_authenticate(data).get(0x80, b"")
        if len(witness) != block:
            raise ProtocolError(RESPONSE_PDU, "witness (80)", f"{len(witness)} bytes, not {block}")
        decryptor = cipher.decryptor()
        plain = decryptor.update(witness) + decryptor.finalize()
        challenge = self._rng(block)
        data, sw = self.send(Ins.GENERAL_AUTHENTICATE, algorithm, KeyRef.CARD_MANAGEMENT,
                             general_authenticate_data(a80=plain, a81=challenge), name=name)
        if sw in (Sw.SECURITY_STATUS_NOT_SATISFIED, Sw.INCORRECT_DATA):
            raise PivError(name, sw, "wrong management key")
        self._check(name, sw)
        encryptor = cipher.encryptor()
        expected = encryptor.update(challenge) + encryptor.finalize()
        got = decode_general_authenticate(data).get(0x82, b"")
        if not hmac.compare_digest(got, expected):
            raise PivError(name, sw, "the card failed to prove the management key: "
                                     "it is not the card you think it is")

    def set_management_key(self, key: bytes | bytearray,
                           algorithm: Algorithm = Algorithm.TDES, *, touch: bool = False) -> None:
        """SET MANAGEMENT KEY (YubiKey INS FF), after :meth:`authenticate_admin`."""
        if len(key) != SYMMETRIC_KEY_LENGTHS.get(algorithm, -1):
            raise ValueError(f"a {algorithm.name} management key is "
                             f"{SYMMETRIC_KEY_LENGTHS.get(algorithm)} bytes, not {len(key)}")
        data = bytearray([algorithm, KeyRef.CARD_MANAGEMENT, len(key)]) + key
        try:
            _, sw = self.send(Ins.SET_MANAGEMENT_KEY, 0xFF, 0xFE if touch else 0xFF, data,
                              expect_data=False, name="SET MANAGEMENT KEY")
        finally:
            data[:] = bytes(len(data))
        self._check("SET MANAGEMENT KEY", sw)

    def generate_key(self, slot: int, algorithm: Algorithm) -> rsa.RSAPublicKey | \
            ec.EllipticCurvePublicKey:
        """GENERATE ASYMMETRIC KEY PAIR (Part 2 3.3.2) in ``slot``; returns the public key."""
        name = f"GENERATE ASYMMETRIC KEY PAIR ({slot:02X})"
        template = tlv(0xAC, tlv(0x80, bytes([algorithm])))
        data, sw = self.send(Ins.GENERATE_ASYMMETRIC_KEY_PAIR, 0x00, slot, template, name=name)
        self._check(name, sw)
        return decode_public_key(data, algorithm)

    # -- data objects --------------------------------------------------------------
    def get_data(self, tag: int) -> bytes | None:
        """GET DATA (Part 2 3.1.2): the value inside 53, or None when the object is absent."""
        data, sw = self.send(Ins.GET_DATA, 0x3F, 0xFF, data_object_selector(tag),
                             name="GET DATA")
        if sw == Sw.FILE_NOT_FOUND:
            return None
        self._check(f"GET DATA {tag:X}", sw)
        outer = 0x7E if tag == 0x7E else 0x53
        return unwrap(data, outer, f"PIV data object {tag:X}")

    def put_data(self, tag: int, value: bytes) -> None:
        """PUT DATA (Part 2 3.3.2) of ``53 value`` into object ``tag`` (after admin auth)."""
        body = data_object_selector(tag) + tlv(0x53, value)
        _, sw = self.send(Ins.PUT_DATA, 0x3F, 0xFF, body, expect_data=False, name="PUT DATA")
        self._check(f"PUT DATA {tag:X}", sw)

    def write_certificate(self, slot: int, cert: x509.Certificate) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding

        self.put_data(CERT_OBJECT_FOR_SLOT[KeyRef(slot)],
                      encode_certificate_object(cert.public_bytes(Encoding.DER)))

    def read_certificate(self, slot: int) -> x509.Certificate | None:
        """The certificate of ``slot``, or None when the slot has none."""
        value = self.get_data(CERT_OBJECT_FOR_SLOT[KeyRef(slot)])
        if not value:
            return None
        der = decode_certificate_object(value)
        try:
            return x509.load_der_x509_certificate(der)
        except ValueError:
            raise ProtocolError("PIV certificate object", "Certificate (70)",
                                "not a DER X.509 certificate") from None

    # -- private key operations ---------------------------------------------------------
    def general_authenticate(self, slot: int, algorithm: Algorithm, item: int,
                             value: bytes) -> bytes:
        """One private-key operation: 7C {82 00, <item> value} -> response item 82."""
        name = f"GENERAL AUTHENTICATE ({slot:02X})"
        body = tlv(0x7C, tlv(0x82, b"") + tlv(item, value))
        data, sw = self.send(Ins.GENERAL_AUTHENTICATE, algorithm, slot, body, name=name)
        self._check(name, sw)
        result = decode_general_authenticate(data).get(0x82)
        if result is None:
            raise ProtocolError(RESPONSE_PDU, "response (82)", "missing")
        return result

    def rsa_private(self, slot: int, block: bytes) -> bytes:
        """The raw RSA-2048 private operation on a 256-byte block (signing or decryption)."""
        if len(block) != 256:
            raise ValueError("an RSA-2048 block is 256 bytes")
        return self.general_authenticate(slot, Algorithm.RSA_2048, 0x81, block)

    def sign_ecdsa(self, slot: int, digest: bytes,
                   algorithm: Algorithm = Algorithm.ECC_P256) -> bytes:
        """An ECDSA signature (DER) of ``digest`` with the key in ``slot``."""
        return self.general_authenticate(slot, algorithm, 0x81, digest)

    def ecdh(self, slot: int, peer_point: bytes,
             algorithm: Algorithm = Algorithm.ECC_P256) -> bytes:
        """ECDH with the key in ``slot`` and an uncompressed peer point (item 85)."""
        return self.general_authenticate(slot, algorithm, 0x85, peer_point)
