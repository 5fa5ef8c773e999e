"""EscBackend against an in-memory client that answers MS-RDPESC IOCTLs as FreeRDP does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from rdscard.pdu.esc.card import (
    ConnectReturn,
    ConnectWCall,
    HCardAndDispositionCall,
    StatusCall,
    StatusReturn,
)
from rdscard.pdu.esc.constants import ScardIoctl, ScardReaderState, ScardReturn
from rdscard.pdu.esc.context import (
    ContextCall,
    EstablishContextCall,
    EstablishContextReturn,
    ListReadersCall,
    ListReadersReturn,
    LongReturn,
)
from rdscard.pdu.esc.io import (
    ControlCall,
    ControlReturn,
    GetAttribCall,
    GetAttribReturn,
    SCardIORequest,
    TransmitCall,
    TransmitReturn,
)
from rdscard.pdu.esc.status_change import (
    GetStatusChangeReturn,
    GetStatusChangeWCall,
    ReaderStateReturn,
)
from rdscard.pdu.ndr import RedirScardContext, RedirScardHandle
from rdscard.redirect import translate
from rdscard.redirect.backend import ScardError
from rdscard.redirect.esc_backend import EscBackend

READER = "Virtual PCD 00 00"
ATR = bytes.fromhex("3bf81300008131fe15597562696b657934d4")
S = ScardReaderState
VENDOR_NAME = 0x00010100


class FakeClient:
    """One reader; the card can be removed and inserted; records the calls it got."""

    def __init__(self) -> None:
        self.present = True
        self.change = asyncio.Event()
        self.calls: list[tuple[int, object]] = []
        self.contexts = 0
        self.gone = False
        self.started: set[asyncio.Task[None]] = set()

    def event_state(self) -> int:
        return S.SCARD_STATE_PRESENT if self.present else S.SCARD_STATE_EMPTY

    async def ioctl(self, code: int, payload: bytes, *, timeout: float | None) -> bytes:
        if self.gone:
            raise ScardError(ScardReturn.SCARD_E_NO_SERVICE)
        if code == ScardIoctl.SCARD_IOCTL_ESTABLISHCONTEXT:
            EstablishContextCall.decode(payload)
            self.contexts += 1
            ctx = RedirScardContext(self.contexts.to_bytes(8, "little"))
            return EstablishContextReturn(0, ctx).encode()
        if code == ScardIoctl.SCARD_IOCTL_LISTREADERSW:
            ListReadersCall.decode(payload)
            msz = (READER + "\0\0").encode("utf-16-le")
            return ListReadersReturn.with_msz(0, msz).encode()
        if code == ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW:
            call = GetStatusChangeWCall.decode(payload)
            current = call.rg_reader_states[1].common.dw_current_state
            if current & 0xFFFF == self.event_state():
                await self.change.wait()
                self.change = asyncio.Event()
            states = (
                ReaderStateReturn(call.rg_reader_states[0].common.dw_current_state, 0, 0),
                ReaderStateReturn(
                    current, self.event_state() | S.SCARD_STATE_CHANGED,
                    len(ATR) if self.present else 0, ATR if self.present else b"",
                ),
            )
            return GetStatusChangeReturn(0, states).encode()
        if code == ScardIoctl.SCARD_IOCTL_CONNECTW:
            connect = ConnectWCall.decode(payload)
            self.calls.append((code, connect))
            handle = RedirScardHandle(connect.context, b"\x07\x00\x01\x00")
            return ConnectReturn(0, handle, connect.dw_preferred_protocols & 2).encode()
        if code == ScardIoctl.SCARD_IOCTL_TRANSMIT:
            transmit = TransmitCall.decode(payload)
            self.calls.append((code, transmit))
            if not self.present:
                return TransmitReturn(ScardReturn.SCARD_W_REMOVED_CARD, None, 0, None).encode()
            return TransmitReturn(0, SCardIORequest(2), 2, b"\x90\x00").encode()
        if code == ScardIoctl.SCARD_IOCTL_CONTROL:
            control = ControlCall.decode(payload)
            self.calls.append((code, control))
            out = control.dw_control_code.to_bytes(4, "little")
            return ControlReturn(0, len(out), out).encode()
        if code == ScardIoctl.SCARD_IOCTL_STATUSW:
            self.calls.append((code, StatusCall.decode(payload)))
            names = (READER + "\0\0").encode("utf-16-le")
            return StatusReturn(0, len(names), names, 6, 2, ATR, len(ATR)).encode()
        if code == ScardIoctl.SCARD_IOCTL_GETATTRIB:
            attrib = GetAttribCall.decode(payload)
            self.calls.append((code, attrib))
            if attrib.dw_attr_id == VENDOR_NAME:
                return GetAttribReturn(0, len(b"vpcd"), b"vpcd").encode()
        if code in (ScardIoctl.SCARD_IOCTL_DISCONNECT, ScardIoctl.SCARD_IOCTL_BEGINTRANSACTION,
                    ScardIoctl.SCARD_IOCTL_ENDTRANSACTION):
            self.calls.append((code, HCardAndDispositionCall.decode(payload)))
            return LongReturn(0).encode()
        if code in (ScardIoctl.SCARD_IOCTL_RELEASECONTEXT, ScardIoctl.SCARD_IOCTL_CANCEL):
            self.calls.append((code, ContextCall.decode(payload)))
            return LongReturn(0).encode()
        return LongReturn(ScardReturn.SCARD_E_UNSUPPORTED_FEATURE).encode()


    def start_ioctl(
        self, code: int, payload: bytes, *, timeout: float | None,
        done: Callable[[bytes | ScardError], None],
    ) -> None:
        if self.gone:
            raise ScardError(ScardReturn.SCARD_E_NO_SERVICE)

        async def answer() -> None:
            try:
                done(await self.ioctl(code, payload, timeout=timeout))
            except ScardError as exc:
                done(exc)

        self.started.add(asyncio.get_running_loop().create_task(answer()))


async def table_settles(backend: EscBackend, state_bit: int) -> None:
    for _ in range(100):
        readers = backend.readers()
        if readers and readers[0].state & state_bit:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"reader table never showed state {state_bit:#x}: {backend.readers()}")


def test_reader_table_calls_and_translation() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend = EscBackend(client)
        backend.start()
        await table_settles(backend, translate.PCSC_PRESENT)
        (reader,) = backend.readers()
        assert reader.name == READER and reader.atr == ATR
        assert reader.state == translate.PCSC_PRESENT | translate.PCSC_POWERED | (
            translate.PCSC_NEGOTIABLE
        )

        context = await backend.establish_context(0)
        handle, protocol = await backend.connect(context, READER, 2, translate.PCSC_T1)
        assert protocol == translate.PCSC_T1
        assert backend.readers()[0].protocol == translate.PCSC_T1
        assert await backend.transmit(handle, translate.PCSC_T1, b"\x00\xa4\x04\x00", 258) == (
            translate.PCSC_T1, b"\x90\x00"
        )
        # pcsc-lite SCARD_CTL_CODE(3400) reaches the client as CTL_CODE(0x31, 3400, 0, 0)
        answer = await backend.control(handle, 0x42000000 + 3400, b"", 256)
        assert int.from_bytes(answer, "little") == 0x00310000 | (3400 << 2)
        status = await backend.status(handle)
        assert (status.reader, status.protocol, status.atr) == (READER, translate.PCSC_T1, ATR)

        waiter = asyncio.create_task(backend.wait_for_reader_change())
        await asyncio.sleep(0.01)
        client.present = False
        client.change.set()
        await asyncio.wait_for(waiter, 2)
        await table_settles(backend, translate.PCSC_ABSENT)
        assert backend.readers()[0].atr == b""
        with pytest.raises(ScardError) as removed:
            await backend.transmit(handle, translate.PCSC_T1, b"\x00\xb0\x00\x00\x00", 258)
        assert removed.value.code == ScardReturn.SCARD_W_REMOVED_CARD

        await backend.disconnect(handle, 0)
        with pytest.raises(ScardError) as invalid:
            await backend.transmit(handle, translate.PCSC_T1, b"\x00", 2)
        assert invalid.value.code == ScardReturn.SCARD_E_INVALID_HANDLE

        waiter = asyncio.create_task(backend.wait_for_reader_change())
        await backend.close()
        await asyncio.wait_for(waiter, 1)  # the client going away wakes every waiter
        assert backend.readers() == []
        with pytest.raises(ScardError) as gone:
            await backend.establish_context(0)
        assert gone.value.code == ScardReturn.SCARD_E_NO_SERVICE

    asyncio.run(scenario())


def test_a_started_transmit_reports_its_outcome_once() -> None:
    async def scenario() -> None:
        client = FakeClient()
        backend = EscBackend(client)
        context = await backend.establish_context(0)
        handle, _ = await backend.connect(context, READER, 2, translate.PCSC_T1)
        outcomes: list[object] = []
        done = asyncio.Event()

        def record(outcome: object) -> None:
            outcomes.append(outcome)
            done.set()

        backend.start_transmit(handle, translate.PCSC_T1, b"\x00\xa4\x04\x00", 258, record)
        await asyncio.wait_for(done.wait(), 2)
        assert outcomes == [(translate.PCSC_T1, b"\x90\x00")]
        sent = client.calls[-1][1]
        assert isinstance(sent, TransmitCall) and sent.pb_send_buffer == b"\x00\xa4\x04\x00"

        client.present = False  # the card answers SCARD_W_REMOVED_CARD
        done.clear()
        backend.start_transmit(handle, translate.PCSC_T1, b"\x00", 2, record)
        await asyncio.wait_for(done.wait(), 2)
        error = outcomes[-1]
        assert isinstance(error, ScardError) and error.code == ScardReturn.SCARD_W_REMOVED_CARD

        with pytest.raises(ScardError) as invalid:  # refused at once, no callback
            backend.start_transmit(b"nope", translate.PCSC_T1, b"\x00", 2, record)
        assert invalid.value.code == ScardReturn.SCARD_E_INVALID_HANDLE
        await backend.close()
        with pytest.raises(ScardError) as gone:
            backend.start_transmit(handle, translate.PCSC_T1, b"\x00", 2, record)
        assert gone.value.code == ScardReturn.SCARD_E_NO_SERVICE
        assert len(outcomes) == 2

    asyncio.run(scenario())


def test_translation_tables() -> None:
    assert translate.protocols_to_windows(translate.PCSC_RAW | translate.PCSC_T0) == 0x10001
    assert translate.protocols_from_windows(0x10002) == translate.PCSC_RAW | translate.PCSC_T1
    for n in (1, 3400, 0xFFF):
        code = 0x42000000 + n
        assert translate.control_code_from_windows(translate.control_code_to_windows(code)) == code
    bits, sharing = translate.reader_state_from_windows(
        S.SCARD_STATE_PRESENT | S.SCARD_STATE_EXCLUSIVE
    )
    assert bits & translate.PCSC_PRESENT and sharing == translate.SHARING_EXCLUSIVE
    assert translate.reader_state_from_windows(S.SCARD_STATE_EMPTY) == (translate.PCSC_ABSENT, 0)
    assert translate.card_state_from_windows(6) & translate.PCSC_SPECIFIC


def test_unsupported_feature_reaches_programs_as_pcsc_lite_spells_it() -> None:
    assert translate.error_from_windows(0x80100022) == 0x8010001F
    assert translate.error_from_windows(ScardReturn.SCARD_W_REMOVED_CARD) == 0x80100069

    async def scenario() -> None:
        backend = EscBackend(FakeClient())
        context = await backend.establish_context(0)
        handle, _ = await backend.connect(context, READER, 2, translate.PCSC_T1)
        with pytest.raises(ScardError) as unsupported:
            await backend.get_attrib(handle, 0x00090300, 32)  # the fake client refuses it
        assert unsupported.value.code == 0x8010001F

    asyncio.run(scenario())


class RdesktopConnectClient(FakeClient):
    """Answers Connect as rdesktop 1.9 does: hCard with an empty Context."""

    async def ioctl(self, code: int, payload: bytes, *, timeout: float | None) -> bytes:
        if code == ScardIoctl.SCARD_IOCTL_CONNECTW:
            connect = ConnectWCall.decode(payload)
            self.calls.append((code, connect))
            handle = RedirScardHandle(RedirScardContext(b""), b"\x03\x00\x00\x00")
            return ConnectReturn(0, handle, 2).encode()
        return await super().ioctl(code, payload, timeout=timeout)


def test_a_handle_returned_without_its_context_is_sent_with_the_connect_context() -> None:
    # rdesktop reads every later call at fixed offsets that assume the context it issued.
    async def scenario() -> None:
        client = RdesktopConnectClient()
        backend = EscBackend(client)
        context = await backend.establish_context(0)
        handle, _ = await backend.connect(context, READER, 2, translate.PCSC_T1)
        await backend.transmit(handle, translate.PCSC_T1, b"\x00\xa4\x04\x00", 258)
        await backend.disconnect(handle, 0)
        await backend.settled()  # the client's disconnect follows the answer
        connect = next(call for code, call in client.calls
                       if code == ScardIoctl.SCARD_IOCTL_CONNECTW)
        assert isinstance(connect, ConnectWCall)
        sent = [call.h_card for code, call in client.calls
                if isinstance(call, TransmitCall | HCardAndDispositionCall)]
        assert len(sent) == 2
        assert all(h == RedirScardHandle(connect.context, b"\x03\x00\x00\x00") for h in sent)
        await backend.close()

    asyncio.run(scenario())
