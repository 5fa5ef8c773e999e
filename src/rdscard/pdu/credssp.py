"""CredSSP messages (MS-CSSP 2.2.1): TSRequest, TSCredentials, TSSmartCardCreds.

The Credential Security Support Provider runs inside TLS before the RDP
connection sequence goes on (MS-RDPBCGR 5.4.5.2, "Network Level
Authentication"). Every message is ASN.1 DER (X.690); the tags used are
SEQUENCE, INTEGER, OCTET STRING and explicit context tags ``[n]``::

    TSRequest ::= SEQUENCE {                        -- MS-CSSP 2.2.1
        version     [0] INTEGER,
        negoTokens  [1] NegoData OPTIONAL,          -- SEQUENCE OF SEQUENCE {
                                                    --   negoToken [0] OCTET STRING }
        authInfo    [2] OCTET STRING OPTIONAL,
        pubKeyAuth  [3] OCTET STRING OPTIONAL,
        errorCode   [4] INTEGER OPTIONAL,
        clientNonce [5] OCTET STRING OPTIONAL }

    TSCredentials ::= SEQUENCE {                    -- MS-CSSP 2.2.1.2
        credType    [0] INTEGER,
        credentials [1] OCTET STRING }

    TSSmartCardCreds ::= SEQUENCE {                 -- MS-CSSP 2.2.1.2.2
        pin         [0] OCTET STRING,
        cspData     [1] TSCspDataDetail,
        userHint    [2] OCTET STRING OPTIONAL,
        domainHint  [3] OCTET STRING OPTIONAL }

    TSCspDataDetail ::= SEQUENCE {                  -- MS-CSSP 2.2.1.2.2.1
        keySpec       [0] INTEGER,
        cardName      [1] OCTET STRING OPTIONAL,
        readerName    [2] OCTET STRING OPTIONAL,
        containerName [3] OCTET STRING OPTIONAL,
        cspName       [4] OCTET STRING OPTIONAL }

Lengths in a longer form than DER's shortest are accepted (rdesktop sends
them). Text fields are UTF-16LE (MS-CSSP 2.2, product behaviour note 6); some
clients (rdesktop) end them with a NUL, which the decoder strips (one). The
PIN is decoded straight into a :class:`~rdscard.secret.Secret` as UTF-8,
never into an immutable string. Every decoder bounds its input
(:data:`MAX_TS_REQUEST`, :data:`MAX_TOKEN`, :data:`MAX_TEXT`) and raises
:class:`~rdscard.errors.ProtocolError` for anything malformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from rdscard.errors import ProtocolError
from rdscard.pdu.buffer import Reader
from rdscard.pdu.client_info import utf16le_to_utf8
from rdscard.secret import Secret

#: The largest TSRequest accepted or sent (a Kerberos AP-REQ with a PAC fits well below).
MAX_TS_REQUEST: Final = 64 * 1024
#: The largest negoToken, pubKeyAuth or authInfo.
MAX_TOKEN: Final = 60 * 1024
#: The largest text field of the credentials (UTF-16 bytes).
MAX_TEXT: Final = 1024
#: The largest PIN (UTF-16 bytes): PINs are 4-8 digits, passphrases on cards far below this.
MAX_PIN: Final = 256
#: clientNonce is 32 bytes (MS-CSSP 2.2.1).
NONCE_SIZE: Final = 32
#: The newest CredSSP version this server speaks (MS-CSSP 2.2.1: version 6).
SERVER_VERSION: Final = 6

_SEQUENCE: Final = 0x30
_INTEGER: Final = 0x02
_OCTET_STRING: Final = 0x04
_CONTEXT: Final = 0xA0


class CredType(IntEnum):
    """TSCredentials.credType (MS-CSSP 2.2.1.2)."""

    PASSWORD = 1
    SMART_CARD = 2
    REMOTE_GUARD = 6


class NtStatus(IntEnum):
    """NTSTATUS values sent in TSRequest.errorCode (MS-ERREF 2.3.1)."""

    STATUS_LOGON_FAILURE = 0xC000006D
    STATUS_ACCESS_DENIED = 0xC0000022
    STATUS_NOT_SUPPORTED = 0xC00000BB
    STATUS_INVALID_PARAMETER = 0xC000000D


# -- DER primitives -------------------------------------------------------------------
def _read_tlv(reader: Reader, field: str, limit: int) -> tuple[int, Reader]:
    """One tag (low-tag-number form) and definite length; a reader over the content."""
    tag = reader.u8(f"{field}.tag")
    if tag & 0x1F == 0x1F:
        raise reader.error(f"{field}.tag", "high tag numbers are not used by CredSSP")
    first = reader.u8(f"{field}.length")
    if first < 0x80:
        length = first
    elif first in (0x81, 0x82, 0x83):
        size = first & 0x7F
        # rdesktop 1.9 writes lengths in the long form even where DER wants the short one:
        # accepted (BER), as Windows does.
        length = int.from_bytes(reader.raw(size, f"{field}.length"), "big")
    else:
        raise reader.error(f"{field}.length", f"unsupported length form 0x{first:02x}")
    if length > limit:
        raise reader.error(field, f"{length} bytes, at most {limit} allowed")
    return tag, reader.sub(length, field)


def _expect(reader: Reader, tag: int, field: str, limit: int = MAX_TS_REQUEST) -> Reader:
    got, content = _read_tlv(reader, field, limit)
    if got != tag:
        raise reader.error(f"{field}.tag", f"expected 0x{tag:02x}, got 0x{got:02x}")
    return content


def _integer(reader: Reader, field: str, *, signed32: bool = False) -> int:
    """An INTEGER of at most 4 content bytes (5 for an unsigned 32-bit value)."""
    content = _expect(reader, _INTEGER, field, 5)
    raw = content.rest()
    if not raw or len(raw) > 5:
        raise reader.error(field, f"integer of {len(raw)} bytes")
    if len(raw) > 1 and ((raw[0] == 0 and raw[1] < 0x80) or (raw[0] == 0xFF and raw[1] >= 0x80)):
        raise reader.error(field, "integer not in its shortest form (DER)")
    value = int.from_bytes(raw, "big", signed=True)
    if signed32:
        if not -(1 << 31) <= value < 1 << 32:
            raise reader.error(field, f"{value} is not a 32-bit value")
        return value & 0xFFFFFFFF
    if not 0 <= value < 1 << 31:
        raise reader.error(field, f"{value} is out of range")
    return value


def _octets(reader: Reader, field: str, limit: int) -> bytes:
    return _expect(reader, _OCTET_STRING, field, limit).rest()


def _tagged(reader: Reader, number: int) -> bool:
    """True when the next element is the explicit context tag ``[number]``."""
    return reader.remaining > 0 and reader.peek_u8("tag") == _CONTEXT | number


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def _tlv(tag: int, content: bytes | bytearray) -> bytearray:
    out = bytearray((tag,))
    out += _length(len(content))
    out += content
    return out


def _der_integer(value: int, *, signed32: bool = False) -> bytearray:
    if signed32 and value >= 1 << 31:
        value -= 1 << 32  # NTSTATUS values go out as a signed 32-bit INTEGER
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return _tlv(_INTEGER, value.to_bytes(size, "big", signed=True))


def _explicit(number: int, content: bytes | bytearray) -> bytearray:
    return _tlv(_CONTEXT | number, content)


# -- TSRequest ------------------------------------------------------------------------
@dataclass(frozen=True)
class TsRequest:
    """TSRequest (MS-CSSP 2.2.1): every CredSSP message in either direction."""

    version: int
    nego_tokens: tuple[bytes, ...] = ()
    auth_info: bytes | None = field(default=None, repr=False)
    pub_key_auth: bytes | None = field(default=None, repr=False)
    error_code: int | None = None
    client_nonce: bytes | None = None

    def encode(self) -> bytes:
        """DER, fields in the order of the definition, absent ones left out."""
        body = _explicit(0, _der_integer(self.version))
        if self.nego_tokens:
            items = b"".join(
                _tlv(_SEQUENCE, _explicit(0, _tlv(_OCTET_STRING, token)))
                for token in self.nego_tokens)
            body += _explicit(1, _tlv(_SEQUENCE, items))
        if self.auth_info is not None:
            body += _explicit(2, _tlv(_OCTET_STRING, self.auth_info))
        if self.pub_key_auth is not None:
            body += _explicit(3, _tlv(_OCTET_STRING, self.pub_key_auth))
        if self.error_code is not None:
            body += _explicit(4, _der_integer(self.error_code, signed32=True))
        if self.client_nonce is not None:
            body += _explicit(5, _tlv(_OCTET_STRING, self.client_nonce))
        out = _tlv(_SEQUENCE, body)
        if len(out) > MAX_TS_REQUEST:
            raise ValueError(f"TSRequest of {len(out)} bytes, more than {MAX_TS_REQUEST}")
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> TsRequest:
        """Exactly one TSRequest; unknown fields, trailing bytes and bad lengths are errors."""
        if len(data) > MAX_TS_REQUEST:
            raise ProtocolError("TSRequest", "length",
                                f"{len(data)} bytes, more than {MAX_TS_REQUEST}")
        outer = Reader(data, "TSRequest")
        body = _expect(outer, _SEQUENCE, "TSRequest")
        outer.expect_end()
        version = _integer(_expect(body, _CONTEXT | 0, "version"), "version")
        tokens: list[bytes] = []
        auth_info = pub_key_auth = nonce = None
        error_code: int | None = None
        if _tagged(body, 1):
            nego = _expect(_expect(body, _CONTEXT | 1, "negoTokens"), _SEQUENCE, "negoTokens")
            while nego.remaining:
                item = _expect(nego, _SEQUENCE, "NegoData")
                token = _expect(item, _CONTEXT | 0, "negoToken")
                tokens.append(_octets(token, "negoToken", MAX_TOKEN))
                token.expect_end()
                item.expect_end()
            if not tokens or len(tokens) > 4:
                raise body.error("negoTokens", f"{len(tokens)} tokens (1 to 4 expected)")
        if _tagged(body, 2):
            auth_info = _whole_octets(body, 2, "authInfo", MAX_TOKEN)
        if _tagged(body, 3):
            pub_key_auth = _whole_octets(body, 3, "pubKeyAuth", MAX_TOKEN)
        if _tagged(body, 4):
            inner = _expect(body, _CONTEXT | 4, "errorCode")
            error_code = _integer(inner, "errorCode", signed32=True)
            inner.expect_end()
        if _tagged(body, 5):
            nonce = _whole_octets(body, 5, "clientNonce", NONCE_SIZE)
            if len(nonce) != NONCE_SIZE:
                raise body.error("clientNonce", f"{len(nonce)} bytes, not {NONCE_SIZE}")
        if body.remaining:
            raise body.error("TSRequest", f"{body.remaining} bytes of unknown or misordered "
                             "fields")
        return cls(version, tuple(tokens), auth_info, pub_key_auth, error_code, nonce)


def _whole_octets(body: Reader, number: int, field: str, limit: int) -> bytes:
    inner = _expect(body, _CONTEXT | number, field)
    value = _octets(inner, field, limit)
    inner.expect_end()
    return value


def ts_request_length(head: bytes | bytearray | memoryview) -> int | None:
    """The size of the TSRequest starting ``head``, once its tag and length are there.

    None while fewer bytes than the header arrived. The transport splits
    the CredSSP stream (MS-CSSP 2.2.1: no framing besides DER) with it.
    """
    if not head:
        return None
    if head[0] != _SEQUENCE:
        raise ProtocolError("TSRequest", "tag", f"expected a SEQUENCE, got 0x{head[0]:02x}")
    if len(head) < 2:
        return None
    first = head[1]
    if first < 0x80:
        return 2 + first
    size = first & 0x7F
    if not 1 <= size <= 3:
        raise ProtocolError("TSRequest", "length", f"unsupported length form 0x{first:02x}")
    if len(head) < 2 + size:
        return None
    total = 2 + size + int.from_bytes(bytes(head[2:2 + size]), "big")
    if total > MAX_TS_REQUEST:
        raise ProtocolError("TSRequest", "length",
                            f"{total} bytes, more than {MAX_TS_REQUEST}")
    return total


# -- TSCredentials ----------------------------------------------------------------------
@dataclass(frozen=True)
class TsCredentials:
    """TSCredentials (MS-CSSP 2.2.1.2); ``credentials`` still encoded."""

    cred_type: int
    credentials: bytes = field(repr=False)

    def encode(self) -> bytes:
        """DER."""
        body = _explicit(0, _der_integer(self.cred_type))
        body += _explicit(1, _tlv(_OCTET_STRING, self.credentials))
        return bytes(_tlv(_SEQUENCE, body))

    @classmethod
    def decode(cls, data: bytes) -> TsCredentials:
        """Exactly one TSCredentials."""
        outer = Reader(data, "TSCredentials")
        body = _expect(outer, _SEQUENCE, "TSCredentials", MAX_TOKEN)
        outer.expect_end()
        inner = _expect(body, _CONTEXT | 0, "credType")
        cred_type = _integer(inner, "credType")
        inner.expect_end()
        credentials = _whole_octets(body, 1, "credentials", MAX_TOKEN)
        body.expect_end()
        return cls(cred_type, credentials)


@dataclass(frozen=True)
class TsCspDataDetail:
    """TSCspDataDetail (MS-CSSP 2.2.1.2.2.1): where the client's CSP found the key."""

    key_spec: int
    card_name: str | None = None
    reader_name: str | None = None
    container_name: str | None = None
    csp_name: str | None = None

    def encode(self) -> bytes:
        """DER, text as UTF-16LE without a terminating NUL (as Windows sends it)."""
        body = _explicit(0, _der_integer(self.key_spec))
        for number, text in enumerate(
                (self.card_name, self.reader_name, self.container_name, self.csp_name), 1):
            if text is not None:
                body += _explicit(number, _tlv(_OCTET_STRING, text.encode("utf-16-le")))
        return bytes(_tlv(_SEQUENCE, body))

    @classmethod
    def decode_from(cls, reader: Reader) -> TsCspDataDetail:
        """From the reader positioned at the SEQUENCE."""
        body = _expect(reader, _SEQUENCE, "TSCspDataDetail", MAX_TOKEN)
        inner = _expect(body, _CONTEXT | 0, "keySpec")
        key_spec = _integer(inner, "keySpec")
        inner.expect_end()
        texts: list[str | None] = []
        for number, name in enumerate(("cardName", "readerName", "containerName", "cspName"),
                                      1):
            texts.append(_text(body, number, name) if _tagged(body, number) else None)
        body.expect_end()
        return cls(key_spec, *texts)


def _text(body: Reader, number: int, field: str) -> str:
    raw = _whole_octets(body, number, field, MAX_TEXT)
    if len(raw) % 2:
        raise body.error(field, f"odd UTF-16 length {len(raw)}")
    if raw.endswith(b"\x00\x00"):
        raw = raw[:-2]  # rdesktop ends its strings with one NUL
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError:
        raise body.error(field, "invalid UTF-16") from None


@dataclass(frozen=True)
class TsSmartCardCreds:
    """TSSmartCardCreds (MS-CSSP 2.2.1.2.2); ``pin`` is UTF-8 in a Secret."""

    pin: Secret = field(repr=False)
    csp_data: TsCspDataDetail
    user_hint: str | None = None
    domain_hint: str | None = None

    def encode(self) -> bytes:
        """DER (the PIN as UTF-16LE); for tests and the benchmark client."""
        pin = bytes(self.pin.reveal()).decode("utf-8").encode("utf-16-le")
        body = _explicit(0, _tlv(_OCTET_STRING, pin))
        body += _explicit(1, self.csp_data.encode())
        if self.user_hint is not None:
            body += _explicit(2, _tlv(_OCTET_STRING, self.user_hint.encode("utf-16-le")))
        if self.domain_hint is not None:
            body += _explicit(3, _tlv(_OCTET_STRING, self.domain_hint.encode("utf-16-le")))
        return bytes(_tlv(_SEQUENCE, body))

    @classmethod
    def decode(cls, data: bytes | bytearray, pin: Secret | None = None) -> TsSmartCardCreds:
        """Exactly one TSSmartCardCreds; the PIN stops at its first NUL.

        ``pin``: the PIN already taken out of the encoding (see
        :func:`take_smart_card_pin`), whose bytes in ``data`` are then zeros.
        """
        outer = Reader(data, "TSSmartCardCreds")
        body = _expect(outer, _SEQUENCE, "TSSmartCardCreds", MAX_TOKEN)
        outer.expect_end()
        inner = _expect(body, _CONTEXT | 0, "pin")
        pin_content = _expect(inner, _OCTET_STRING, "pin", MAX_PIN)
        inner.expect_end()
        if pin is None:
            raw = bytearray(pin_content.rest())
            try:
                pin = Secret.take(utf16le_to_utf8(raw, body, "pin"))
            finally:
                raw[:] = bytes(len(raw))
        try:
            if not pin:
                raise body.error("pin", "empty")
            inner = _expect(body, _CONTEXT | 1, "cspData")
            csp = TsCspDataDetail.decode_from(inner)
            inner.expect_end()
            user = _text(body, 2, "userHint") if _tagged(body, 2) else None
            domain = _text(body, 3, "domainHint") if _tagged(body, 3) else None
            body.expect_end()
        except ProtocolError:
            pin.wipe()
            raise
        return cls(pin, csp, user, domain)


def _der_header(data: memoryview, pos: int, tag: int) -> tuple[int, int] | None:
    """(content start, content end) of the element at ``pos`` when it has ``tag``."""
    if pos + 2 > len(data) or data[pos] != tag:
        return None
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    elif 1 <= first & 0x7F <= 3 and start + (first & 0x7F) <= len(data):
        size = first & 0x7F
        length = int.from_bytes(bytes(data[start:start + size]), "big")
        start += size
    else:
        return None
    end = start + length
    return (start, end) if end <= len(data) else None


def _pin_span(data: memoryview) -> tuple[int, int] | None:
    """Where a TSCredentials of credType 2 holds the PIN's octets (a walk by offsets only).

    TSCredentials: SEQUENCE { [0] INTEGER, [1] OCTET STRING (TSSmartCardCreds:
    SEQUENCE { [0] OCTET STRING pin, ... }) } (MS-CSSP 2.2.1.2, 2.2.1.2.2).
    """
    outer = _der_header(data, 0, _SEQUENCE)
    cred_type = _der_header(data, outer[0], _CONTEXT | 0) if outer else None
    integer = _der_header(data, cred_type[0], _INTEGER) if cred_type else None
    if not (cred_type and integer) or bytes(data[integer[0]:integer[1]]) != b"\x02":
        return None
    wrapper = _der_header(data, cred_type[1], _CONTEXT | 1)
    octets = _der_header(data, wrapper[0], _OCTET_STRING) if wrapper else None
    card = _der_header(data, octets[0], _SEQUENCE) if octets else None
    pin_tag = _der_header(data, card[0], _CONTEXT | 0) if card else None
    return _der_header(data, pin_tag[0], _OCTET_STRING) if pin_tag else None


def take_smart_card_pin(plain: bytes | bytearray) -> tuple[Secret | None, bytearray]:
    """Split decrypted TSCredentials into the PIN and a copy of the rest with zeros for it.

    The PIN goes from ``plain`` straight into a :class:`Secret` (UTF-8); the
    copy, decoded as usual with ``TsSmartCardCreds.decode(..., pin=...)``,
    never holds it, so wiping ``plain`` leaves no copy of the PIN in Python
    objects. ``None`` when the encoding is not that of smart card
    credentials (then the copy is ``plain`` as it is, for the decoder to
    say why).
    """
    view = memoryview(plain)
    copy = bytearray(plain)
    span = _pin_span(view)
    if span is None or span[1] - span[0] > MAX_PIN:
        return None, copy
    start, end = span
    secret_part = memoryview(copy)[start:end]
    secret_part[:] = bytes(end - start)
    secret_part.release()
    try:
        return Secret.take(utf16le_to_utf8(view[start:end], Reader(b"", "TSSmartCardCreds"),
                                           "pin")), copy
    except ProtocolError:
        return None, bytearray(plain)


def subject_public_key(spki_der: bytes) -> bytes:
    """The SubjectPublicKey bytes of a DER SubjectPublicKeyInfo (RFC 5280 4.1).

    What MS-CSSP 3.1.5 binds: the BIT STRING's content without its
    unused-bits octet (the RSAPublicKey for RSA, the point for EC keys).
    """
    reader = Reader(spki_der, "SubjectPublicKeyInfo")
    body = _expect(reader, 0x30, "SubjectPublicKeyInfo")
    _expect(body, 0x30, "algorithm")
    bits = _expect(body, 0x03, "subjectPublicKey")
    if bits.u8("unusedBits") != 0:
        raise bits.error("subjectPublicKey", "not whole octets")
    return bits.rest()
