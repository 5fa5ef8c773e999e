"""The account of a Kerberos client principal, through the directory (NLA).

With ``[directory] accounts = true`` the principal a client authenticated
as under Network Level Authentication maps to an account the way a card's
UPN does (:mod:`rdscard.directory.accounts`), so that the rule "the card and
the Kerberos principal name the same account" compares two directory users:

- an enterprise name ``user\\@domain@REALM`` ([RFC 6806] 5) is the UPN
  ``user@domain``;
- a name ``name@REALM`` is looked up as ``name@REALM``: the user whose
  ``userPrincipalName`` it is, else, in the realm's own domain, the user
  whose ``sAMAccountName`` is ``name`` (the principal AD's KDC issues,
  [MS-KILE] 3.3.5.6.1; realm and DNS domain compare case-insensitively).

``REALM`` must be one of ``[logon.domain_realms]``, and the user must be
usable (not disabled, locked out or expired) as for a card.
"""

from __future__ import annotations

import datetime

from rdscard.directory.accounts import AccountSource
from rdscard.logon.mapping import MAX_UPN, AccountMapper
from rdscard.logon.refusal import ReasonCode, SignInRefused


def lookup_name(principal: str) -> str:
    """What the directory is asked for: the UPN of an enterprise name, else the principal."""
    name, sep, realm = principal.rpartition("@")
    if not sep or not name or not realm or len(principal) > MAX_UPN or "/" in name:
        raise SignInRefused(ReasonCode.NO_ACCOUNT,
                            f"the Kerberos principal {principal!r} names no user")
    if "\\@" in name:
        upn = name.replace("\\@", "@")
        if upn.count("@") != 1:
            raise SignInRefused(ReasonCode.NO_ACCOUNT,
                                f"the Kerberos principal {principal!r} names no user")
        return upn
    if "@" in name or "\\" in name:
        raise SignInRefused(ReasonCode.NO_ACCOUNT,
                            f"the Kerberos principal {principal!r} names no user")
    return principal


def account_for_principal(principal: str, mapper: AccountMapper, accounts: AccountSource,
                          now: datetime.datetime) -> str:
    """The local account of ``principal`` through the directory; raises :class:`SignInRefused`."""
    realm = principal.rpartition("@")[2]
    if realm not in mapper.config.domain_realms.values():
        raise SignInRefused(ReasonCode.NO_ACCOUNT,
                            f"the realm {realm!r} of {principal!r} is not in "
                            "[logon.domain_realms]")
    entry = accounts.resolve(lookup_name(principal))
    refusal = entry.refusal(now)
    if refusal is not None:
        raise refusal
    return mapper.directory_local_account(entry.sam_account_name, principal)
