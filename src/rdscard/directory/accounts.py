"""Active Directory as the source of accounts: the certificate's UPN to a user object.

With ``[directory] accounts = true`` the logon service (the root monitor)
looks the validated certificate's UPN up in the domain, as a Windows DC's
KDC does for a smart card sign-in ([MS-PKCA] 3.1.5.2.1.1 "Mapping by
User Principal Name"; [MS-ADTS] 5.1.1.1.1 "userPrincipalName"):

- an object of ``objectCategory=person``, ``objectClass=user`` whose
  ``userPrincipalName`` is the UPN (case-insensitive, as LDAP compares it);
- otherwise the implicit UPN ``sAMAccountName@<DNS name of the domain>``
  that AD accepts for every user of the domain.

The object's ``sAMAccountName`` names the local account (through NSS) the
session runs as. The account must be usable ([MS-ADTS] 2.2.16
userAccountControl; [MS-SAMR] 2.2.1.12): ``ACCOUNTDISABLE`` (0x2) and
``LOCKOUT`` (0x10, read from the constructed
``msDS-User-Account-Control-Computed``, since AD does not keep the bit in
the stored attribute) are refused, and so is an ``accountExpires``
(FILETIME, 100 ns since 1601; 0 and 0x7FFFFFFFFFFFFFFF mean never) in the
past. All of this is decided before the PIN is used.

Each user found is kept for ``account_cache_lifetime`` seconds: every
sign-in asks a domain controller (so that disabling an account takes effect
at once), and only when none answers does a sign-in use the kept copy, with
a warning in the log. An account not in the directory is never cached.

Facts of the peer (Samba 4.17 AD DC):

- with a lockout threshold set (``samba-tool domain passwordsettings set
  --account-lockout-threshold=N``), N failed simple binds set
  ``lockoutTime`` and the constructed ``msDS-User-Account-Control-Computed``
  carries LOCKOUT (16) while the stored ``userAccountControl`` stays 512;
  the next bind is answered with AD's "data 775" (account locked out);
- ``samba-tool user setexpiry NAME --days=0`` sets ``accountExpires`` to the
  current time: the account has expired at once;
- ``whenCreated`` is written ``YYYYMMDDHHMMSS.0Z``;
- a simple bind takes about 50 ms (a search on a bound connection a few),
  hence the kept connection; after a restart of the DC the kept
  connection's next search fails and a new one is made.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import ldap3
from cryptography import x509
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars

from rdscard.directory.backdating import check_predates_account, generalized_time
from rdscard.directory.ntauth import DirectoryError, DirectoryNtAuth, root_dse_value
from rdscard.directory.settings import DirectoryConfig
from rdscard.directory.strong import StrongMapping, check_mapping
from rdscard.errors import ConfigError
from rdscard.logon.refusal import ReasonCode, SignInRefused

log = logging.getLogger("rdscard.directory")

#: userAccountControl bits ([MS-ADTS] 2.2.16)
UF_ACCOUNTDISABLE: Final = 0x0002
UF_LOCKOUT: Final = 0x0010
#: accountExpires values meaning "never" ([MS-ADA1] 2.6 Account-Expires)
NEVER_EXPIRES: Final = frozenset({0, 0x7FFFFFFFFFFFFFFF})
_FILETIME_EPOCH: Final = datetime.datetime(1601, 1, 1, tzinfo=datetime.UTC)
ATTRIBUTES: Final = ("sAMAccountName", "userPrincipalName", "objectSid", "userAccountControl",
                     "msDS-User-Account-Control-Computed", "accountExpires",
                     "altSecurityIdentities", "whenCreated")
MAX_ALT_IDENTITIES: Final = 64
#: seconds a bound connection is kept unused: below AD's MaxConnIdleTime (900 s by default),
#: after which the DC closes it
KEEP_IDLE: Final = 300.0


def sid_to_string(raw: bytes) -> str:
    """A binary SID ([MS-DTYP] 2.4.2.2) as its string form ``S-1-5-21-...`` (2.4.2.1)."""
    if len(raw) < 8 or raw[0] != 1 or len(raw) != 8 + 4 * raw[1] or raw[1] > 15:
        raise ValueError("not a binary SID")
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack(f"<{raw[1]}I", raw[8:])
    return "-".join(["S", "1", str(authority), *map(str, subs)])


def filetime(value: int) -> datetime.datetime | None:
    """A FILETIME ([MS-DTYP] 2.3.3) as a UTC time; None for AD's "never" values."""
    if value in NEVER_EXPIRES or value < 0:
        return None
    try:
        return _FILETIME_EPOCH + datetime.timedelta(microseconds=value // 10)
    except OverflowError:
        return None


def domain_dns_name(dn: str) -> str:
    """``DC=example,DC=test`` -> ``example.test`` (the DC= components of a domain DN)."""
    labels = [part.split("=", 1)[1] for part in dn.split(",")
              if part.strip().upper().startswith("DC=")]
    return ".".join(label.strip() for label in labels).casefold()


@dataclass(frozen=True)
class DirectoryAccount:
    """What the sign-in needs of one user object."""

    dn: str
    sam_account_name: str
    user_principal_name: str | None
    object_sid: str
    user_account_control: int
    account_expires: int
    alt_security_identities: tuple[str, ...] = ()
    #: the object's whenCreated (None when the directory did not give it)
    when_created: datetime.datetime | None = None

    def refusal(self, now: datetime.datetime) -> SignInRefused | None:
        """Why this account may not sign in now, or None when it may."""
        uac = self.user_account_control
        name = self.sam_account_name
        if uac & UF_ACCOUNTDISABLE:
            return SignInRefused(ReasonCode.ACCOUNT_DISABLED,
                                 f"the account {name} is disabled in the directory: ask an "
                                 "administrator to enable it")
        if uac & UF_LOCKOUT:
            return SignInRefused(ReasonCode.ACCOUNT_LOCKED,
                                 f"the account {name} is locked out in the directory: wait for "
                                 "the lockout to end or ask an administrator to unlock it")
        expires = filetime(self.account_expires)
        if expires is not None and expires <= now:
            return SignInRefused(ReasonCode.ACCOUNT_EXPIRED,
                                 f"the account {name} expired on {expires:%Y-%m-%d %H:%M} UTC: "
                                 "ask an administrator to extend it")
        return None


class AccountSource(Protocol):
    """Finds the directory account of a UPN (what the logon service needs)."""

    def resolve(self, upn: str) -> DirectoryAccount:
        """The account; raises :class:`SignInRefused` when there is none or none can be read."""
        ...

    def check_certificate(self, account: DirectoryAccount, cert: x509.Certificate) -> str:
        """Strong certificate mapping (:mod:`rdscard.directory.strong`): a warning for the
        audit record, empty when none; raises :class:`SignInRefused` to refuse."""
        ...


def _text(values: Sequence[bytes]) -> str | None:
    return values[0].decode("utf-8", "replace") if values else None


def _int(values: Sequence[bytes], default: int = 0) -> int:
    try:
        return int(values[0]) if values else default
    except ValueError:
        return default


def parse_entry(dn: str, raw: dict[str, list[bytes]]) -> DirectoryAccount:
    """A user object from a search entry's raw attributes (names compared case-insensitively)."""
    folded = {key.lower(): [bytes(v) for v in values] for key, values in raw.items()}
    sam = _text(folded.get("samaccountname", []))
    sid = folded.get("objectsid", [])
    if not sam or not sid:
        raise DirectoryError(f"{dn} has no sAMAccountName or objectSid")
    try:
        sid_text = sid_to_string(sid[0])
    except ValueError:
        raise DirectoryError(f"{dn} has an invalid objectSid") from None
    uac = _int(folded.get("useraccountcontrol", [])) | _int(
        folded.get("msds-user-account-control-computed", []))
    alt = tuple(v.decode("utf-8", "replace")
                for v in folded.get("altsecurityidentities", [])[:MAX_ALT_IDENTITIES])
    created = _text(folded.get("whencreated", []))
    return DirectoryAccount(dn=dn, sam_account_name=sam,
                            user_principal_name=_text(folded.get("userprincipalname", [])),
                            object_sid=sid_text, user_account_control=uac,
                            account_expires=_int(folded.get("accountexpires", [])),
                            alt_security_identities=alt,
                            when_created=generalized_time(created) if created else None)


@dataclass
class _Kept:
    """The bound connection kept between lookups, the domain DN read on it, its last use."""

    conn: ldap3.Connection
    base: str
    used: float


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(ldap_errors.LDAPException):  # already closed by the DC
        conn.unbind()


class DirectoryAccounts:
    """Looks users up in the domain ``config`` names, over the same LDAP connection rules
    as the NTAuth refresh (LDAPS or StartTLS, simple bind inside TLS).

    The bound connection is kept for the next lookup (one search, a few
    milliseconds, instead of a TLS handshake and a bind, which a DC answers in
    tens of milliseconds) while it is used at least every :data:`KEEP_IDLE`
    seconds; when it fails (the DC closed it or went away) one new connection
    is tried before the lookup fails. Lookups are serialised on it.
    """

    def __init__(self, config: DirectoryConfig,
                 connect: Callable[[], ldap3.Connection] | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._connect = connect or DirectoryNtAuth(config).connect
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: _Kept | None = None

    def _domain_dn(self, conn: ldap3.Connection) -> str:
        base = self.config.base_dn
        if base:
            if base.upper().startswith("CN=CONFIGURATION,"):
                base = base.split(",", 1)[1]
            return base
        return root_dse_value(conn, "defaultNamingContext", "the domain's DN")

    def _search(self, conn: ldap3.Connection, base: str, condition: str) -> list[DirectoryAccount]:
        query = f"(&(objectCategory=person)(objectClass=user){condition})"
        try:
            conn.search(base, query, ldap3.SUBTREE, attributes=list(ATTRIBUTES), size_limit=2)
        except ldap_errors.LDAPSizeLimitExceededResult:
            pass  # two entries already say it is ambiguous
        except ldap_errors.LDAPException as exc:
            raise DirectoryError(f"cannot search {base} for {condition}: {exc}") from None
        return [parse_entry(str(item.get("dn", "")), item.get("raw_attributes", {}))
                for item in conn.response or [] if item.get("type") == "searchResEntry"]

    def _lookup(self, conn: ldap3.Connection, base: str, upn: str) -> list[DirectoryAccount]:
        name, _, domain = upn.rpartition("@")
        found = self._search(conn, base, f"(userPrincipalName={escape_filter_chars(upn)})")
        if not found and domain.casefold().rstrip(".") == domain_dns_name(base):
            found = self._search(conn, base, f"(sAMAccountName={escape_filter_chars(name)})")
        return found

    def close(self) -> None:
        """Unbind the kept connection, if any."""
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            _close(kept.conn)

    def find(self, upn: str) -> DirectoryAccount | None:
        """The user whose UPN (explicit or implicit) is ``upn``; None when there is none.

        Raises :class:`DirectoryError` when no domain controller answers and
        :class:`SignInRefused` when two users claim the UPN.
        """
        name, sep, domain = upn.rpartition("@")
        if not sep or not name or not domain:
            return None
        with self._lock:
            kept, self._kept = self._kept, None
            found: list[DirectoryAccount] | None = None
            if kept is not None and self.clock() - kept.used <= KEEP_IDLE:
                try:
                    found = self._lookup(kept.conn, kept.base, upn)
                except DirectoryError as exc:  # closed by the DC, or the DC went away
                    log.info("directory: the kept connection failed (%s); connecting again",
                             exc)
                    _close(kept.conn)
                    kept = None
                except BaseException:
                    _close(kept.conn)
                    raise
            elif kept is not None:
                _close(kept.conn)
                kept = None
            if kept is None:
                conn = self._connect()
                try:
                    base = self._domain_dn(conn)
                    found = self._lookup(conn, base, upn)
                except BaseException:
                    _close(conn)
                    raise
                kept = _Kept(conn, base, 0.0)
            assert found is not None
            kept.used = self.clock()
            self._kept = kept
        if len(found) > 1:
            raise SignInRefused(ReasonCode.NOT_IN_DIRECTORY,
                                f"more than one directory account has the UPN {upn}: the "
                                "administrator must make it unique")
        return found[0] if found else None


class CachedAccountSource:
    """:class:`DirectoryAccounts` with the monitor's short cache (see the module docstring)."""

    def __init__(self, config: DirectoryConfig, *,
                 directory: DirectoryAccounts | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.directory = directory or DirectoryAccounts(config)
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, DirectoryAccount]] = {}

    def resolve(self, upn: str) -> DirectoryAccount:
        key = upn.casefold()
        try:
            account = self.directory.find(upn)
        except (DirectoryError, ConfigError) as exc:
            with self._lock:
                kept = self._cache.get(key)
            age = self.clock() - kept[0] if kept is not None else None
            if kept is not None and age is not None and \
                    age <= self.config.account_cache_lifetime:
                log.warning("directory: no domain controller answered (%s); %s signs in with "
                            "the directory account %s as read %.0f s ago", exc, upn,
                            kept[1].sam_account_name, age)
                return kept[1]
            raise SignInRefused(ReasonCode.DIRECTORY_UNAVAILABLE,
                                f"the directory cannot be reached to look up {upn} ({exc}): "
                                "try again when a domain controller answers") from None
        with self._lock:
            now = self.clock()
            for stale in [k for k, (t, _) in self._cache.items()
                          if now - t > self.config.account_cache_lifetime]:
                del self._cache[stale]
            if account is None:
                self._cache.pop(key, None)
            elif self.config.account_cache_lifetime > 0:
                self._cache[key] = (now, account)
        if account is None:
            raise SignInRefused(ReasonCode.NOT_IN_DIRECTORY,
                                f"no directory account has the UPN {upn}: ask an administrator "
                                "to set it as the user's userPrincipalName")
        return account

    def check_certificate(self, account: DirectoryAccount, cert: x509.Certificate) -> str:
        mode = StrongMapping(self.config.strong_mapping)
        result = check_mapping(mode, cert, account.sam_account_name, account.object_sid,
                               account.alt_security_identities)
        if mode is StrongMapping.COMPATIBILITY and not result.how:
            check_predates_account(cert, account.sam_account_name, account.when_created,
                                   self.config.certificate_backdating_compensation)
        if result.warning:
            log.warning("directory: %s", result.warning)
        return result.warning


__all__: Sequence[str] = (
    "UF_ACCOUNTDISABLE",
    "UF_LOCKOUT",
    "AccountSource",
    "CachedAccountSource",
    "DirectoryAccount",
    "DirectoryAccounts",
    "domain_dns_name",
    "filetime",
    "parse_entry",
    "sid_to_string",
)
