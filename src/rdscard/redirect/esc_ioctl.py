"""One MS-RDPESC IOCTL to the client's smart card device, and its decoded return.

The session's smart card calls reach the client as MS-RDPESC IOCTLs
(3.1.4) in rdpdr's Device Control requests (MS-RDPEFS 2.2.1.4.5):
:class:`IoctlChannel` sends one and gives back its output buffer.
:func:`decode_reply` decodes that buffer as the call's return (2.2.3) and
turns its ReturnCode into pcsc-lite's error, as
:class:`~rdscard.redirect.esc_backend.EscBackend` and its
:class:`~rdscard.redirect.reader_monitor.ReaderMonitor` need it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from rdscard.errors import ProtocolError
from rdscard.pdu.esc.base import NdrMessage
from rdscard.pdu.esc.constants import ScardReturn
from rdscard.pdu.esc.io import TransmitReturn
from rdscard.redirect import translate
from rdscard.redirect.backend import ScardError

log = logging.getLogger("rdscard.redirect")

Reply = TypeVar("Reply", bound=NdrMessage)


IoctlOutcome = bytes | ScardError
"""The output buffer of a completed IOCTL, or why it failed."""


class IoctlChannel(Protocol):
    """Sends one MS-RDPESC IOCTL to the client's smart card device."""

    async def ioctl(self, code: int, payload: bytes, *, timeout: float | None) -> bytes:
        """The output buffer of a completed IOCTL.

        Raises ScardError(SCARD_E_NO_SERVICE) when the device or the client
        is gone, and ScardError(SCARD_F_COMM_ERROR) when the client failed
        the I/O request itself.
        """
        ...

    def start_ioctl(
        self,
        code: int,
        payload: bytes,
        *,
        timeout: float | None,
        done: Callable[[IoctlOutcome], None],
    ) -> None:
        """Send the IOCTL; ``done`` gets what :meth:`ioctl` would return or raise, once.

        Raises ScardError at once when the IOCTL cannot be sent.
        """
        ...


def check_return(code: int) -> None:
    """Raise pcsc-lite's error for a Windows ReturnCode other than SCARD_S_SUCCESS."""
    if code != ScardReturn.SCARD_S_SUCCESS:
        raise ScardError(translate.error_from_windows(code))


def decode_reply(reply_type: type[Reply], output: bytes) -> Reply:
    """The client's return, checked; a malformed one is a communication error."""
    try:
        reply = reply_type.decode(output)
    except ProtocolError as exc:
        log.warning("malformed %s from the client: %s", reply_type.PDU, exc)
        raise ScardError(ScardReturn.SCARD_F_COMM_ERROR, str(exc)) from None
    check_return(getattr(reply, "return_code", 0))
    return reply


def transmit_result(reply: TransmitReturn, protocol: int) -> tuple[int, bytes]:
    """(pcsc-lite receive protocol, response) of a successful Transmit_Return.

    pcscd puts in ioRecvPci.dwProtocol what its reader driver leaves in the
    receive header (pcsc-lite winscard.c SCardTransmit), and pcscd numbers
    the protocols for drivers as T=0 -> 0, T=1 -> 1 (SCARD_IO_HEADER.Protocol);
    vpcd, for one, answers 1 for a T=1 card where a program might expect
    SCARD_PROTOCOL_T1 (2). A Transmit_Return without pioRecvPci (MS-RDPESC
    2.2.3.11; the usual shape, the call sends none) is given that number.
    """
    if reply.pio_recv_pci is not None:
        return (translate.protocols_from_windows(reply.pio_recv_pci.dw_protocol),
                reply.pb_recv_buffer or b"")
    return translate.driver_protocol(protocol), reply.pb_recv_buffer or b""


class EscCall(Protocol):
    """One IOCTL to the client: ``call`` (a message, or one already encoded), its return."""

    async def __call__(
        self,
        code: int,
        call: NdrMessage | bytes,
        reply_type: type[Reply],
        *,
        timeout: float | None = -1.0,
    ) -> Reply: ...
