"""Ways to reach a PIV card: PC/SC through pyscard, or a card object in this process.

Both offer ``transmit(apdu) -> response`` (response data followed by SW1 SW2),
which is all :class:`rdscard.pki.piv_client.PivClient` needs. pyscard loads
libpcsclite, which honours ``PCSCLITE_CSOCK_NAME`` itself, so an isolated
pcscd is reached by setting that variable before the first call.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, Self

from rdscard.errors import RdscardError


class TransportError(RdscardError):
    """The card cannot be reached; the message names the cause and the fix."""


class Transport(Protocol):
    """Anything that exchanges one command APDU for one response APDU."""

    def transmit(self, apdu: bytes) -> bytes: ...


class CardObject(Protocol):
    """A card living in this process (the virtual PIV card)."""

    def transmit(self, apdu: bytes) -> bytes: ...

    def power_on(self) -> bytes: ...


class InProcessTransport:
    """Talk to a card object directly: for unit tests and fast virtual-card creation."""

    def __init__(self, card: CardObject) -> None:
        self.card = card
        self.atr = card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        return self.card.transmit(apdu)

    def close(self) -> None:
        """Nothing to release; present for symmetry with :class:`PcscTransport`."""


def list_readers() -> list[str]:
    """Names of the PC/SC readers pcscd offers."""
    try:
        from smartcard.Exceptions import ListReadersException
        from smartcard.System import readers
    except ImportError:
        raise TransportError(
            "pyscard is not installed: install rdscard with the 'pcsc' extra (pip install pyscard)"
        ) from None
    try:
        return [str(r) for r in readers()]
    except ListReadersException as exc:
        raise TransportError(
            f"cannot list PC/SC readers ({exc}): is pcscd running and PCSCLITE_CSOCK_NAME right?"
        ) from None


class PcscTransport:
    """A card in a PC/SC reader: by name (exact, else unique substring) or the first with a card."""

    def __init__(self, reader: str | None = None) -> None:
        from smartcard.Exceptions import CardConnectionException, NoCardException
        from smartcard.System import readers

        names = list_readers()
        if not names:
            raise TransportError("no PC/SC reader found: plug in a reader or start vpcd")
        all_readers = {str(r): r for r in readers()}
        candidates: list[str]
        if reader is None:
            candidates = names
        elif reader in all_readers:
            candidates = [reader]
        else:
            candidates = [n for n in names if reader in n]
            if len(candidates) != 1:
                raise TransportError(
                    f"reader {reader!r} {'is ambiguous' if candidates else 'not found'}: "
                    f"readers are {', '.join(names)}"
                )
        self.connection: Any = None
        for name in candidates:
            connection = all_readers[name].createConnection()
            try:
                connection.connect()
            except (NoCardException, CardConnectionException):
                continue
            self.connection = connection
            self.reader = name
            break
        if self.connection is None:
            where = reader or "any reader"
            raise TransportError(f"no card in {where}: insert the card (readers: "
                                 f"{', '.join(names)})")
        self.atr = bytes(self.connection.getATR())

    def transmit(self, apdu: bytes) -> bytes:
        from smartcard.Exceptions import CardConnectionException

        try:
            data, sw1, sw2 = self.connection.transmit(list(apdu))
        except CardConnectionException as exc:
            raise TransportError(f"card in {self.reader} stopped answering ({exc}): "
                                 "was it removed?") from None
        return bytes(data) + bytes([sw1, sw2])

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.disconnect()
            finally:
                self.connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
