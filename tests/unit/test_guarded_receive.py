"""Received bytes that may hold the PIN: the SecretBuffer and the acceptor's guarded lane."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdscard.errors import ProtocolError
from rdscard.pdu.client_info import ClientInfo, InfoFlag
from rdscard.protocol.acceptor import AcceptorSettings, RdpAcceptor
from rdscard.protocol.connector import ConnectorSettings, RdpConnector
from rdscard.protocol.events import ClientInfoReceived, Phase, StartTls
from rdscard.secret import Secret, SecretBuffer
from rdscard.server.tls import (
    SSL_OP_CLEANSE_PLAINTEXT,
    ensure_server_certificate,
    server_ssl_context,
)
from tests.unit.test_acceptor import pump

PIN = b"24681357"


def test_secret_buffer_zeroes_what_it_consumes() -> None:
    buf = SecretBuffer(16)
    buf.append(b"abcdef")
    view = buf.view()
    storage = view.obj
    assert bytes(view) == b"abcdef"
    view.release()
    buf.consume(4)
    assert bytes(buf.view()) == b"ef"
    assert bytes(storage) == b"ef" + bytes(len(storage) - 2)
    buf.consume(10)
    assert len(buf) == 0 and not any(storage)


def test_secret_buffer_growth_zeroes_the_old_storage() -> None:
    buf = SecretBuffer(16)
    buf.append(b"0123456789")
    old = buf.free(1).obj
    free = buf.free(100)  # grows: the bytes move, the old storage is zeroed
    assert len(free) >= 100 and free.obj is not old
    assert not any(old)
    free[:3] = b"xyz"
    buf.commit(3)
    assert bytes(buf.view()) == b"0123456789xyz"
    with pytest.raises(ValueError):
        buf.commit(len(free))
    buf.wipe()
    assert len(buf) == 0 and not any(free.obj)
    assert "0123" not in repr(buf)


def feed_like_the_connection(server: RdpAcceptor, data: bytes, step: int) -> None:
    """What the server's connection does: a view of its own buffer, zeroed after each call."""
    for start in range(0, len(data), step):
        own = bytearray(data[start:start + step])
        view = memoryview(own)
        server.receive(view)
        view.release()
        own[:] = bytes(len(own))


@pytest.mark.parametrize("step", [1, 7, 1 << 16])
def test_the_guarded_lane_decodes_the_client_info_from_views(step: int) -> None:
    server = RdpAcceptor(AcceptorSettings(session_id=3))
    client = RdpConnector(ConnectorSettings(user_name="alice", pin=PIN, channels=("rdpdr",)))
    events: list[object] = []
    assert server.guarding
    for _ in range(100):
        to_server = client.data_to_send()
        if to_server:
            feed_like_the_connection(server, to_server, step)
        events.extend(server.events())
        if server.phase is Phase.TLS_HANDSHAKE and any(isinstance(e, StartTls) for e in events):
            client.receive(server.data_to_send())
            server.tls_established()
            client.tls_established()
            continue
        if any(isinstance(e, ClientInfoReceived) for e in events):
            assert not server.guarding  # the rest of the session takes the ordinary path
        to_client = server.data_to_send()
        if to_client:
            client.receive(to_client)
        if not to_server and not to_client:
            break
    assert server.phase is Phase.ACTIVE
    info = next(e for e in events if isinstance(e, ClientInfoReceived)).info
    assert bytes(info.password.reveal()) == PIN
    assert info.user_name == "alice"


def test_the_guarded_lane_ends_after_the_client_info_with_bytes_as_before() -> None:
    server = RdpAcceptor(AcceptorSettings())
    client = RdpConnector(ConnectorSettings(pin=PIN))
    pump(server, client)
    assert not server.guarding and server.phase is Phase.ACTIVE


def sample_info(**kwargs: object) -> bytes:
    info = ClientInfo(0x409, InfoFlag.INFO_UNICODE | InfoFlag.INFO_PASSWORD_IS_SC_PIN,
                      "EXAMPLE", "alice", Secret(PIN), **kwargs)  # type: ignore[arg-type]
    return info.encode()


def test_client_info_from_a_view_is_decoded_as_from_bytes() -> None:
    raw = sample_info()
    own = bytearray(raw)
    from_view = ClientInfo.decode(memoryview(own))
    from_bytes = ClientInfo.decode(raw)
    assert bytes(from_view.password.reveal()) == bytes(from_bytes.password.reveal()) == PIN
    assert (from_view.domain, from_view.user_name) == ("EXAMPLE", "alice")
    assert from_view.extra_info == from_bytes.extra_info
    assert own == raw  # the caller's buffer is read, not changed: the caller wipes it


@given(st.integers(min_value=0), st.binary(max_size=4))
def test_a_truncated_or_damaged_client_info_view_raises_protocol_error(
    cut: int, tail: bytes
) -> None:
    raw = sample_info()
    data = bytearray(raw[: cut % (len(raw) + 1)] + tail)
    with contextlib.suppress(ProtocolError):
        ClientInfo.decode(memoryview(data))


def test_the_tls_context_cleanses_plaintext_after_reading(tmp_path: Path) -> None:
    assert ssl.OPENSSL_VERSION_INFO >= (3, 0)  # Debian 12: OpenSSL 3.0
    context = server_ssl_context(ensure_server_certificate(tmp_path, None, None, "rdsh.test"))
    assert context.options & SSL_OP_CLEANSE_PLAINTEXT
