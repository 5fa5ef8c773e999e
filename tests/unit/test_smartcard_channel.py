"""The rdpdr channel adapter: IOCTL completions, deadlines, and the channel going away."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from rdscard.config import RedirectionConfig
from rdscard.pdu.esc.constants import ScardIoctl, ScardReturn
from rdscard.pdu.rdpdr import (
    SMARTCARD_CAPABILITY,
    ClientAnnounceReply,
    ClientCoreCapabilityResponse,
    ClientDeviceListAnnounceRequest,
    ClientNameRequest,
    DeviceAnnounce,
    DeviceType,
    GeneralCapabilitySet,
)
from rdscard.pdu.rdpdr_io import DeviceControlRequest, DeviceControlResponse
from rdscard.redirect.backend import ScardError
from rdscard.server.channels import ChannelContext
from rdscard.server.control import describe
from rdscard.server.sessions import SessionInfo, SessionLogger
from rdscard.server.smartcard_channel import SmartCardChannel

DEVICE = 7


async def ready_channel(
    tmp_path: Path, call_timeout: float
) -> tuple[SmartCardChannel, list[bytes]]:
    """A channel whose client finished the handshake and announced a smart card device."""
    sent: list[bytes] = []
    info = SessionInfo(session_id=3, peer="test")
    context = ChannelContext(info, SessionLogger(logging.getLogger("test"), {"session_id": 3}),
                             sent.append)
    config = RedirectionConfig(socket_dir=tmp_path / "run", call_timeout=call_timeout)
    channel = SmartCardChannel(context, config)
    channel.on_data(ClientAnnounceReply(3).encode())
    channel.on_data(ClientNameRequest("test").encode())
    general = GeneralCapabilitySet(special_type_device_cap=1)
    channel.on_data(ClientCoreCapabilityResponse((general, SMARTCARD_CAPABILITY)).encode())
    device = DeviceAnnounce(DeviceType.RDPDR_DTYP_SMARTCARD, DEVICE, "SCARD")
    channel.on_data(ClientDeviceListAnnounceRequest((device,)).encode())
    assert channel.device_ready.is_set()
    sent.clear()
    return channel, sent


def test_an_unanswered_ioctl_fails_at_its_deadline_and_an_answered_one_never_does(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        channel, sent = await ready_channel(tmp_path, 0.3)
        outcomes: list[tuple[float, object]] = []
        started = time.monotonic()

        def record(outcome: object) -> None:
            outcomes.append((time.monotonic() - started, outcome))

        channel.start_ioctl(ScardIoctl.SCARD_IOCTL_TRANSMIT, b"late", timeout=0.3, done=record)
        channel.start_ioctl(ScardIoctl.SCARD_IOCTL_TRANSMIT, b"fast", timeout=0.3, done=record)
        channel.start_ioctl(ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW, b"wait", timeout=None,
                            done=record)
        requests = [DeviceControlRequest.decode(message) for message in sent[-3:]]
        fast = requests[1]
        channel.on_data(DeviceControlResponse(DEVICE, fast.completion_id, 0, b"ok").encode())
        assert outcomes[0][1] == b"ok"
        # each IOCTL sent is counted in the session's record (rdscard session, the control socket)
        assert channel.context.session.smart_card_calls == {
            ScardIoctl.SCARD_IOCTL_TRANSMIT: 2, ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW: 1}
        assert describe(channel.context.session)["smart_card_calls"] == {
            "GETSTATUSCHANGEW": 1, "TRANSMIT": 2}
        await asyncio.sleep(0.6)
        assert len(outcomes) == 2, outcomes  # the late one timed out; the infinite wait did not
        elapsed, error = outcomes[1]
        assert isinstance(error, ScardError) and error.code == ScardReturn.SCARD_E_TIMEOUT
        assert 0.25 <= elapsed <= 0.55
        await channel.close()  # the wait ends with the channel
        assert len(outcomes) == 3 and isinstance(outcomes[2][1], ScardError)

    asyncio.run(scenario())


def test_an_idle_channel_arms_no_timer(tmp_path: Path) -> None:
    async def scenario() -> None:
        channel, _ = await ready_channel(tmp_path, 30.0)
        channel.start_ioctl(ScardIoctl.SCARD_IOCTL_GETSTATUSCHANGEW, b"wait", timeout=None,
                            done=lambda _outcome: None)
        assert channel._expiry is None  # no timer while only infinite waits are pending
        await channel.close()

    asyncio.run(scenario())


def test_bad_replies_are_dropped_with_a_log_line_and_the_channel_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        channel, sent = await ready_channel(tmp_path, 30.0)
        outcomes: list[object] = []
        channel.start_ioctl(ScardIoctl.SCARD_IOCTL_TRANSMIT, b"a", timeout=30.0,
                            done=outcomes.append)
        channel.start_ioctl(ScardIoctl.SCARD_IOCTL_TRANSMIT, b"b", timeout=30.0,
                            done=outcomes.append)
        first, second = (DeviceControlRequest.decode(m).completion_id for m in sent[-2:])
        # A stray completion id: dropped, nothing completes.
        channel.on_data(DeviceControlResponse(DEVICE, 999_999, 0, b"stray").encode())
        assert outcomes == []
        # An OutputBufferLength larger than the message: that call fails now, as a comm error.
        good = DeviceControlResponse(DEVICE, first, 0, b"abc").encode()
        channel.on_data(good[:16] + (0x7FFFFFFF).to_bytes(4, "little") + good[20:])
        (error,) = outcomes
        assert isinstance(error, ScardError) and error.code == ScardReturn.SCARD_F_COMM_ERROR
        # The channel still carries the other call.
        channel.on_data(DeviceControlResponse(DEVICE, second, 0, b"ok").encode())
        assert outcomes[1] == b"ok"
        assert channel.machine.bad_completions == 2
        await channel.close()

    with caplog.at_level(logging.WARNING, logger="test"):
        asyncio.run(scenario())
    drops = [r.getMessage() for r in caplog.records if "dropped a bad reply" in r.getMessage()]
    assert len(drops) == 2
    assert "no request pending with id 999999" in drops[0]
    assert "OutputBuffer" in drops[1] and "abc" not in drops[1]
