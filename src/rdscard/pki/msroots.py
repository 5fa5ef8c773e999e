"""Root CA certificates on a PIV card: the ``msroots`` file as Yubico's minidriver stores it.

Windows' ``certutil -scroots`` keeps a smart card's root certificates in the
minidriver file ``mscp/msroots`` (Smart Card Minidriver Specification,
"Interoperability with msroots"): a PKCS #7 SignedData with no content and no
signers, only the certificates (RFC 5652 5.1, the "certs-only" degenerate
form). A PIV card has no file system; Yubico's minidriver and libykpiv
(``ykpiv_util_read_msroots`` / ``ykpiv_util_write_msroots`` in yubico-piv-tool's
``lib/util.c``) spread that file over the vendor data objects 0x5FFF11 to
0x5FFF15, and this module follows them byte for byte:

* each object's content (inside the PIV container 53) is one tag, 0x83 for a
  middle part and 0x82 for the last, a length (``_ykpiv_set_length``: one
  byte below 0x80, ``81 xx`` below 0x100, else ``82 xx xx``) and the part;
* parts are at most 3059 bytes (the YubiKey 4/5 object limit of 3063 bytes less
  the 4-byte tag and length), there are ``len // 3059 + 1`` of them, at most 5;
* a reader concatenates the parts from 0x5FFF11 up to the first 0x82 part;
  an object too short for a tag, another tag, or a middle part in 0x5FFF15
  mean "no msroots on the card";
* deleting writes an empty 0x5FFF11 (libykpiv stops there; this module also
  empties the others, so that no stale part stays on the card).

Writing needs the card management key (SP 800-73-4 Part 2 3.3.2, PUT DATA);
reading needs nothing: GET DATA of these objects is free on a YubiKey.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from rdscard.errors import ProtocolError
from rdscard.pki.piv_client import PivClient

MSROOTS_OBJECTS: Final = (0x5FFF11, 0x5FFF12, 0x5FFF13, 0x5FFF14, 0x5FFF15)
TAG_MID: Final = 0x83
TAG_END: Final = 0x82
OBJECT_MAX: Final = 3072 - 9  # libykpiv CB_OBJ_MAX (YubiKey 4 and later)
PART_MAX: Final = OBJECT_MAX - 4  # less CB_OBJ_TAG_MAX: one tag byte, three length bytes
FILE_MAX: Final = PART_MAX * len(MSROOTS_OBJECTS) - 1  # n = len // PART_MAX + 1 <= 5
MAX_ROOTS: Final = 64
PDU: Final = "msroots"


def _length(n: int) -> bytes:
    """``_ykpiv_set_length``: the length field libykpiv writes (n < 65536)."""
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82]) + n.to_bytes(2, "big")


def _part(content: bytes) -> tuple[int, bytes] | None:
    """(tag, part) of one object's content, None where libykpiv sees no msroots."""
    if len(content) < 2:
        return None
    tag, rest = content[0], content[1:]
    first = rest[0]
    if first < 0x80:
        size, skip = first, 1
    elif first == 0x81 and len(rest) >= 2:
        size, skip = rest[1], 2
    elif first == 0x82 and len(rest) >= 3:
        size, skip = int.from_bytes(rest[1:3], "big"), 3
    else:
        return None
    if skip + size > len(rest):
        return None
    return tag, rest[skip:skip + size]


def split_file(data: bytes) -> list[bytes]:
    """The objects' contents for the msroots file ``data``, 0x5FFF11 first."""
    if not data:
        raise ValueError("an empty msroots file: delete the objects instead")
    count = len(data) // PART_MAX + 1
    if count > len(MSROOTS_OBJECTS):
        raise ValueError(f"the roots take {len(data)} bytes; a card holds at most {FILE_MAX}")
    contents = []
    for index in range(count):
        part = data[index * PART_MAX:(index + 1) * PART_MAX]
        tag = TAG_END if index == count - 1 else TAG_MID
        contents.append(bytes([tag]) + _length(len(part)) + part)
    return contents


def join_file(contents: Sequence[bytes | None]) -> bytes | None:
    """The msroots file from the objects' contents (None: object absent), as libykpiv reads it.

    None when the card holds no msroots file. An absent object before the
    last part is a :class:`ProtocolError` (libykpiv fails there too).
    """
    out = bytearray()
    for index, content in enumerate(contents[:len(MSROOTS_OBJECTS)]):
        if content is None:
            if index == 0:
                return None
            raise ProtocolError(PDU, f"object {MSROOTS_OBJECTS[index]:X}",
                                "missing: the roots on the card are incomplete")
        found = _part(content)
        if found is None:
            return None
        tag, part = found
        last = index == len(MSROOTS_OBJECTS) - 1
        if tag not in (TAG_MID, TAG_END) or (last and tag != TAG_END):
            return None
        out += part
        if tag == TAG_END:
            return bytes(out)
    raise ProtocolError(PDU, "objects", "no last part (tag 82): the roots are incomplete")


def encode_roots(roots: Sequence[x509.Certificate]) -> bytes:
    """The msroots file: a certs-only PKCS #7 SignedData (DER) of ``roots``."""
    if not roots:
        raise ValueError("no root certificates")
    return pkcs7.serialize_certificates(list(roots), Encoding.DER)


def decode_roots(data: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of an msroots file; :class:`ProtocolError` when it is not PKCS #7."""
    try:
        certs = pkcs7.load_der_pkcs7_certificates(data)
    except ValueError as exc:
        raise ProtocolError(PDU, "PKCS #7", f"not a certs-only SignedData ({exc})") from None
    if len(certs) > MAX_ROOTS:
        raise ProtocolError(PDU, "certificates", f"{len(certs)} certificates, more than "
                                                  f"{MAX_ROOTS}")
    return tuple(certs)


def read_roots(client: PivClient) -> tuple[x509.Certificate, ...]:
    """The root certificates on the card (empty when it carries none); no PIN needed.

    The PIV application must be selected.
    """
    contents: list[bytes | None] = []
    for tag in MSROOTS_OBJECTS:
        content = client.get_data(tag)
        contents.append(content)
        if not content or content[0] != TAG_MID:
            break
    data = join_file(contents)
    return decode_roots(data) if data else ()


def write_roots(client: PivClient, roots: Sequence[x509.Certificate]) -> int:
    """Write ``roots`` as the card's msroots; returns the file's size in bytes.

    The card management key must be authenticated
    (:meth:`PivClient.authenticate_admin`). Objects past the last part are
    emptied.
    """
    data = encode_roots(roots)
    contents = split_file(data)
    for tag, content in zip(MSROOTS_OBJECTS, contents, strict=False):
        client.put_data(tag, content)
    for tag in MSROOTS_OBJECTS[len(contents):]:
        client.put_data(tag, b"")
    return len(data)


def delete_roots(client: PivClient) -> None:
    """Remove the msroots file: every object emptied, 0x5FFF11 first (management key needed)."""
    for tag in MSROOTS_OBJECTS:
        client.put_data(tag, b"")


def sha1(cert: x509.Certificate) -> str:
    """The certificate's SHA-1 thumbprint, as certutil's "Cert Hash(sha1)" (a name, not a check)."""
    return cert.fingerprint(hashes.SHA1()).hex()
