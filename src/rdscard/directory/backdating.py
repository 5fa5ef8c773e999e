"""KB5014754's rule for weakly mapped certificates older than their account.

In compatibility mode (``StrongCertificateBindingEnforcement`` = 1) a
Windows KDC lets a certificate that is only weakly mapped (no SID extension,
no strong ``altSecurityIdentities`` entry; :mod:`rdscard.directory.strong`)
sign in only "if the user account predates the certificate" (KB5014754,
"Key Distribution Center registry key"): a certificate whose validity
begins before the account was created (its ``whenCreated``, [MS-ADA3] 2.363
When-Created) was issued to someone else who had the name earlier, and is
refused (the KDC's event 40: "The certificate was issued to the user before
the user existed in Active Directory and no strong mapping could be
found").

KB5014754's ``CertificateBackdatingCompensation`` (REG_DWORD, "Certificate
Backdating registry key") is the time difference, in seconds, the KDC
ignores between the certificate's issue time and the account's creation:
10 minutes when the value is absent (AD CS backdates ``notBefore`` by that
much), at most 50 years (0x5E0C89C0). ``[directory]
certificate_backdating_compensation`` is that value. A certificate is
refused when::

    notBefore + compensation < whenCreated

Strongly mapped certificates, and every certificate in the ``off`` and
``full`` modes, are not subject to the rule (``full`` refuses weak mappings
outright). An account whose ``whenCreated`` the directory did not give is
refused too: the check cannot be made, and it is a security check.
"""

from __future__ import annotations

import datetime
import re
from typing import Final

from cryptography import x509

from rdscard.directory.settings import DEFAULT_COMPENSATION, MAX_COMPENSATION
from rdscard.logon.refusal import ReasonCode, SignInRefused

#: GeneralizedTime as AD writes it ([MS-ADTS] 3.1.1.3.1.2; RFC 4517 3.3.13):
#: YYYYMMDDHHMMSS[.f]Z or with a +hhmm/-hhmm offset
_GENERALIZED: Final = re.compile(
    r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{4})\Z")


def generalized_time(text: str) -> datetime.datetime | None:
    """An LDAP GeneralizedTime (``20261204222400.0Z``) as a UTC time; None when malformed."""
    match = _GENERALIZED.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    zone = match.group(8)
    offset = datetime.timedelta(0)
    if zone != "Z":
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        if zone[0] == "-":
            offset = -offset
    fraction = match.group(7) or ""
    micros = int((fraction + "000000")[:6]) if fraction else 0
    try:
        local = datetime.datetime(year, month, day, hour, minute, second, micros,
                                  tzinfo=datetime.UTC)
    except ValueError:
        return None
    return local - offset


def check_predates_account(cert: x509.Certificate, account: str,
                           when_created: datetime.datetime | None,
                           compensation: float) -> None:
    """Refuse (``certificate_predates_account``) a weakly mapped certificate older than the
    account ``account`` created at ``when_created``, beyond ``compensation`` seconds."""
    if when_created is None:
        raise SignInRefused(
            ReasonCode.CERTIFICATE_PREDATES_ACCOUNT,
            f"the directory gave no creation time (whenCreated) for {account}: a weakly "
            "mapped certificate cannot be checked against it; map the certificate strongly "
            "(SID extension or altSecurityIdentities)")
    issued = cert.not_valid_before_utc
    allowed = issued + datetime.timedelta(seconds=compensation)
    if allowed < when_created:
        raise SignInRefused(
            ReasonCode.CERTIFICATE_PREDATES_ACCOUNT,
            f"the certificate is only weakly mapped to {account} and was issued "
            f"({issued:%Y-%m-%d %H:%M:%S} UTC) before the account was created "
            f"({when_created:%Y-%m-%d %H:%M:%S} UTC), beyond the allowance of "
            f"{compensation:g} s ([directory] certificate_backdating_compensation): it may "
            "have been issued to an earlier holder of the name; enroll a new certificate "
            "with the SID extension or map this one in altSecurityIdentities")


__all__ = ("DEFAULT_COMPENSATION", "MAX_COMPENSATION", "check_predates_account",
           "generalized_time")
