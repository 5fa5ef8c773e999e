"""The ``[logon]`` configuration section: smart card sign-in policy.

Parsed from the TOML table by :meth:`LogonConfig.from_table`; every key has a
default, unknown keys are errors. The settings (the Group Policy of the seed)::

    [logon]
    mode = "local"                 # "local": UPN -> local account, no KDC
                                   # "kerberos": PKINIT to the realm's KDC
    allow_domain_hints = false     # "Allow user name hint": DOMAIN\\user or the
                                   # domain field picks the realm when the UPN cannot
    principal_form = "name"        # kerberos: "name" -> user@REALM,
                                   # "enterprise" -> user@domain@REALM (kinit -E)
    card_removal = "none"          # "none" | "lock" | "disconnect" | "logoff"
    ntauth_dir = ""                # default: STATE/ntauth
    roots = []                     # extra trust anchors (root CA files)
    intermediates = []             # CA certificate files used to build paths
    crl_files = []                 # CRL files (PEM or DER), one per issuing CA
    require_revocation_check = false  # refuse when no CRL covers the issuer

    [logon.domain_realms]          # UPN DNS domain -> Kerberos realm; ".d" also
    "example.test" = "EXAMPLE.TEST"  # matches every sub-domain of d

    [logon.accounts]               # explicit UPN -> local account table
    "alice@example.test" = "alice"

    [logon.kdc]
    krb5_config = ""               # KRB5_CONFIG for kinit (default: the system's)
    pkcs11_module = "opensc-pkcs11.so"
    anchors = []                   # KDC trust anchors; default: the roots above the
                                   # NTAuth CAs (the KDC must chain through NTAuth)
    timeout = 30.0                 # seconds for one kinit
    kinit = "kinit"                # the MIT kinit program
    card_roots = false             # also trust the roots on the user's card (msroots) for
                                   # the KDC certificate, that sign-in only, and only with
                                   # the TGT validated against validate_keytab
    validate = false               # validate every TGT against validate_keytab (a user of
                                   # another realm: the check crosses the trust)
    validate_keytab = ""           # default /etc/krb5.keytab
    validate_principal = ""        # default host/<FQDN> in the user's realm
    kvno = "kvno"                  # the MIT kvno program (the TGT validation)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar

from rdscard.errors import ConfigError

_REALM: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
_DOMAIN: Final = re.compile(r"^\.?[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
MAX_TABLE: Final = 10_000
_E = TypeVar("_E", bound=StrEnum)


class AccountMode(StrEnum):
    """How a certificate's UPN becomes a signed-in user."""

    LOCAL = "local"
    KERBEROS = "kerberos"


class PrincipalForm(StrEnum):
    """The Kerberos client principal requested for a UPN ``user@domain``."""

    NAME = "name"  # user@REALM
    ENTERPRISE = "enterprise"  # user\@domain@REALM, KRB5_NT_ENTERPRISE_PRINCIPAL


class CardRemoval(StrEnum):
    """What happens when the card leaves the reader ("Interactive logon: smart card removal")."""

    NONE = "none"
    LOCK = "lock"
    DISCONNECT = "disconnect"
    LOGOFF = "logoff"


@dataclass(frozen=True)
class KdcSettings:
    """``[logon.kdc]``: how the PKINIT worker runs ``kinit``."""

    krb5_config: Path | None = None
    pkcs11_module: str = "opensc-pkcs11.so"
    anchors: tuple[Path, ...] = ()
    timeout: float = 30.0
    kinit: str = "kinit"
    #: roots on the card for the KDC certificate (rdscard.logon.card_roots)
    card_roots: bool = False
    #: validate every TGT against the host's keytab, card roots or not
    validate: bool = False
    validate_keytab: Path | None = None
    validate_principal: str = ""
    kvno: str = "kvno"

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> KdcSettings:
        where = "[logon.kdc]"
        _reject_unknown(table, where, {"krb5_config", "pkcs11_module", "anchors", "timeout",
                                       "kinit", "card_roots", "validate", "validate_keytab",
                                       "validate_principal", "kvno"})
        timeout = _take(table, "timeout", (int, float), where, cls.timeout)
        if isinstance(timeout, bool) or not 0 < float(timeout) <= 600:
            raise ConfigError(f"{where} timeout: give seconds between 0 and 600, not {timeout!r}")
        module = _take(table, "pkcs11_module", str, where, cls.pkcs11_module)
        if not module:
            raise ConfigError(f"{where} pkcs11_module: name the PKCS#11 module, "
                              "e.g. opensc-pkcs11.so")
        return cls(
            krb5_config=_path(_take(table, "krb5_config", str, where, "")),
            pkcs11_module=module,
            anchors=_paths(table, "anchors", where),
            timeout=float(timeout),
            kinit=_take(table, "kinit", str, where, cls.kinit) or cls.kinit,
            card_roots=_take(table, "card_roots", bool, where, False),
            validate=_take(table, "validate", bool, where, False),
            validate_keytab=_path(_take(table, "validate_keytab", str, where, "")),
            validate_principal=_principal(_take(table, "validate_principal", str, where, "")),
            kvno=_take(table, "kvno", str, where, cls.kvno) or cls.kvno,
        )


@dataclass(frozen=True)
class LogonConfig:
    """``[logon]``: smart card sign-in policy (see the module docstring for every key)."""

    mode: AccountMode = AccountMode.LOCAL
    allow_domain_hints: bool = False
    principal_form: PrincipalForm = PrincipalForm.NAME
    card_removal: CardRemoval = CardRemoval.NONE
    accounts: dict[str, str] = field(default_factory=dict)
    domain_realms: dict[str, str] = field(default_factory=dict)
    ntauth_dir: Path | None = None
    roots: tuple[Path, ...] = ()
    intermediates: tuple[Path, ...] = ()
    crl_files: tuple[Path, ...] = ()
    require_revocation_check: bool = False
    kdc: KdcSettings = field(default_factory=KdcSettings)

    def ntauth_directory(self, state_dir: Path) -> Path:
        """Where the NTAuth store lives: ``ntauth_dir`` or ``STATE/ntauth``."""
        return self.ntauth_dir if self.ntauth_dir is not None else Path(state_dir) / "ntauth"

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> LogonConfig:
        """Parse the ``[logon]`` table; :class:`ConfigError` names the key and the fix."""
        where = "[logon]"
        _reject_unknown(table, where, {
            "mode", "allow_domain_hints", "principal_form", "card_removal", "accounts",
            "domain_realms", "ntauth_dir", "roots", "intermediates", "crl_files",
            "require_revocation_check", "kdc",
        })
        accounts = _str_table(table, "accounts", where)
        for upn, account in accounts.items():
            if "@" not in upn or not account or "/" in account or ":" in account:
                raise ConfigError(f"{where} accounts: {upn!r} = {account!r}: write "
                                  '"user@domain" = "local-account"')
        realms = _str_table(table, "domain_realms", where)
        for domain, realm in realms.items():
            if not _DOMAIN.match(domain) or not _REALM.match(realm):
                raise ConfigError(f"{where} domain_realms: {domain!r} = {realm!r}: write "
                                  '"example.test" = "EXAMPLE.TEST"')
        kdc = _take(table, "kdc", dict, where, {})
        return cls(
            mode=_enum(AccountMode, _take(table, "mode", str, where, "local"), where, "mode"),
            allow_domain_hints=_take(table, "allow_domain_hints", bool, where, False),
            principal_form=_enum(PrincipalForm, _take(table, "principal_form", str, where,
                                                      "name"), where, "principal_form"),
            card_removal=_enum(CardRemoval, _take(table, "card_removal", str, where, "none"),
                               where, "card_removal"),
            accounts={k.casefold(): v for k, v in accounts.items()},
            domain_realms={k.casefold(): v.upper() for k, v in realms.items()},
            ntauth_dir=_path(_take(table, "ntauth_dir", str, where, "")),
            roots=_paths(table, "roots", where),
            intermediates=_paths(table, "intermediates", where),
            crl_files=_paths(table, "crl_files", where),
            require_revocation_check=_take(table, "require_revocation_check", bool, where,
                                           False),
            kdc=KdcSettings.from_table(kdc),
        )


def _principal(value: str) -> str:
    if value and (value.startswith("-") or any(c.isspace() or ord(c) < 0x20 for c in value)):
        raise ConfigError(f"[logon.kdc] validate_principal: {value!r} is not a principal: "
                          'write "host/server.example.test" or "host/server@REALM"')
    return value


def _reject_unknown(table: dict[str, Any], where: str, known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"known keys are {', '.join(sorted(known))}")


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
          default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    names = (kind,) if isinstance(kind, type) else kind
    if not isinstance(value, names) or (isinstance(value, bool) and bool not in names):
        wanted = " or ".join(k.__name__ for k in names)
        raise ConfigError(f"{where} {key}: expected {wanted}, got {type(value).__name__}")
    return value


def _enum(kind: type[_E], value: str, where: str, key: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(f'"{m.value}"' for m in kind)
        raise ConfigError(f"{where} {key}: {value!r} is not one of {choices}") from None


def _path(value: str) -> Path | None:
    return Path(value) if value else None


def _paths(table: dict[str, Any], key: str, where: str) -> tuple[Path, ...]:
    value = _take(table, key, list, where, [])
    if not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} {key}: give a list of file names")
    return tuple(Path(v) for v in value)


def _str_table(table: dict[str, Any], key: str, where: str) -> dict[str, str]:
    value = _take(table, key, dict, where, {})
    if len(value) > MAX_TABLE:
        raise ConfigError(f"{where} {key}: more than {MAX_TABLE} entries")
    if not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where} {key}: every value must be a string")
    return dict(value)
