"""The project's exception types.

Every decoder raises :class:`ProtocolError` for malformed input, naming the
PDU and the field at fault, so that a log line says exactly what was wrong.
"""

from __future__ import annotations


class RdscardError(Exception):
    """Base class of every error rdscard raises on purpose."""


class ProtocolError(RdscardError):
    """Malformed, truncated, oversized or inconsistent bytes from a peer.

    ``pdu`` names the message (for example ``"X.224 Connection Request"``),
    ``field`` the field being read when the problem was found.
    """

    def __init__(self, pdu: str, field: str, reason: str) -> None:
        self.pdu = pdu
        self.field = field
        self.reason = reason
        super().__init__(f"{pdu}: field {field}: {reason}")


class ConfigError(RdscardError):
    """A configuration file or command-line option is wrong; the message says how to fix it."""
