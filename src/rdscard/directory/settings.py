"""The ``[directory]`` configuration section: the Active Directory the host follows.

Off by default. When enabled, the root monitor copies the forest's NTAuth
CAs (``CN=NTAuthCertificates,CN=Public Key Services,CN=Services,
CN=Configuration,<forest root DN>``, attribute ``cACertificate``) into the
host's enterprise NTAuth store every ``refresh_interval`` seconds, as a
Windows member's autoenrollment does into
``HKLM\\SOFTWARE\\Microsoft\\EnterpriseCertificates\\NTAuth``::

    [directory]
    enabled = false
    uris = ["ldaps://dc1.example.test"]   # ldaps://, or ldap:// with StartTLS; tried in order
    base_dn = ""                  # the forest root domain (DC=example,DC=test); empty = RootDSE
    bind_dn = ""                  # "administrator@example.test" or a DN; simple bind inside TLS
    bind_password_file = ""       # root-only file holding the password (first line)
    bind_method = "simple"        # "simple", or "kerberos": SASL GSSAPI with a keytab's key
    keytab = ""                   # kerberos: the host's keytab (default /etc/krb5.keytab)
    bind_principal = ""           # kerberos: its principal to bind as (RDSH$@EXAMPLE.TEST)
    ca_file = ""                  # CA of the DCs' LDAPS certificates; empty = the system's
    refresh_interval = 28800.0    # seconds between refreshes (Windows: 8 hours)
    timeout = 10.0                # seconds for one connection and one operation
    accounts = false              # the directory is the source of accounts (see below)
    account_cache_lifetime = 300.0  # seconds a looked-up account may serve when no DC answers
    strong_mapping = "off"        # KB5014754: "off", "compatibility" or "full"
    certificate_backdating_compensation = 600.0  # KB5014754: seconds (see below)

With ``accounts = true`` the logon service looks the certificate's UPN up
in the directory (``userPrincipalName``, or the implicit UPN
``sAMAccountName@<DNS domain>`` AD also accepts, [MS-ADTS] 5.1.1.1.1) and
the session runs as the local (NSS) account named by ``sAMAccountName``;
disabled, locked out and expired accounts are refused before the PIN.
In compatibility mode a weakly mapped certificate whose validity begins more
than ``certificate_backdating_compensation`` seconds before the account's
``whenCreated`` is refused (:mod:`rdscard.directory.backdating`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from rdscard.errors import ConfigError

MAX_URIS: Final = 16
_PRINCIPAL: Final = re.compile(r"^[A-Za-z0-9$][A-Za-z0-9._$-]*(/[A-Za-z0-9._-]+)*@[A-Za-z0-9.-]+$")
_KNOWN: Final = frozenset({"enabled", "uris", "base_dn", "bind_dn", "bind_password_file",
                           "ca_file", "refresh_interval", "timeout", "accounts",
                           "account_cache_lifetime", "strong_mapping",
                           "certificate_backdating_compensation", "bind_method", "keytab",
                           "bind_principal"})
BIND_METHODS: Final = ("simple", "kerberos")
DEFAULT_KEYTAB: Final = Path("/etc/krb5.keytab")
STRONG_MAPPING_MODES: Final = ("off", "compatibility", "full")
#: KB5014754 CertificateBackdatingCompensation: 10 minutes when absent, at most 50 years
DEFAULT_COMPENSATION: Final = 600.0
MAX_COMPENSATION: Final = float(0x5E0C89C0)


@dataclass(frozen=True)
class DirectoryConfig:
    """``[directory]``: where the NTAuth CAs come from (see the module docstring)."""

    enabled: bool = False
    uris: tuple[str, ...] = ()
    base_dn: str = ""
    bind_dn: str = ""
    bind_password_file: Path | None = None
    ca_file: Path | None = None
    refresh_interval: float = 28800.0
    timeout: float = 10.0
    #: the directory is the source of accounts (off by default)
    accounts: bool = False
    #: seconds an account looked up may still be used when no domain controller answers
    account_cache_lifetime: float = 300.0
    #: KB5014754 strong certificate mapping: "off", "compatibility" or "full"
    strong_mapping: str = "off"
    #: KB5014754 CertificateBackdatingCompensation: seconds a weakly mapped certificate's
    #: notBefore may precede the account's whenCreated (compatibility mode)
    certificate_backdating_compensation: float = DEFAULT_COMPENSATION
    #: "simple" (bind_dn and its password) or "kerberos" (SASL GSSAPI, a keytab's key)
    bind_method: str = "simple"
    keytab: Path = DEFAULT_KEYTAB
    bind_principal: str = ""

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> DirectoryConfig:
        """Parse ``[directory]``; :class:`ConfigError` names the key and the fix."""
        where = "[directory]"
        unknown = sorted(set(table) - _KNOWN)
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; "
                              "see docs/configuration.md")
        enabled = _take(table, "enabled", bool, False)
        uris = _take(table, "uris", list, [])
        if len(uris) > MAX_URIS or not all(isinstance(u, str) for u in uris):
            raise ConfigError(f"{where} uris: give at most {MAX_URIS} LDAP URIs as strings")
        for uri in uris:
            check_uri(uri)
        interval = _seconds(table, "refresh_interval", 28800.0, 60.0, 7 * 86400.0)
        timeout = _seconds(table, "timeout", 10.0, 0.5, 300.0)
        cfg = cls(
            enabled=enabled,
            uris=tuple(uris),
            base_dn=_take(table, "base_dn", str, "").strip(),
            bind_dn=_take(table, "bind_dn", str, "").strip(),
            bind_password_file=_path(_take(table, "bind_password_file", str, "")),
            ca_file=_path(_take(table, "ca_file", str, "")),
            refresh_interval=interval,
            timeout=timeout,
            accounts=_take(table, "accounts", bool, False),
            account_cache_lifetime=_seconds(table, "account_cache_lifetime", 300.0, 0.0,
                                            86400.0),
            strong_mapping=_take(table, "strong_mapping", str, "off"),
            certificate_backdating_compensation=_seconds(
                table, "certificate_backdating_compensation", DEFAULT_COMPENSATION, 0.0,
                MAX_COMPENSATION),
            bind_method=_take(table, "bind_method", str, "simple"),
            keytab=_path(_take(table, "keytab", str, "")) or DEFAULT_KEYTAB,
            bind_principal=_take(table, "bind_principal", str, "").strip(),
        )
        if cfg.bind_method not in BIND_METHODS:
            raise ConfigError(f"{where} bind_method: give one of {', '.join(BIND_METHODS)}, "
                              f"not {cfg.bind_method!r}")
        if cfg.bind_method == "kerberos" and (cfg.bind_dn or cfg.bind_password_file):
            raise ConfigError(f"{where} bind_method: a Kerberos bind uses the keytab's key, not "
                              "bind_dn and bind_password_file: remove them, or set "
                              'bind_method = "simple"')
        if cfg.bind_method == "kerberos" and not _PRINCIPAL.match(cfg.bind_principal):
            raise ConfigError(f"{where} bind_principal: name the keytab's principal to bind "
                              'as, e.g. "RDSH$@EXAMPLE.TEST"')
        if cfg.strong_mapping not in STRONG_MAPPING_MODES:
            raise ConfigError(f"{where} strong_mapping: give one of "
                              f"{', '.join(STRONG_MAPPING_MODES)}, not {cfg.strong_mapping!r}")
        if cfg.strong_mapping != "off" and not cfg.accounts:
            raise ConfigError(f"{where} strong_mapping: certificates are mapped to directory "
                              "users only with accounts = true")
        if cfg.enabled and not cfg.uris:
            raise ConfigError(f'{where} enabled: name the domain controllers in uris, e.g. '
                              'uris = ["ldaps://dc1.example.test"]')
        if cfg.accounts and not cfg.enabled:
            raise ConfigError(f"{where} accounts: the directory is the source of accounts only "
                              "when it is enabled: set enabled = true and uris")
        if cfg.bind_dn and cfg.bind_password_file is None:
            raise ConfigError(f"{where} bind_dn: also give bind_password_file, a root-only file "
                              "holding the account's password")
        return cfg


def check_uri(uri: str) -> str:
    """An ``ldaps://HOST[:PORT]`` or ``ldap://HOST[:PORT]`` URI (the latter uses StartTLS)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or \
            parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"[directory] uris: {uri!r} is not an LDAP URI: write "
                          '"ldaps://dc1.example.test" (or ldap://..., which uses StartTLS)')
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"[directory] uris: {uri!r} has an invalid port") from None
    return uri


def _take(table: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"[directory] {key}: expected {kind.__name__}, "
                          f"got {type(value).__name__}")
    return value


def _seconds(table: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = float(_take(table, key, float, default))
    if not low <= value <= high:
        raise ConfigError(f"[directory] {key}: give seconds between {low:g} and {high:g}, "
                          f"not {value:g}")
    return value


def _path(value: str) -> Path | None:
    return Path(value) if value else None
