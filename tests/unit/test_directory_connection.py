"""The account lookups' kept LDAP connection: reused while fresh, replaced when it fails or
has idled too long (the DC side is a fake of one layer; Samba runs in the integration tests)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from ldap3.core import exceptions as ldap_errors

from rdscard.directory.accounts import KEEP_IDLE, DirectoryAccounts
from rdscard.directory.ntauth import DirectoryError
from rdscard.directory.settings import DirectoryConfig

SID = bytes([1, 5]) + (5).to_bytes(6, "big") + struct.pack("<5I", 21, 1, 2, 3, 1105)
ALICE = {"sAMAccountName": [b"alice"], "objectSid": [SID], "userAccountControl": [b"512"],
         "userPrincipalName": [b"alice@example.test"]}


class FakeConnection:
    def __init__(self) -> None:
        self.dead = False
        self.unbound = False
        self.searches = 0
        self.response: list[dict[str, Any]] = []

    def search(self, base: str, query: str, scope: object, **_: object) -> None:
        if self.dead or self.unbound:
            raise ldap_errors.LDAPSessionTerminatedByServerError("session terminated by server")
        self.searches += 1
        found = "alice@example.test" in query
        self.response = [{"type": "searchResEntry", "dn": f"CN=alice,CN=Users,{base}",
                          "raw_attributes": ALICE}] if found else []

    def unbind(self) -> None:
        self.unbound = True


class Dc:
    def __init__(self) -> None:
        self.opened: list[FakeConnection] = []
        self.down = False
        self.now = 1000.0

    def connect(self) -> FakeConnection:
        if self.down:
            raise DirectoryError("ldaps://dc1 cannot be reached")
        self.opened.append(FakeConnection())
        return self.opened[-1]


@pytest.fixture
def dc() -> Dc:
    return Dc()


def accounts(dc: Dc) -> DirectoryAccounts:
    config = DirectoryConfig(enabled=True, uris=("ldaps://dc1",), accounts=True,
                             base_dn="DC=example,DC=test")
    return DirectoryAccounts(config, dc.connect, clock=lambda: dc.now)  # type: ignore[arg-type]


def test_lookups_reuse_one_bound_connection(dc: Dc) -> None:
    source = accounts(dc)
    for _ in range(3):
        found = source.find("alice@example.test")
        assert found is not None and found.sam_account_name == "alice"
        dc.now += KEEP_IDLE - 1
    assert source.find("nobody@elsewhere.test") is None
    assert len(dc.opened) == 1 and dc.opened[0].searches == 4 and not dc.opened[0].unbound
    source.close()
    assert dc.opened[0].unbound


def test_a_connection_the_dc_closed_is_replaced_once(dc: Dc) -> None:
    source = accounts(dc)
    assert source.find("alice@example.test") is not None
    dc.opened[0].dead = True
    assert source.find("alice@example.test") is not None
    assert len(dc.opened) == 2 and dc.opened[0].unbound and dc.opened[1].searches == 1


def test_no_dc_answering_fails_the_lookup_and_the_next_one_connects_again(dc: Dc) -> None:
    source = accounts(dc)
    assert source.find("alice@example.test") is not None
    dc.opened[0].dead, dc.down = True, True
    with pytest.raises(DirectoryError, match="cannot be reached"):
        source.find("alice@example.test")
    dc.down = False
    assert source.find("alice@example.test") is not None
    assert len(dc.opened) == 2


def test_an_idle_connection_is_closed_before_the_dc_closes_it(dc: Dc) -> None:
    source = accounts(dc)
    assert source.find("alice@example.test") is not None
    dc.now += KEEP_IDLE + 1
    assert source.find("alice@example.test") is not None
    assert len(dc.opened) == 2 and dc.opened[0].unbound and dc.opened[0].searches == 1


def test_an_unexpected_failure_closes_the_connection(dc: Dc) -> None:
    source = accounts(dc)
    assert source.find("alice@example.test") is not None

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("bug")

    dc.opened[0].search = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        source.find("alice@example.test")
    assert dc.opened[0].unbound
    assert source.find("alice@example.test") is not None and len(dc.opened) == 2
