"""The directory bind with the host's keytab: SASL GSSAPI (RFC 4752) inside TLS.

``[directory] bind_method = "kerberos"`` binds as ``bind_principal`` (the
host's machine account ``RDSH$@REALM``, or a service account) with its key
from ``keytab``, as a domain member's services do, instead of a password in
a file. The keytab reaches MIT's GSS-API through the credential store
(``gss_acquire_cred_from`` with ``client_keytab``; python-gssapi's
``store``), and the TGT stays in a memory credential cache of this process:
no ``KRB5_KTNAME`` or ``KRB5CCNAME`` in any environment, nothing written to
disk. The KDC is found through the process's krb5.conf.

The service ticket is for ``ldap/<host of the URI>`` (the DC's SPN; name
each DC as its certificate and SPN do). ldap3 offers no SASL security
layer, so the bind runs inside TLS (LDAPS or StartTLS) and asks for none
(RFC 4752 3.3), as Windows DCs want over TLS, where they refuse SASL
signing and sealing. Samba's default ``ldap server require strong auth
= yes`` refuses such a bind ("Sign or Seal are required"); such a DC needs
``allow_sasl_over_tls``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import TYPE_CHECKING

from rdscard.directory.ntauth import DirectoryError
from rdscard.directory.settings import DirectoryConfig
from rdscard.errors import ConfigError

if TYPE_CHECKING:
    import gssapi
    import ldap3

STRONG_AUTH_REQUIRED = 8  # RFC 4511 4.1.9 strongerAuthRequired


def ccache_name(config: DirectoryConfig) -> str:
    """The memory credential cache of one keytab and principal (shared by every bind)."""
    digest = hashlib.sha256(f"{config.keytab}\0{config.bind_principal}".encode()).hexdigest()
    return f"MEMORY:rdscard-directory-{digest[:16]}"


def check_keytab(config: DirectoryConfig) -> None:
    """The keytab exists and only its owner may read it."""
    path = config.keytab
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"[directory] keytab {path}: cannot read it ({exc.strerror}): export "
                          f"{config.bind_principal or 'the account'}'s keys to it (ktpass, "
                          "`samba-tool domain exportkeytab`)") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"[directory] keytab {path} may be read by others: chmod 600 {path}")


def keytab_credentials(config: DirectoryConfig) -> gssapi.Credentials:
    """Initiator credentials of ``bind_principal`` from ``keytab`` (MIT gets the TGT now)."""
    import gssapi
    import gssapi.raw as graw

    check_keytab(config)
    name = gssapi.Name(config.bind_principal, gssapi.NameType.kerberos_principal)
    store: dict[bytes | str, bytes | str] = {
        b"client_keytab": f"FILE:{config.keytab}".encode(),
        b"ccache": ccache_name(config).encode()}
    try:
        return gssapi.Credentials(name=name, usage="initiate", store=store)
    except graw.GSSError as exc:
        # MIT asks the KDC for the TGT here already: a stale key fails now
        raise DirectoryError(f"no credentials for {config.bind_principal} from the keytab "
                             f"{config.keytab} ({_describe(exc)}): the keytab must hold the "
                             "account's current key, and krb5.conf must name a KDC of its "
                             "realm") from None


def kerberos_bind(conn: ldap3.Connection, uri: str, config: DirectoryConfig) -> None:
    """Bind ``conn`` (opened, inside TLS) with SASL GSSAPI; :class:`DirectoryError` says why not."""
    import gssapi.raw as graw
    from ldap3.core import exceptions as ldap_errors

    try:
        conn.bind()
    except graw.GSSError as exc:
        raise DirectoryError(
            f"the Kerberos bind to {uri} as {config.bind_principal} failed: {_describe(exc)}: "
            "check that the KDC answers (krb5.conf), that the keytab holds the account's "
            "current key and that the DC has the SPN ldap/<host of the URI>") from None
    except ldap_errors.LDAPOperationResult as exc:
        if exc.result == STRONG_AUTH_REQUIRED:
            raise DirectoryError(
                f"{uri} refused a Kerberos bind inside TLS without signing ({exc.message}): "
                "a Samba DC needs `ldap server require strong auth = allow_sasl_over_tls`"
            ) from None
        raise


def _describe(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
