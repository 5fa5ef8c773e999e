"""Per-address connection limits and the refusal a refused client receives."""

from __future__ import annotations

import pytest

from rdscard.config import ServerConfig
from rdscard.errors import ProtocolError
from rdscard.pdu import tpkt, x224
from rdscard.server.admission import REFUSAL_CODE, Admission, address_key, refusal_confirm


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_connections_per_address() -> None:
    admission = Admission(ServerConfig(max_connections_per_address=2, connection_rate=0))
    assert admission.admit("10.0.0.1") is None
    assert admission.admit("10.0.0.1") is None
    refused = admission.admit("10.0.0.1")
    assert refused is not None and "max_connections_per_address" in refused
    assert admission.admit("10.0.0.2") is None  # another address is not affected
    admission.release("10.0.0.1")
    assert admission.admit("10.0.0.1") is None
    assert admission.open_connections("10.0.0.1") == 2 and admission.total == 3


def test_connection_rate_is_a_token_bucket_per_address() -> None:
    clock = Clock()
    admission = Admission(ServerConfig(max_connections_per_address=0, connection_rate=5), clock)
    for _ in range(5):
        assert admission.admit("10.0.0.1") is None
        admission.release("10.0.0.1")
    refused = admission.admit("10.0.0.1")
    assert refused is not None and "connection_rate" in refused
    assert admission.admit("10.0.0.2") is None
    clock.now = 2.0  # 5 per 10 s: one more after 2 s
    assert admission.admit("10.0.0.1") is None
    assert admission.admit("10.0.0.1") is not None


def test_server_wide_limit() -> None:
    admission = Admission(ServerConfig(max_connections=1, connection_rate=0))
    assert admission.admit("10.0.0.1") is None
    refused = admission.admit("10.0.0.2")
    assert refused is not None and "server.max_connections" in refused


@pytest.mark.parametrize(("host", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::9%eth0", "2001:db8:1:2::/64"),
    ("not an address", "not an address"),
])
def test_address_keys(host: str, key: str) -> None:
    assert address_key(host) == key


def test_refusal_is_a_negotiation_failure() -> None:
    request = x224.ConnectionRequest(cookie="alice",
                                     negotiation=x224.NegotiationRequest(x224.Protocol.SSL))
    answer = refusal_confirm(tpkt.wrap(request.encode()))
    assert answer is not None
    confirm = x224.ConnectionConfirm.decode(tpkt.unwrap(answer))
    assert isinstance(confirm.negotiation, x224.NegotiationFailure)
    assert confirm.negotiation.failure_code == REFUSAL_CODE == 3  # SSL_CERT_NOT_ON_SERVER


def test_refusal_without_negotiation_or_of_garbage() -> None:
    # A client that sent no RDP_NEG_REQ cannot be sent an RDP_NEG_FAILURE (2.2.1.2.2).
    assert refusal_confirm(tpkt.wrap(x224.ConnectionRequest().encode())) is None
    with pytest.raises(ProtocolError):
        refusal_confirm(tpkt.wrap(b"\x02\xf0\x80hello"))


def test_a_full_server_admits_a_newcomer_only_when_room_is_made() -> None:
    admission = Admission(ServerConfig(max_connections=1, connection_rate=0,
                                       max_connections_per_address=1))
    assert admission.admit("10.0.0.1") is None
    asked: list[str] = []

    def no_room() -> bool:
        asked.append("no")
        return False

    def room() -> bool:
        asked.append("yes")
        return True

    assert admission.admit("10.0.0.2", make_room=no_room) is not None
    assert admission.admit("10.0.0.2", make_room=room) is None
    # An address at its own limit is not given someone else's slot.
    assert admission.admit("10.0.0.2", make_room=room) is not None
    assert asked == ["no", "yes"]
