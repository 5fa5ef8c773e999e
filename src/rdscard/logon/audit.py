"""The sign-in audit log: one JSON object per line, appended and synced to disk.

Every attempt, accepted or refused, is one line::

    {"time": "2026-11-26T00:12:03.123456+00:00", "client_address": "192.0.2.7:51234",
     "client_name": "LAPTOP7", "reader": "Virtual PCD 00 00",
     "subject": "CN=alice (Authentication),O=...", "issuer": "CN=... Issuing CA,O=...",
     "serial": "4F1A...", "upn": "alice@example.test", "account": "alice",
     "principal": "alice@EXAMPLE.TEST", "mode": "kerberos", "result": "success",
     "reason": "", "message": ""}

The file is created with mode 0600 (it names users and clients). A record
has no field for a PIN, and the messages it carries come from
:class:`~rdscard.logon.refusal.SignInRefused`, which never holds one.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from rdscard.logon.refusal import SignInRefused
from rdscard.private_files import make_private_dir, open_private_file

MAX_FIELD: Final = 1024
MAX_LINE: Final = 16 * 1024


class AuditResult(StrEnum):
    """How an attempt ended."""

    SUCCESS = "success"
    REFUSED = "refused"


@dataclass(frozen=True)
class AuditRecord:
    """One sign-in attempt. Empty strings for what is not known (yet)."""

    time: datetime.datetime
    result: AuditResult
    client_address: str = ""
    client_name: str = ""
    reader: str = ""
    subject: str = ""
    issuer: str = ""
    serial: str = ""
    upn: str = ""
    account: str = ""
    principal: str = ""
    mode: str = ""
    reason: str = ""
    message: str = ""
    #: what was allowed with a warning (strong certificate mapping in compatibility mode)
    warning: str = ""

    @classmethod
    def refused(cls, time: datetime.datetime, refusal: SignInRefused,
                **fields: str) -> AuditRecord:
        """A refused attempt, with the refusal's reason code and message."""
        return cls(time=time, result=AuditResult.REFUSED, reason=refusal.reason_code.value,
                   message=refusal.message, **fields)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["time"] = self.time.astimezone(datetime.UTC).isoformat()
        doc["result"] = self.result.value
        for key, value in doc.items():
            if isinstance(value, str) and len(value) > MAX_FIELD:
                doc[key] = value[:MAX_FIELD] + "..."
        return doc

    def line(self) -> bytes:
        """The JSON line (with its newline), ASCII only: control characters are escaped."""
        data = (json.dumps(self.to_json(), ensure_ascii=True, separators=(", ", ": "))
                + "\n").encode("ascii")
        if len(data) > MAX_LINE:
            raise ValueError("audit record too long")
        return data


def serial_hex(serial: int) -> str:
    """A certificate serial number as upper-case hex, the way certutil shows it."""
    return f"{serial:X}"


class AuditLog:
    """Appends :class:`AuditRecord` lines to ``path`` (created 0600, fsync after each)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def append(self, record: AuditRecord) -> None:
        """Write one line with a single append and sync it to disk."""
        data = record.line()
        make_private_dir(self.path.parent)
        fd = open_private_file(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to the audit log {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self, limit: int = 100_000) -> list[dict[str, Any]]:
        """The records written so far (for administrators and tests)."""
        out: list[dict[str, Any]] = []
        try:
            with self.path.open("rb") as f:
                for raw in f:
                    if len(out) == limit:
                        break
                    out.append(json.loads(raw))
        except FileNotFoundError:
            return []
        return out
