"""The server side of CredSSP (MS-CSSP 3.1.5) as a sans-IO state machine.

Network Level Authentication (MS-RDPBCGR 5.4.5.2) runs CredSSP inside the
TLS channel before the RDP connection sequence: the client authenticates
with SPNEGO or Kerberos (the negoTokens, handed to a :class:`GssAcceptor`),
both sides bind the authentication to the server's TLS public key
(pubKeyAuth), and the client then delegates its credentials (authInfo,
encrypted with the security context). This server accepts only smart card
credentials (TSSmartCardCreds, credType 2): the PIN, which the logon service
later verifies on the card.

:meth:`CredSspServer.receive` takes one whole TSRequest and returns a
:class:`CredSspStep`: the bytes to send back and, at the end, the delegated
credentials or the reason of a refusal (with the NTSTATUS sent in errorCode
to clients of version 3 and later, MS-CSSP 2.2.1, and the mechanism's error
token, a KRB-ERROR, in negoTokens beside it when the acceptor made one).

Steps (MS-CSSP 3.1.5):

1. negoTokens until the acceptor completes; the version the server answers
   with is ``min(client, 6)`` and stays the same in every reply;
2. the client's pubKeyAuth: version 5 and later, the SHA-256 of the
   client-to-server binding-hash magic, the client's 32-byte nonce and the
   server's SubjectPublicKey; versions 2-4, the SubjectPublicKey itself.
   The server answers with the server-to-client hash (or the key with its
   first byte plus one). A mismatch means the TLS channel is not the one
   the client authenticated: a man in the middle;
3. authInfo: TSCredentials, credType 2 only.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Protocol

from rdscard.errors import ProtocolError
from rdscard.pdu.credssp import (
    NONCE_SIZE,
    SERVER_VERSION,
    CredType,
    NtStatus,
    TsCredentials,
    TsRequest,
    TsSmartCardCreds,
    take_smart_card_pin,
)
from rdscard.secret import scrub_bytes

#: MS-CSSP 3.1.5: "CredSSP Client-To-Server Binding Hash\0".
CLIENT_SERVER_MAGIC: Final = b"CredSSP Client-To-Server Binding Hash\x00"
#: MS-CSSP 3.1.5: "CredSSP Server-To-Client Binding Hash\0".
SERVER_CLIENT_MAGIC: Final = b"CredSSP Server-To-Client Binding Hash\x00"
#: The oldest version accepted (MS-CSSP 2.2.1: versions 2 to 6 exist).
MIN_VERSION: Final = 2


class GssError(Exception):
    """The acceptor refused a token or a sealed message; ``status`` goes to the client.

    ``error_token``: what the mechanism answered the refused token with (a
    Kerberos KRB-ERROR saying why, e.g. an expired ticket), for the client.
    """

    def __init__(self, message: str, status: NtStatus = NtStatus.STATUS_LOGON_FAILURE,
                 error_token: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.error_token = error_token


class GssAcceptor(Protocol):
    """The server's security context (SPNEGO or Kerberos; MS-CSSP 3.1.5 step 1)."""

    @property
    def complete(self) -> bool:
        """The context is established."""
        ...

    @property
    def client_principal(self) -> str:
        """The authenticated client's name (``alice@REALM``), once complete."""
        ...

    def step(self, token: bytes) -> bytes | None:
        """Accept one token; the token to send back, if any. Raises GssError."""
        ...

    def wrap(self, data: bytes) -> bytes:
        """Seal ``data`` in the form the clients expect (Windows SSPI's). Raises GssError."""
        ...

    def unwrap(self, data: bytes) -> bytes:
        """Unseal a client message. Raises GssError."""
        ...


class CredSspState(Enum):
    """Where the exchange stands."""

    NEGOTIATING = "negotiating"
    PUB_KEY_AUTH = "public key authentication"
    CREDENTIALS = "waiting for credentials"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class CredSspStep:
    """What one TSRequest led to.

    ``reply``: bytes to send (may be empty). ``credentials``: the delegated
    smart card credentials, once (the caller owns and wipes the PIN).
    ``failure``: why the exchange was refused (the connection ends).
    """

    reply: bytes = b""
    credentials: TsSmartCardCreds | None = field(default=None, repr=False)
    failure: str = ""
    error_code: int = 0


class CredSspServer:
    """One connection's CredSSP exchange, server side (MS-CSSP 3.1.5)."""

    def __init__(self, acceptor: GssAcceptor, public_key: bytes) -> None:
        self.acceptor = acceptor
        #: The server certificate's SubjectPublicKey (see :func:`subject_public_key`).
        self.public_key = public_key
        self.state = CredSspState.NEGOTIATING
        #: The version both sides use: min(client's, 6); 0 before the first message.
        self.version = 0
        self._nonce: bytes | None = None
        self.rounds = 0

    @property
    def client_principal(self) -> str:
        """The authenticated principal (empty before the context completes)."""
        return self.acceptor.client_principal if self.acceptor.complete else ""

    def receive(self, data: bytes) -> CredSspStep:
        """Handle one whole TSRequest from the client."""
        if self.state in (CredSspState.DONE, CredSspState.FAILED):
            return self._fail(f"a TSRequest after the exchange was {self.state.value}",
                              NtStatus.STATUS_INVALID_PARAMETER)
        self.rounds += 1
        try:
            request = TsRequest.decode(data)
        except ProtocolError as exc:
            return self._fail(f"malformed TSRequest: {exc}", NtStatus.STATUS_INVALID_PARAMETER)
        if self.version == 0:
            if request.version < MIN_VERSION:
                return self._fail(f"CredSSP version {request.version} is not supported",
                                  NtStatus.STATUS_NOT_SUPPORTED)
            self.version = min(request.version, SERVER_VERSION)
        if request.error_code:
            return self._fail(f"the client gave up with error 0x{request.error_code:08X}",
                              request.error_code)
        if request.client_nonce is not None:
            self._nonce = request.client_nonce
        try:
            if self.state is CredSspState.CREDENTIALS:
                return self._on_credentials(request)
            return self._on_negotiation(request)
        except GssError as exc:
            return self._fail(str(exc), exc.status, exc.error_token)

    # -- steps ---------------------------------------------------------------------------
    def _on_negotiation(self, request: TsRequest) -> CredSspStep:
        out: bytes | None = None
        if self.state is CredSspState.NEGOTIATING:
            if not request.nego_tokens:
                return self._fail("no negoToken before the security context is established",
                                  NtStatus.STATUS_INVALID_PARAMETER)
            for token in request.nego_tokens:
                if self.acceptor.complete:
                    break  # a final SPNEGO mechListMIC the acceptor already has no use for
                out = self.acceptor.step(token)
            if not self.acceptor.complete:
                if not out:
                    return self._fail("the security context needs a token the client did "
                                      "not send", NtStatus.STATUS_LOGON_FAILURE)
                return self._reply(TsRequest(self.version, (out,)))
            self.state = CredSspState.PUB_KEY_AUTH
        if request.pub_key_auth is None:
            if out is None:
                return self._fail("no pubKeyAuth after the security context completed",
                                  NtStatus.STATUS_INVALID_PARAMETER)
            return self._reply(TsRequest(self.version, (out,)))
        proof = self._verify_public_key(request.pub_key_auth)
        self.state = CredSspState.CREDENTIALS
        return self._reply(TsRequest(self.version, (out,) if out else (), pub_key_auth=proof))

    def _verify_public_key(self, sealed: bytes) -> bytes:
        """Check the client's pubKeyAuth; the server's answer (MS-CSSP 3.1.5 steps 3-4)."""
        got = self.acceptor.unwrap(sealed)
        if self.version >= 5:
            if self._nonce is None or len(self._nonce) != NONCE_SIZE:
                raise GssError("pubKeyAuth of version 5 or later without a clientNonce",
                                 NtStatus.STATUS_INVALID_PARAMETER)
            expected = hashlib.sha256(
                CLIENT_SERVER_MAGIC + self._nonce + self.public_key).digest()
            answer = hashlib.sha256(SERVER_CLIENT_MAGIC + self._nonce + self.public_key).digest()
        else:
            expected = self.public_key
            answer = bytes(((self.public_key[0] + 1) & 0xFF,)) + self.public_key[1:]
        if not hmac.compare_digest(got, expected):
            raise GssError("the client's pubKeyAuth does not match the server's TLS public "
                             "key: the TLS channel is not the one the client authenticated "
                             "(a man in the middle?)", NtStatus.STATUS_LOGON_FAILURE)
        return self.acceptor.wrap(answer)

    def _on_credentials(self, request: TsRequest) -> CredSspStep:
        if request.auth_info is None:
            return self._fail("no authInfo after the public key authentication",
                              NtStatus.STATUS_INVALID_PARAMETER)
        plain = self.acceptor.unwrap(request.auth_info)
        # The PIN goes from GSS's output into a Secret; the rest is decoded from a copy
        # holding zeros in its place; the GSS output itself is then zeroed in place.
        pin, rest = take_smart_card_pin(plain)
        scrub_bytes(plain)
        try:
            credentials = TsCredentials.decode(bytes(rest))
            if credentials.cred_type != CredType.SMART_CARD:
                kind = "password" if credentials.cred_type == CredType.PASSWORD else \
                    f"type {credentials.cred_type}"
                return self._fail(f"the client delegated {kind} credentials; this server "
                                  "takes only smart card credentials (credType 2)",
                                  NtStatus.STATUS_NOT_SUPPORTED)
            card = TsSmartCardCreds.decode(credentials.credentials, pin=pin)
        except ProtocolError as exc:
            if pin is not None:
                pin.wipe()
            return self._fail(f"malformed credentials: {exc}", NtStatus.STATUS_INVALID_PARAMETER)
        finally:
            rest[:] = bytes(len(rest))
        self.state = CredSspState.DONE
        return CredSspStep(credentials=card)

    # -- output --------------------------------------------------------------------------
    def _reply(self, request: TsRequest) -> CredSspStep:
        return CredSspStep(reply=request.encode())

    def _fail(self, reason: str, status: int, error_token: bytes = b"") -> CredSspStep:
        """The refusal: errorCode (version 3 and later, MS-CSSP 2.2.1), with the mechanism's
        error token in negoTokens when it made one, as Windows sends a KRB-ERROR: the
        client's Kerberos then knows why (MS-CSSP 3.1.5)."""
        self.state = CredSspState.FAILED
        status &= 0xFFFFFFFF
        tokens = (error_token,) if error_token else ()
        reply = TsRequest(self.version, tokens, error_code=status).encode() \
            if self.version >= 3 else b""
        return CredSspStep(reply=reply, failure=reason, error_code=status)
