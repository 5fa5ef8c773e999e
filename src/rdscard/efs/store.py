"""Where enrollments live: one envelope and one record per account, root-only.

``DIR/ACCOUNT.p7m`` is the DER ContentInfo (RFC 5652) holding the fscrypt
master key for the user's 9D certificate and the recovery agents (a
recovery agent opens it with ``openssl cms -decrypt -inform DER``);
``DIR/ACCOUNT.json`` records the encrypted directory, the key identifier
and the recipients' certificates (public). The directory is 0700 and the
files 0600, written atomically.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rdscard.errors import RdscardError
from rdscard.private_files import make_private_dir

FORMAT: Final = 1
ACCOUNT_NAME: Final = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$", re.IGNORECASE)


class StoreError(RdscardError):
    """An enrollment record is missing or unusable."""


def check_account(account: str) -> str:
    if not ACCOUNT_NAME.match(account):
        raise StoreError(f"{account!r} is not a local account name")
    return account


@dataclass(frozen=True)
class Enrollment:
    """One account's encrypted directory and the envelope of its key."""

    account: str
    uid: int
    directory: Path
    key_identifier: bytes
    card_certificate: x509.Certificate
    recovery_certificates: tuple[x509.Certificate, ...]
    envelope: bytes
    enrolled: str = ""

    @property
    def recipients(self) -> tuple[x509.Certificate, ...]:
        return (self.card_certificate, *self.recovery_certificates)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class EnvelopeStore:
    """The enrollments under one directory (``[efs] envelope_dir``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _paths(self, account: str) -> tuple[Path, Path]:
        check_account(account)
        return self.directory / f"{account}.json", self.directory / f"{account}.p7m"

    def accounts(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json")
                      if ACCOUNT_NAME.match(p.stem))

    def load(self, account: str) -> Enrollment | None:
        """The account's enrollment, or None when it has none."""
        meta_path, envelope_path = self._paths(account)
        try:
            doc = json.loads(meta_path.read_text(encoding="utf-8"))
            envelope = envelope_path.read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"the enrollment of {account} cannot be read: {exc}") from None
        try:
            if doc["format"] != FORMAT or doc["account"] != account:
                raise ValueError("not a record of this account")
            return Enrollment(
                account=account, uid=int(doc["uid"]), directory=Path(doc["directory"]),
                key_identifier=bytes.fromhex(doc["key_identifier"]),
                card_certificate=x509.load_pem_x509_certificate(
                    doc["card_certificate"].encode("ascii")),
                recovery_certificates=tuple(
                    x509.load_pem_x509_certificate(c.encode("ascii"))
                    for c in doc["recovery_certificates"]),
                envelope=envelope, enrolled=str(doc.get("enrolled", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"the enrollment record of {account} is damaged: {exc}") from None

    def save(self, enrollment: Enrollment) -> None:
        """Write the envelope, then the record (each atomically, 0600)."""
        meta_path, envelope_path = self._paths(enrollment.account)
        make_private_dir(self.directory)
        doc: dict[str, Any] = {
            "format": FORMAT, "account": enrollment.account, "uid": enrollment.uid,
            "directory": str(enrollment.directory),
            "key_identifier": enrollment.key_identifier.hex(),
            "card_certificate": _pem(enrollment.card_certificate),
            "recovery_certificates": [_pem(c) for c in enrollment.recovery_certificates],
            "enrolled": enrollment.enrolled or datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds"),
        }
        _write(envelope_path, enrollment.envelope)
        _write(meta_path, json.dumps(doc, indent=1).encode("utf-8"))

    def remove(self, account: str) -> None:
        for path in self._paths(account):
            path.unlink(missing_ok=True)


def _write(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
