"""The acceptor's NLA choices (MS-RDPBCGR 3.3.5.3.1) and its CredSSP framing (MS-CSSP 2.2.1)."""

from __future__ import annotations

import pytest

from rdscard.config import parse_config
from rdscard.errors import ConfigError
from rdscard.pdu import tpkt, x224
from rdscard.pdu.credssp import TsRequest
from rdscard.protocol.acceptor import AcceptorSettings, RdpAcceptor
from rdscard.protocol.events import CredSspReceived, NegotiationRefused, Phase, StartTls

P = x224.Protocol


def request(protocols: int) -> bytes:
    return tpkt.wrap(x224.ConnectionRequest(
        cookie="alice", negotiation=x224.NegotiationRequest(P(protocols))).encode())


@pytest.mark.parametrize("nla, require, offered, selected", [
    (False, False, P.SSL | P.HYBRID | P.HYBRID_EX, P.SSL),     # off: today's TLS
    (True, False, P.SSL | P.HYBRID | P.HYBRID_EX, P.HYBRID_EX),
    (True, False, P.SSL | P.HYBRID, P.HYBRID),
    (True, False, P.SSL, P.SSL),
    (True, True, P.SSL | P.HYBRID, P.HYBRID),
])
def test_selection(nla: bool, require: bool, offered: int, selected: int) -> None:
    server = RdpAcceptor(AcceptorSettings(nla=nla, require_nla=require))
    server.receive(request(offered))
    (event,) = server.events()
    assert isinstance(event, StartTls) and event.selected == selected
    server.tls_established()
    assert server.phase is (Phase.CREDSSP if selected & (P.HYBRID | P.HYBRID_EX)
                            else Phase.BASIC_SETTINGS)


def test_require_nla_refuses_tls_only_with_hybrid_required() -> None:
    server = RdpAcceptor(AcceptorSettings(nla=True, require_nla=True))
    server.receive(request(P.SSL))
    (event,) = server.events()
    assert isinstance(event, NegotiationRefused)
    assert event.failure_code == x224.FailureCode.HYBRID_REQUIRED_BY_SERVER
    assert server.phase is Phase.CLOSED
    assert server.data_to_send().endswith(bytes.fromhex("0300080005000000"))


def nla_server(offered: int = P.SSL | P.HYBRID | P.HYBRID_EX) -> RdpAcceptor:
    server = RdpAcceptor(AcceptorSettings(nla=True))
    server.receive(request(offered))
    server.events()
    server.data_to_send()
    server.tls_established()
    return server


def test_one_ts_request_at_a_time_then_mcs_bytes_wait_for_the_end() -> None:
    server = nla_server(P.SSL | P.HYBRID)
    first, second = TsRequest(6, (b"a" * 300,)).encode(), TsRequest(6, (b"b",)).encode()
    data = first + second
    server.receive(data[:3])
    assert server.events() == []
    server.receive(data[3:])
    (event,) = server.events()
    assert isinstance(event, CredSspReceived) and event.data == first
    server.credssp_send(b"reply")
    assert server.data_to_send() == b"reply"
    (event,) = server.events()
    assert event == CredSspReceived(second)
    server.receive(b"\x03\x00")  # the start of MCS Connect Initial, right behind authInfo
    server.credssp_finished()
    assert server.phase is Phase.BASIC_SETTINGS and server.data_to_send() == b""


def test_hybrid_ex_gets_the_early_user_authorization_result() -> None:
    server = nla_server()
    server.receive(TsRequest(6, (b"a",)).encode())
    server.events()
    server.credssp_finished()
    assert server.data_to_send() == bytes(4)  # AUTHZ_SUCCESS
    denied = nla_server()
    denied.receive(TsRequest(6, (b"a",)).encode())
    denied.events()
    denied.credssp_refused(b"ignored", after_credentials=True)
    assert denied.data_to_send() == (5).to_bytes(4, "little")  # AUTHZ_ACCESS_DENIED
    assert denied.phase is Phase.CLOSED


def test_a_refusal_sends_the_error_code_request_and_closes() -> None:
    server = nla_server(P.SSL | P.HYBRID)
    server.receive(TsRequest(6, (b"a",)).encode())
    server.events()
    server.credssp_refused(b"error")
    assert server.data_to_send() == b"error" and server.phase is Phase.CLOSED


def test_nla_settings() -> None:
    assert not parse_config("").nla.enabled
    config = parse_config('[logon]\nmode = "kerberos"\n[nla]\nenabled = true\nrequire = true\n'
                          'keytab = "/etc/rdscard.keytab"\n')
    assert config.nla_active() and config.nla.require
    assert not parse_config("[nla]\nenabled = true\n").nla_active()  # local mode: TLS kept
    with pytest.raises(ConfigError):
        parse_config("[nla]\nrequire = true\n")
    with pytest.raises(ConfigError):
        parse_config("[nla]\nkeytabs = 1\n")
    with pytest.raises(ConfigError):
        parse_config('[server]\ncertificate_type = "dsa"\n')
