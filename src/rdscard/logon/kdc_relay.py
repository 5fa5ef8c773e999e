"""The KDC's certificate as kinit received it, for the NTAuth check of the issuing CA.

MIT's kinit verifies the KDC's PKINIT signature against its anchors but
cannot be told that the KDC certificate's *issuing CA* must be in NTAuth
(:mod:`rdscard.logon.kdc_trust`). So kinit talks to the user's realm through
a relay of the logon service on loopback, which passes each request to the
realm's KDCs (as listed in krb5.conf ``[realms]``) and keeps the replies.
The AS-REP's PA-PK-AS-REP (RFC 4556 3.2.3) carries the KDC's signed data
(``dhSignedData``, a CMS SignedData, RFC 5652 5) with its certificates;
:func:`kdc_certificates` takes them out. The relay speaks Kerberos over TCP
only (RFC 4120 7.2.2: a four-byte length, then the message); the overlay
profile sets ``udp_preference_limit = 1`` so that kinit uses TCP.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from cryptography import x509

from rdscard.efs.asn1 import Element, parse
from rdscard.errors import ProtocolError

MAX_MESSAGE: Final = 1 << 20
MAX_REPLIES: Final = 64
MAX_CONNECTIONS: Final = 16
KDC_PORT: Final = 88
AS_REP: Final = 0x6B  # [APPLICATION 11]
PA_PK_AS_REP: Final = 17
OID_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
_REALM_BLOCK: Final = re.compile(r"^\s*([^\s=]+)\s*=\s*\{\s*$")
_KDC_LINE: Final = re.compile(r"^\s*kdc\s*=\s*(\S+)\s*$")
#: includedir reads files named only with letters, digits, dashes or underscores, or *.conf
_INCLUDED_NAME: Final = re.compile(r"^([A-Za-z0-9_-]+|[^.].*\.conf)$")
MAX_CONFIG_FILES: Final = 64


def realm_kdcs(configs: Sequence[Path], realm: str) -> list[tuple[str, int]]:
    """``kdc`` entries of ``[realms] REALM`` in the krb5.conf files, in order.

    ``host``, ``host:port``, ``[v6]`` and ``[v6]:port``; ``tcp/`` prefixes
    are accepted, ``udp/`` and MS-KKDCP (``https://``) entries are left out.
    """
    found: list[tuple[str, int]] = []
    queue, seen = list(configs), set[Path]()
    while queue and len(seen) < MAX_CONFIG_FILES:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        section, depth, inside = "", 0, False
        included: list[Path] = []
        for line in lines:
            text = line.strip()
            if not text or text.startswith(("#", ";")):
                continue
            if depth == 0 and text.startswith(("include ", "includedir ")):
                included += _included(text)
                continue
            if depth == 0 and text.startswith("[") and text.endswith("]"):
                section = text[1:-1].strip()
                continue
            if section != "realms":
                continue
            block = _REALM_BLOCK.match(text)
            if block:
                if depth == 0:
                    inside = block.group(1) == realm
                depth += 1
                continue
            if text.startswith("}"):
                depth = max(depth - 1, 0)
                continue
            kdc = _KDC_LINE.match(text) if inside and depth == 1 else None
            if kdc:
                address = _address(kdc.group(1))
                if address is not None and address not in found:
                    found.append(address)
        queue[:0] = included  # next, before the files named after this one
    return found


def _included(directive: str) -> list[Path]:
    """The files an ``include FILE`` or ``includedir DIR`` directive names (krb5.conf(5))."""
    keyword, _, target = directive.partition(" ")
    path = Path(target.strip())
    if keyword == "include":
        return [path]
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError:
        return []
    return [path / name for name in names if _INCLUDED_NAME.match(name)]


def _address(value: str) -> tuple[str, int] | None:
    if value.startswith(("udp/", "http://", "https://")):
        return None
    value = value.removeprefix("tcp/")
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.partition(":")
    try:
        number = int(port) if port else KDC_PORT
    except ValueError:
        return None
    return (host, number) if host and 0 < number < 65536 else None


def overlay(realm: str, port: int) -> str:
    """A krb5.conf placed first in ``KRB5_CONFIG``: the relay is the realm's first KDC."""
    return (f"[libdefaults]\n    udp_preference_limit = 1\n"
            f"[realms]\n    {realm} = {{\n        kdc = 127.0.0.1:{port}\n    }}\n")


def _read_exact(sock: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_message(sock: socket.socket) -> bytes | None:
    head = _read_exact(sock, 4)
    if head is None:
        return None
    length = int.from_bytes(head, "big")
    if length > MAX_MESSAGE:
        return None
    body = _read_exact(sock, length)
    return None if body is None else head + body


class KdcRelay:
    """A loopback TCP relay to ``kdcs``; :attr:`replies` keeps what the KDCs answered."""

    def __init__(self, kdcs: Sequence[tuple[str, int]], *, timeout: float = 30.0) -> None:
        if not kdcs:
            raise ValueError("a relay needs at least one KDC")
        self.kdcs = list(kdcs)
        self.timeout = timeout
        self.replies: list[bytes] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(1.0)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, name="kdc-relay", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); :attr:`replies` is complete afterwards."""
        self._stop.set()
        if self._thread.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                pass  # wakes the accept at once
            self._thread.join(timeout=self.timeout + 5)
        self._listener.close()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:  # kinit has its replies: a stray connection is not waited for
            worker.join(timeout=0.5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stop.is_set():
                client.close()
                return
            # one thread per connection: another local program holding a connection open
            # must not keep kinit's from being served
            with self._lock:
                self._workers = [w for w in self._workers if w.is_alive()]
                busy = len(self._workers) >= MAX_CONNECTIONS
            if busy:
                client.close()
                continue
            worker = threading.Thread(target=self._serve_one, args=(client,), daemon=True)
            with self._lock:
                self._workers.append(worker)
            worker.start()

    def _serve_one(self, client: socket.socket) -> None:
        with client:
            client.settimeout(self.timeout)
            with contextlib.suppress(OSError):
                self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        while (request := _read_message(client)) is not None:
            reply = self._ask(request)
            if reply is None:
                return  # kinit then tries the realm's next KDC itself
            with self._lock:
                if len(self.replies) < MAX_REPLIES:
                    self.replies.append(reply[4:])
            client.sendall(reply)

    def _ask(self, request: bytes) -> bytes | None:
        for host, port in self.kdcs:
            try:
                with socket.create_connection((host, port), timeout=self.timeout) as kdc:
                    kdc.sendall(request)
                    reply = _read_message(kdc)
            except OSError:
                continue
            if reply is not None:
                return reply
        return None


def _context(element: Element, number: int, field: str) -> Element | None:
    for child in element.children(field):
        if child.tag == 0xA0 | number:
            return parse(child.content, field)
    return None


def kdc_certificates(reply: bytes) -> list[x509.Certificate] | None:
    """The certificates of an AS-REP's PA-PK-AS-REP signed data; None for another message.

    Raises :class:`ProtocolError` for a malformed reply or one whose key
    comes by RSA key transport (its signed data is encrypted to the card).
    """
    if not reply or reply[0] != AS_REP:
        return None
    rep = parse(reply, "AS-REP").first("KDC-REP")
    padata = _context(rep, 2, "KDC-REP padata")
    if padata is None:
        return None
    for item in padata.children("padata"):
        kind = _context(item, 1, "padata-type")
        value = _context(item, 2, "padata-value")
        if kind is None or value is None or kind.integer("padata-type") != PA_PK_AS_REP:
            continue
        choice = parse(value.octets("padata-value"), "PA-PK-AS-REP")
        if choice.tag != 0xA0:
            raise ProtocolError("PA-PK-AS-REP", "encKeyPack",
                                "RSA key transport: the KDC's signed data cannot be read")
        # EXPLICIT TAGS (RFC 4556 Appendix A): [0] around the DHRepInfo SEQUENCE
        info = choice.first("dhInfo").expect(0x30, "DHRepInfo")
        signed = next((c for c in info.children("DHRepInfo") if c.tag == 0x80), None)
        if signed is None:
            raise ProtocolError("PA-PK-AS-REP", "dhSignedData", "missing")
        return signed_data_certificates(signed.content)
    return None


def signed_data_certificates(content_info: bytes) -> list[x509.Certificate]:
    """The ``certificates`` of a CMS SignedData in its ContentInfo (RFC 5652 3 and 5.1).

    Read field by field rather than with OpenSSL's PKCS #7 parser, which
    knows signers by issuer and serial number only: Heimdal's KDC (Samba 4.17)
    names its signer by subjectKeyIdentifier (``[0]``, with SignerInfo version 1
    where RFC 5652 5.3 says 3), and OpenSSL's ``d2i_PKCS7`` refuses the whole
    structure ("Unable to parse PKCS7 data"). MIT 1.20's KDC sends its
    certificates' SET unsorted, which is BER, not DER; that is accepted.
    Only the certificates are read; the signature is MIT kinit's to check.
    """
    field = "dhSignedData"
    info = parse(content_info, field).expect(0x30, "ContentInfo")
    parts = info.elements(field, 2)
    if parts[0].oid("contentType") != OID_SIGNED_DATA or parts[1].tag != 0xA0:
        raise ProtocolError("PA-PK-AS-REP", field, "not a CMS SignedData")
    signed = parts[1].first("SignedData").expect(0x30, "SignedData")
    body = signed.elements("SignedData", 4)  # version, digests, content, ..., signerInfos
    certificates = next((e for e in body[3:] if e.tag == 0xA0), None)
    if certificates is None:
        return []
    out: list[x509.Certificate] = []
    for choice in certificates.children("certificates"):
        if choice.tag != 0x30:
            continue  # an attribute certificate or another format (RFC 5652 10.2.2)
        try:
            out.append(x509.load_der_x509_certificate(choice.encoded))
        except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
            raise ProtocolError("PA-PK-AS-REP", field, f"a certificate: {exc}") from None
    return out
