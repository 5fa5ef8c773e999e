"""The monitor IPC codec and channel: every message round-trips, anything else is refused."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdscard.errors import ProtocolError, RdscardError
from rdscard.privsep import ipc
from rdscard.privsep.channel import IpcChannel, IpcClosedError, Reply
from rdscard.secret import Secret

SAMPLES: list[ipc.Message] = [
    ipc.OpenCardSocket(7),
    ipc.CloseCardSocket(7),
    ipc.SignIn(3, 1, "127.0.0.1:5000", "vm", "Virtual PCD 00 00", "alice", "EXAMPLE", "",
               False, Secret(b"123456")),
    ipc.SignIn(4, 2, "127.0.0.1:5001", "vm", "Virtual PCD 00 00", "", "", "", True, Secret()),
    ipc.CredSsp(4, "127.0.0.1:5001", bytes.fromhex("3005a003020106")),
    ipc.CredSspReply("continue", bytes.fromhex("3005a003020106"), "", "", "", False),
    ipc.CredSspReply("done", b"", "alice@EXAMPLE.TEST", "alice", "", False),
    ipc.CredSspReply("refused", bytes.fromhex("300ba003020106a4040204c000006d"),
                     "alice@EXAMPLE.TEST", "", "the card is not alice's", True),
    ipc.StartDesktop(3, 1024, 768, 0x409, "127.0.0.1"),
    ipc.EndDesktop(3),
    ipc.TakeOver(1, 3),
    ipc.SessionEnded(3),
    ipc.SessionLocked(3),
    ipc.Transmit(1, bytes.fromhex("00a4040009a00000030800001000")),
    ipc.DesktopEnded(3, "the session command exited"),
    ipc.Done("/run/rdscard/session-7/pcscd.comm"),
    ipc.Failed("no session 9"),
    ipc.TransmitReply(b"\x90\x00"),
    ipc.SignedInReply("alice", 1001, 1001, "alice@example.test", "EXAMPLE.TEST",
                      "alice@EXAMPLE.TEST", "kerberos", "CN=Alice", "5A0F" * 10,
                      "FILE:/run/rdscard/krb5/x/ccache", 1.8e9, '{"PIN verify": 0.01}'),
    ipc.RefusedReply("wrong_pin", "Wrong PIN: 2 tries left", 2),
    ipc.DesktopReply(":12", os.urandom(16), "/run/rdscard/desktop-3/Xauthority"),
    ipc.ControlRequest('{"command": "list"}'),
    ipc.ControlReply(b'{"sessions": []}'),
]


def _same(a: ipc.Message, b: ipc.Message) -> bool:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, Secret):
            if bytes(x.reveal()) != bytes(y.reveal()):
                return False
        elif x != y:
            return False
    return type(a) is type(b)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_with_its_request_id(message: ipc.Message) -> None:
    decoded, request_id = ipc.decode(ipc.encode(message, 0xFEDCBA98))
    assert request_id == 0xFEDCBA98
    assert _same(decoded, message)


def test_the_pin_is_decoded_into_a_secret_and_a_truncated_sign_in_wipes_it() -> None:
    data = ipc.encode(SAMPLES[2], 1)
    decoded, _ = ipc.decode(data)
    assert isinstance(decoded, ipc.SignIn) and isinstance(decoded.pin, Secret)
    assert "123456" not in repr(decoded)
    with pytest.raises(ProtocolError, match="truncated"):
        ipc.decode(data[:-2])


@pytest.mark.parametrize("data, why", [
    (b"", "header"),
    (b"\x63\x00\x01\x00\x00\x00", "unknown message kind"),
    (ipc.encode(ipc.EndDesktop(3), 1) + b"\x00", "trailing"),
    (bytes(ipc.encode(ipc.Failed("x"), 1))[:6] + b"\xff\xff" + b"x", "more than"),
    (bytes(ipc.encode(ipc.Failed("\xe9"), 1))[:8] + b"\xff\xfe", "not UTF-8"),
    (bytes(ipc.encode(ipc.TransmitReply(b""), 1))[:6] + b"\xff\xff\xff\x7f", "more than"),
    (bytes(10**5), "more than"),
])
def test_malformed_datagrams_are_refused_with_the_protocol_error(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        ipc.decode(data)


def test_a_non_finite_number_is_refused() -> None:
    reply = ipc.SignedInReply("a", 1, 1, "", "", "", "local", "", "1", "", float("nan"), "")
    data = bytearray(ipc.encode(dataclasses.replace(reply, expires=0.0), 1))
    encoded_nan = ipc.encode(reply, 1)
    assert data != encoded_nan
    with pytest.raises(ProtocolError, match="finite"):
        ipc.decode(encoded_nan)


def test_oversized_fields_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError):
        ipc.encode(ipc.Failed("x" * (ipc.MAX_TEXT + 1)), 1)
    with pytest.raises(ValueError):
        ipc.encode(ipc.StartDesktop(1 << 63, 1, 1, 1, ""), 1)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_the_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        ipc.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.integers(0, 200), st.integers(0, 255))
def test_corrupted_messages_decode_or_raise_the_protocol_error(
        message: ipc.Message, where: int, value: int) -> None:
    data = bytearray(ipc.encode(message, 5))
    data[where % len(data)] = value
    with contextlib.suppress(ProtocolError):
        ipc.decode(data)


# -- the channel over a real socket pair -----------------------------------------------------
def test_requests_replies_descriptors_and_malformed_datagrams() -> None:
    async def main() -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        seen: list[ipc.Message] = []

        async def monitor(message: ipc.Message, fds: list[socket.socket]) -> Reply | None:
            seen.append(message)
            if isinstance(message, ipc.OpenCardSocket):
                left, right = socket.socketpair()
                right.sendall(b"through the descriptor")
                right.close()
                return ipc.Done("here"), [left]
            if isinstance(message, ipc.SessionEnded):
                return None
            raise RdscardError("no such thing")

        async def network(message: ipc.Message, fds: list[socket.socket]) -> Reply | None:
            raise AssertionError("not called")

        server = IpcChannel(a, monitor, peer="network process")
        client = IpcChannel(b, network, peer="monitor")
        server.start()
        client.start()
        reply, fds = await client.request(ipc.OpenCardSocket(4))
        assert reply == ipc.Done("here") and len(fds) == 1
        assert fds[0].recv(100) == b"through the descriptor"
        fds[0].close()
        with pytest.raises(RdscardError, match="no such thing"):
            await client.request(ipc.EndDesktop(4))
        client.notify(ipc.SessionEnded(4))
        b.send(b"\x01\x02")  # garbage: dropped and counted, the channel goes on
        reply, _ = await client.request(ipc.OpenCardSocket(5))
        assert reply == ipc.Done("here")
        assert server.malformed == 1
        assert ipc.SessionEnded(4) in seen
        pending = asyncio.ensure_future(client.request(ipc.EndDesktop(9)))
        await asyncio.sleep(0)
        server.close()  # the monitor goes: the pending request fails, it does not hang
        with pytest.raises(IpcClosedError):
            await asyncio.wait_for(pending, 5)
        client.close()

    asyncio.run(main())
