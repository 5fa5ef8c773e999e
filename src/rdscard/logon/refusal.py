"""Why a sign-in was refused: one exception type with a stable reason code.

Every refusal names the cause and the fix in its message, which the logon
screen shows and the audit log records. Messages never contain a PIN.
"""

from __future__ import annotations

from enum import StrEnum

from rdscard.errors import RdscardError


class ReasonCode(StrEnum):
    """Stable identifiers of refusal causes (they appear in the audit log)."""

    NOT_IN_NTAUTH = "not_in_ntauth"
    CHAIN_INVALID = "chain_invalid"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_EKU = "wrong_eku"
    WRONG_KEY_USAGE = "wrong_key_usage"
    REVOKED = "revoked"
    REVOCATION_UNKNOWN = "revocation_unknown"
    CRL_INVALID = "crl_invalid"
    NO_UPN = "no_upn"
    BAD_UPN = "bad_upn"
    UNKNOWN_DOMAIN = "unknown_domain"
    BAD_HINT = "bad_hint"
    NO_ACCOUNT = "no_account"
    WRONG_PIN = "wrong_pin"
    PIN_BLOCKED = "pin_blocked"
    BAD_PIN = "bad_pin"
    NO_CERTIFICATE = "no_certificate"
    PROOF_FAILED = "proof_failed"
    CARD_ERROR = "card_error"
    KDC_UNREACHABLE = "kdc_unreachable"
    KDC_UNKNOWN = "kdc_unknown"
    KDC_UNTRUSTED = "kdc_untrusted"
    PREAUTH_FAILED = "preauth_failed"
    CLIENT_NAME_MISMATCH = "client_name_mismatch"
    PRINCIPAL_UNKNOWN = "principal_unknown"
    KINIT_TIMEOUT = "kinit_timeout"
    KINIT_FAILED = "kinit_failed"
    TGT_UNVERIFIED = "tgt_unverified"
    EFS_NO_KEY_CERTIFICATE = "efs_no_key_certificate"
    EFS_NOT_RECIPIENT = "efs_not_recipient"
    EFS_UNLOCK_FAILED = "efs_unlock_failed"
    NLA_FAILED = "nla_failed"
    NLA_MISMATCH = "nla_mismatch"
    NOT_IN_DIRECTORY = "not_in_directory"
    DIRECTORY_UNAVAILABLE = "directory_unavailable"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_EXPIRED = "account_expired"
    SID_MISMATCH = "sid_mismatch"
    WEAK_MAPPING = "weak_mapping"
    CERTIFICATE_PREDATES_ACCOUNT = "certificate_predates_account"


class SignInRefused(RdscardError):  # noqa: N818 - the name the logon API promises
    """A sign-in attempt was refused for ``reason_code``; ``message`` says the cause and the fix.

    ``tries_left`` is set for a wrong PIN (the logon screen shows it).
    """

    def __init__(self, reason_code: ReasonCode, message: str, *,
                 tries_left: int | None = None) -> None:
        self.reason_code = reason_code
        self.message = message
        self.tries_left = tries_left
        super().__init__(message)

    def __repr__(self) -> str:
        return f"SignInRefused({self.reason_code.value!r}, {self.message!r})"
