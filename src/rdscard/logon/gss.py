"""The CredSSP security context on MIT Kerberos, through python-gssapi (MS-CSSP 3.1.5).

:class:`KerberosAcceptor` is the :class:`~rdscard.protocol.credssp.GssAcceptor`
of the logon service: it accepts SPNEGO (FreeRDP 3 offers Kerberos
user-to-user first, then Kerberos, then NTLM; MIT picks Kerberos) and bare
Kerberos tokens (rdesktop) with the keys of ``TERMSRV/<host>@REALM`` from a
keytab, never from the process environment.

Sealing follows Windows SSPI, not RFC 4121's default layout: the wrap token
is ``header | rotated trailer (RRC 28: encrypted header copy + checksum) |
confounder + data``, which MIT produces with ``gss_wrap_iov`` given a header
buffer and no trailer buffer ("DCE style"). FreeRDP 3's Kerberos package
(winpr) decrypts only that form; the RFC 4121 form it refuses with
SEC_E_INVALID_TOKEN. MIT's unwrap reads both forms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gssapi
import gssapi.raw as graw
from gssapi.raw import IOV, IOVBufferType

from rdscard.protocol.credssp import GssError

__all__ = ["KerberosAcceptor", "acceptor_credentials"]


def acceptor_credentials(keytab: Path | None, service_principal: str = ""
                         ) -> gssapi.Credentials:
    """Accepting credentials from ``keytab`` (one principal, or any it holds).

    ``keytab`` None: the system's default keytab.
    """
    name = gssapi.Name(service_principal, gssapi.NameType.kerberos_principal) \
        if service_principal else None
    try:
        if keytab is None:
            return gssapi.Credentials(name=name, usage="accept")
        return gssapi.Credentials(name=name, usage="accept",
                                  store={b"keytab": str(keytab).encode()})
    except graw.GSSError as exc:
        raise GssError(f"no key for {service_principal or 'any service'} in "
                       f"{keytab or 'the default keytab'}: "
                       f"{_describe(exc)}") from None


def _describe(exc: graw.GSSError) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


class KerberosAcceptor:
    """One connection's accepting security context (the raw GSS-API calls).

    The raw API, not :class:`gssapi.SecurityContext`: the latter returns a
    failed step's error token as if it were a reply and raises only later.
    """

    def __init__(self, credentials: gssapi.Credentials) -> None:
        self._credentials = credentials
        self._context: graw.SecurityContext | None = None
        self._complete = False
        self._initiator = ""
        self._mech = ""

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def client_principal(self) -> str:
        return self._initiator

    @property
    def mechanism(self) -> str:
        """The negotiated mechanism's OID (dotted), once known."""
        return self._mech

    def step(self, token: bytes) -> bytes | None:
        if self._complete:
            raise GssError("the security context is already established")
        try:
            result = graw.accept_sec_context(token, self._credentials, self._context)
        except graw.GSSError as exc:
            # MIT's acceptor answers a refused AP-REQ with a KRB-ERROR token (the reason,
            # e.g. KRB_AP_ERR_TKT_EXPIRED): it goes back to the client with the errorCode.
            error_token = getattr(exc, "token", None)
            raise GssError(f"Kerberos refused the client's token: {_describe(exc)}",
                           error_token=bytes(error_token) if error_token else b"") from None
        self._context = result.context
        if not result.more_steps:
            self._complete = True
            self._initiator = str(gssapi.Name(result.initiator_name))
            self._mech = result.mech.dotted_form if result.mech is not None else ""
            flags: Any = result.flags
            if graw.RequirementFlag.confidentiality not in flags:
                raise GssError("the client's security context offers no confidentiality")
        return bytes(result.token) if result.token else None

    def _established(self) -> graw.SecurityContext:
        if self._context is None or not self._complete:
            raise GssError("the security context is not established")
        return self._context

    def wrap(self, data: bytes) -> bytes:
        """Seal as Windows SSPI does: header with the rotated trailer, then the data."""
        context = self._established()
        iov = IOV(IOVBufferType.header, data, std_layout=False)
        try:
            graw.wrap_iov(context, iov, confidential=True)
        except graw.GSSError as exc:
            raise GssError(f"cannot seal the reply: {_describe(exc)}") from None
        header, body = iov[0].value, iov[1].value
        assert header is not None and body is not None
        return bytes(header) + bytes(body)

    def unwrap(self, data: bytes) -> bytes:
        try:
            context: Any = self._established()
            result = graw.unwrap(context, data)
        except graw.GSSError as exc:
            raise GssError(f"cannot unseal the client's message: {_describe(exc)}") from None
        if not result.encrypted:
            raise GssError("the client's message is signed but not encrypted")
        return bytes(result.message)
