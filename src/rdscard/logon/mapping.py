"""From a certificate's UPN to the account that signs in, and its Kerberos realm.

The rule of the seed: a UPN ``name@domain`` signs in only when ``domain``
maps to a realm through ``[logon.domain_realms]`` (exact key, or a key
``.parent`` matching every sub-domain of ``parent``, the longest match
winning, as krb5.conf's ``[domain_realm]``). Otherwise the sign-in fails with
a clear message, unless ``allow_domain_hints`` is on and the user gave a hint:

- ``DOMAIN\\user`` (user name field), or
- the domain field of Client Info (``DOMAIN``), or ``user@domain``.

The hint's domain is looked up like a UPN domain; a NetBIOS-style name
(no dot) also matches the first label of a configured domain (``EXAMPLE``
for ``example.test``) or a realm's name. The hint's user name, when given,
names the account; otherwise the UPN's name part does.

Accounts:

- ``local`` mode: the ``[logon.accounts]`` table (UPN -> local account) wins;
  otherwise the UPN's name part (or the hint's user), if such a local
  account exists (``pwd.getpwnam``), else its lower-case form if that exists.
- ``kerberos`` mode: the same rule picks the local account the session runs
  as; the client principal is ``name@REALM`` or, with
  ``principal_form = "enterprise"``, the UPN as an enterprise name
  ``name\\@domain@REALM`` (kinit ``-E``).
"""

from __future__ import annotations

import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.logon.settings import AccountMode, LogonConfig, PrincipalForm

MAX_UPN: Final = 1024
MAX_HINT: Final = 512
_NAME: Final = re.compile(r"^[A-Za-z0-9._$-][A-Za-z0-9._$ -]{0,255}$")
_ACCOUNT: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}\$?$")

AccountExists = Callable[[str], bool]


def local_account_exists(name: str) -> bool:
    """True when ``name`` is an account of this computer (``getpwnam``)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class Hint:
    """What the user typed besides the PIN: ``DOMAIN\\user``, ``user@domain`` or ``DOMAIN``."""

    user: str | None
    domain: str | None

    @classmethod
    def parse(cls, user_name: str = "", domain: str = "") -> Hint | None:
        """From Client Info's user name and domain fields (either may be empty)."""
        user_name, domain = user_name.strip(), domain.strip()
        if len(user_name) > MAX_HINT or len(domain) > MAX_HINT:
            raise SignInRefused(ReasonCode.BAD_HINT,
                                f"the user name hint is longer than {MAX_HINT} characters")
        user: str | None = user_name or None
        if user_name and "\\" in user_name:
            hinted_domain, _, user_part = user_name.partition("\\")
            domain = domain or hinted_domain
            user = user_part or None
        elif user_name and "@" in user_name:
            user_part, _, hinted_domain = user_name.rpartition("@")
            domain = domain or hinted_domain
            user = user_part or None
        if user is None and not domain:
            return None
        if user is not None and not _NAME.match(user):
            raise SignInRefused(ReasonCode.BAD_HINT,
                                f"the user name hint {user!r} is not a valid name")
        return cls(user=user, domain=domain or None)


@dataclass(frozen=True)
class AccountMapping:
    """Who signs in: the local account, and in kerberos mode the realm and principal."""

    upn: str | None
    account: str
    realm: str | None
    principal: str | None
    enterprise: bool
    mode: AccountMode
    used_hint: bool


def split_upn(upn: str) -> tuple[str, str] | None:
    """``(name, domain)`` of a UPN ``name@domain``, None when it has not that form."""
    if len(upn) > MAX_UPN:
        return None
    name, sep, domain = upn.rpartition("@")
    if not sep or not name or not domain or "@" in name or "\\" in upn or "/" in upn:
        return None
    if not _NAME.match(name) or "." not in domain.strip(".") or domain != domain.strip("."):
        return None
    return name, domain


class AccountMapper:
    """Applies the mapping rule of a :class:`LogonConfig`."""

    def __init__(self, config: LogonConfig,
                 account_exists: AccountExists = local_account_exists) -> None:
        self.config = config
        self._exists = account_exists

    def realm_for_domain(self, domain: str) -> str | None:
        """The realm of a DNS domain through ``domain_realms``, longest match first."""
        table = self.config.domain_realms
        folded = domain.casefold().rstrip(".")
        if folded in table:
            return table[folded]
        best: tuple[int, str] | None = None
        for key, realm in table.items():
            if key.startswith(".") and (folded.endswith(key) or folded == key[1:]) and (
                    best is None or len(key) > best[0]):
                best = (len(key), realm)
        return best[1] if best else None

    def realm_for_hint(self, domain: str) -> str | None:
        """A hinted domain: DNS domain, NetBIOS-style first label, or a realm name."""
        realm = self.realm_for_domain(domain)
        if realm is not None or "." in domain:
            return realm
        wanted = domain.casefold()
        for key, value in self.config.domain_realms.items():
            if key.lstrip(".").split(".")[0] == wanted or value.casefold() == wanted:
                return value
        return None

    def map(self, upn: str | None, hint: Hint | None = None) -> AccountMapping:
        """Map a validated certificate's UPN (and the user's hint) to an account."""
        config = self.config
        local = config.mode is AccountMode.LOCAL
        explicit = config.accounts.get(upn.casefold()) if upn else None
        parts = split_upn(upn) if upn else None
        realm = self.realm_for_domain(parts[1]) if parts else None
        name = parts[0] if parts else None
        used_hint = False
        hinted = config.allow_domain_hints and hint is not None and hint.domain is not None
        if realm is None and hinted and (explicit is None or not local):
            assert hint is not None and hint.domain is not None
            realm = self.realm_for_hint(hint.domain)
            if realm is None:
                raise SignInRefused(
                    ReasonCode.UNKNOWN_DOMAIN,
                    f"the domain hint {hint.domain!r} names no known realm: use a domain of "
                    "[logon.domain_realms], or ask the administrator to add it",
                )
            if local and (upn is None or (hint.user is not None and name is not None
                                          and hint.user.casefold() != name.casefold())):
                # No KDC checks the binding in local mode: a hint may pick the realm,
                # never another account than the certificate names.
                raise SignInRefused(
                    ReasonCode.BAD_HINT,
                    "in local mode the certificate itself must name the user (a UPN whose "
                    "name part is the hinted user): map it in [logon.accounts] instead",
                )
            name = hint.user or name
            used_hint = True
        if realm is None and explicit is None:
            raise self._unresolved(upn, parts)
        if name is None and explicit is None:
            raise SignInRefused(
                ReasonCode.NO_UPN,
                "the certificate has no usable UPN and the hint names no user: sign in as "
                "DOMAIN\\user",
            )
        account = explicit if explicit is not None else name
        assert account is not None
        if (explicit is None and account != account.lower() and _ACCOUNT.match(account)
                and not self._exists(account)):
            account = account.lower()  # UPNs compare case-insensitively, accounts do not
        if not _ACCOUNT.match(account) or not self._exists(account):
            raise SignInRefused(
                ReasonCode.NO_ACCOUNT,
                f"no local account {account!r} for {upn or 'this certificate'}: create the "
                "account, or map the UPN in [logon.accounts]",
            )
        principal: str | None = None
        enterprise = False
        if not local:
            if realm is None:
                raise self._unresolved(upn, parts)
            if config.principal_form is PrincipalForm.ENTERPRISE and upn and not used_hint:
                principal = upn.replace("@", "\\@") + "@" + realm
                enterprise = True
            else:
                principal = f"{name or account}@{realm}"
        return AccountMapping(upn=upn, account=account, realm=realm, principal=principal,
                              enterprise=enterprise, mode=config.mode, used_hint=used_hint)

    def map_directory(self, upn: str, sam_account_name: str) -> AccountMapping:
        """The mapping of a UPN the directory resolved to ``sam_account_name``.

        ``[directory] accounts = true``: the directory, not ``[logon.accounts]``,
        names the account; it must exist locally (NSS), its lower-case form
        too ("Alice" runs as ``alice``). In kerberos mode the client principal
        is the account's own, ``sAMAccountName@REALM`` ([MS-KILE] 3.3.5.6.1),
        or the UPN as an enterprise name.
        """
        parts = split_upn(upn)
        realm = self.realm_for_domain(parts[1]) if parts else None
        account = self.directory_local_account(sam_account_name, upn)
        principal: str | None = None
        enterprise = False
        if self.config.mode is not AccountMode.LOCAL:
            if realm is None:
                raise self._unresolved(upn, parts)
            if self.config.principal_form is PrincipalForm.ENTERPRISE:
                principal = upn.replace("@", "\\@") + "@" + realm
                enterprise = True
            else:
                principal = f"{sam_account_name}@{realm}"
        return AccountMapping(upn=upn, account=account, realm=realm, principal=principal,
                              enterprise=enterprise, mode=self.config.mode, used_hint=False)

    def directory_local_account(self, sam_account_name: str, named_for: str) -> str:
        """The local (NSS) account of a directory user, its lower-case form when needed."""
        account = sam_account_name
        if account != account.lower() and _ACCOUNT.match(account) and not self._exists(account):
            account = account.lower()
        if not _ACCOUNT.match(account) or not self._exists(account):
            raise SignInRefused(
                ReasonCode.NO_ACCOUNT,
                f"the directory names the account {sam_account_name!r} for {named_for}, which "
                "does not exist on this computer: make directory users known to NSS (sssd, "
                "winbind) or create the account")
        return account

    def account_for_principal(self, principal: str) -> str:
        """The local account of a Kerberos client principal authenticated by NLA.

        ``name@REALM`` with ``REALM`` one of ``[logon.domain_realms]``: an
        explicit ``[logon.accounts]`` entry for a UPN ``name@domain`` whose
        domain maps to that realm wins, else the account ``name`` (or its
        lower-case form). An enterprise name ``user\\@domain@REALM`` maps as
        the UPN ``user@domain``. Raises SignInRefused (NO_ACCOUNT).
        """
        name, sep, realm = principal.rpartition("@")
        if not sep or not name or len(principal) > MAX_UPN or "/" in name:
            raise SignInRefused(ReasonCode.NO_ACCOUNT,
                                f"the Kerberos principal {principal!r} names no user")
        if realm not in self.config.domain_realms.values():
            raise SignInRefused(ReasonCode.NO_ACCOUNT,
                                f"the realm {realm!r} of {principal!r} is not in "
                                "[logon.domain_realms]")
        if "\\@" in name:
            upn = name.replace("\\@", "@")
            mapped = self.map(upn)
            if mapped.realm != realm:
                raise SignInRefused(ReasonCode.NO_ACCOUNT,
                                    f"the UPN {upn!r} does not belong to the realm {realm}")
            return mapped.account
        for upn, account in self.config.accounts.items():
            parts = split_upn(upn)
            if parts is not None and parts[0].casefold() == name.casefold() and \
                    self.realm_for_domain(parts[1]) == realm:
                return account
        account = name
        if account != account.lower() and not self._exists(account):
            account = account.lower()
        if not _ACCOUNT.match(account) or not self._exists(account):
            raise SignInRefused(ReasonCode.NO_ACCOUNT,
                                f"no local account {account!r} for {principal}: create it, or "
                                "map the user's UPN in [logon.accounts]")
        return account

    def _unresolved(self, upn: str | None, parts: tuple[str, str] | None) -> SignInRefused:
        hint_fix = ("sign in as DOMAIN\\user (domain hints are on)"
                    if self.config.allow_domain_hints
                    else "or turn on allow_domain_hints in [logon] and sign in as DOMAIN\\user")
        if upn is None:
            return SignInRefused(
                ReasonCode.NO_UPN,
                "the certificate has no UPN (otherName 1.3.6.1.4.1.311.20.2.3): issue a "
                f"certificate with a UPN user@domain, {hint_fix}",
            )
        if parts is None:
            return SignInRefused(
                ReasonCode.BAD_UPN,
                f"the certificate's UPN {upn!r} is not of the form name@dns.domain: issue a "
                f"certificate with a UPN user@domain, {hint_fix}",
            )
        return SignInRefused(
            ReasonCode.UNKNOWN_DOMAIN,
            f"the UPN domain {parts[1]!r} of {upn!r} maps to no realm: add "
            f'"{parts[1]}" = "REALM" to [logon.domain_realms], {hint_fix}',
        )
