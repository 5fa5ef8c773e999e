"""Peers for the NLA refusal tests over real sockets.

:class:`CredSspClient` is a client of MS-CSSP with MIT's initiator
(python-gssapi): the X.224 negotiation asking for PROTOCOL_HYBRID, TLS, then
TSRequests, binding pubKeyAuth to the public key of the certificate the TLS
channel actually presented, as a real client does.

:class:`TlsProxy` is a man in the middle: it relays the X.224 negotiation,
then terminates TLS on both sides with a certificate of its own and relays
the plaintext.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import select
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

import gssapi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rdscard.pdu import tpkt
from rdscard.pdu.credssp import TsRequest, subject_public_key, ts_request_length
from rdscard.pdu.x224 import (
    ConnectionConfirm,
    ConnectionRequest,
    NegotiationRequest,
    NegotiationResponse,
    Protocol,
)
from rdscard.protocol.credssp import CLIENT_SERVER_MAGIC, SERVER_CLIENT_MAGIC

NONCE = bytes(range(32))
TIMEOUT = 15.0


def initiator(ccache: Path, target: str = "TERMSRV@localhost") -> gssapi.SecurityContext:
    """MIT's Kerberos initiator for ``target`` with the tickets of ``ccache``."""
    creds = gssapi.Credentials(usage="initiate", store={b"ccache": f"FILE:{ccache}".encode()})
    name = gssapi.Name(target, gssapi.NameType.hostbased_service)
    flags = (gssapi.RequirementFlag.mutual_authentication
             | gssapi.RequirementFlag.confidentiality | gssapi.RequirementFlag.integrity)
    return gssapi.SecurityContext(name=name, creds=creds, usage="initiate",
                                  mech=gssapi.MechType.kerberos, flags=flags)


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def read_tpkt(sock: socket.socket) -> bytes:
    """One whole TPKT packet, header included."""
    head = _exactly(sock, 4)
    return head + _exactly(sock, int.from_bytes(head[2:4], "big") - 4)


def certificate_key(der: bytes) -> bytes:
    """The SubjectPublicKey of a DER certificate (what MS-CSSP binds)."""
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return subject_public_key(spki)


class CredSspClient:
    """One connection to an RDP server, negotiated up to CredSSP over TLS."""

    def __init__(self, port: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        request = ConnectionRequest(
            negotiation=NegotiationRequest(Protocol.SSL | Protocol.HYBRID))
        sock.sendall(tpkt.wrap(request.encode()))
        confirm = ConnectionConfirm.decode(read_tpkt(sock)[4:])
        assert isinstance(confirm.negotiation, NegotiationResponse), confirm
        assert confirm.negotiation.selected_protocol == Protocol.HYBRID, confirm
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # as xfreerdp /cert:ignore: trust what comes
        self.tls = context.wrap_socket(sock)
        der = self.tls.getpeercert(binary_form=True)
        assert der is not None
        #: The key of the certificate this TLS channel presented.
        self.peer_key = certificate_key(der)

    def send(self, request: TsRequest) -> None:
        self.tls.sendall(request.encode())

    def receive(self) -> TsRequest | None:
        """The server's next TSRequest; None if it closed the connection instead."""
        data = bytearray()
        while (total := ts_request_length(data)) is None or len(data) < total:
            chunk = self.tls.recv(65536)
            if not chunk:
                return None
            data += chunk
        return TsRequest.decode(bytes(data))

    def authenticate(self, context: gssapi.SecurityContext) -> TsRequest | None:
        """MS-CSSP 3.1.5 steps 1-3: the tokens, then pubKeyAuth over :attr:`peer_key`.

        The server's last answer: its pubKeyAuth (checked against the peer key)
        or its refusal (errorCode); None if it closed the connection.
        """
        token: bytes | None = context.step()
        while True:
            assert token is not None
            self.send(TsRequest(6, (token,), client_nonce=NONCE))
            reply = self.receive()
            if reply is None or reply.error_code:
                return reply
            token = context.step(reply.nego_tokens[0]) if reply.nego_tokens else None
            if context.complete:
                break
        proof = hashlib.sha256(CLIENT_SERVER_MAGIC + NONCE + self.peer_key).digest()
        self.send(TsRequest(6, (token,) if token else (),
                            pub_key_auth=context.wrap(proof, True).message, client_nonce=NONCE))
        reply = self.receive()
        if reply is not None and reply.pub_key_auth is not None:
            answer = context.unwrap(reply.pub_key_auth).message
            assert answer == hashlib.sha256(SERVER_CLIENT_MAGIC + NONCE + self.peer_key).digest()
        return reply

    def close(self) -> None:
        self.tls.close()


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A fresh P-256 key and a self-signed certificate for ``name`` (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsProxy:
    """A TLS-terminating man in the middle in front of ``127.0.0.1:upstream``."""

    def __init__(self, upstream: int, directory: Path) -> None:
        self.upstream = upstream
        cert, key = self_signed(directory, "mitm")
        self.certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        self._server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_side.load_cert_chain(cert, key)
        self._client_side = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._client_side.check_hostname = False
        self._client_side.verify_mode = ssl.CERT_NONE
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        #: Connections relayed through both TLS channels.
        self.relayed = 0
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.upstream), timeout=TIMEOUT)
        self._sockets += [client, server]
        try:
            server.sendall(read_tpkt(client))  # the Connection Request, as it is
            client.sendall(read_tpkt(server))  # the Connection Confirm
            inner_server = self._client_side.wrap_socket(server)
            inner_client = self._server_side.wrap_socket(client, server_side=True)
        except (OSError, ConnectionError):
            client.close()
            server.close()
            return
        self._sockets += [inner_client, inner_server]
        self.relayed += 1
        self._pump(inner_client, inner_server)

    @staticmethod
    def _pump(client: ssl.SSLSocket, server: ssl.SSLSocket) -> None:
        """Relay both ways in this one thread: an SSL object must not be read in one thread
        while another writes to it (OpenSSL's rule; two pump threads once stalled a relay)."""
        peer = {client: server, server: client}
        for sock in peer:
            sock.setblocking(False)  # raw bytes may be a TLS 1.3 ticket and no data yet
        try:
            while True:
                ready = [sock for sock in peer if sock.pending()]
                if not ready:
                    ready, _, _ = select.select(list(peer), [], [], TIMEOUT)
                    if not ready:
                        break
                for source in ready:
                    try:
                        data = source.recv(65536)
                    except ssl.SSLWantReadError:
                        continue
                    if not data:
                        raise ConnectionError("closed")
                    sink = peer[source]
                    sink.setblocking(True)
                    sink.sendall(data)
                    sink.setblocking(False)
        except (OSError, ConnectionError):
            pass
        for sock in peer:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
