"""The monitor decides from its own records: what a network process may not make it do."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from rdscard.config import Config, RedirectionConfig, ServerConfig
from rdscard.errors import RdscardError
from rdscard.logon.audit import AuditLog
from rdscard.privsep.privileged import PrivilegedService


def service(tmp_path: Path) -> PrivilegedService:
    config = Config(server=ServerConfig(state_dir=tmp_path / "state"),
                    redirection=RedirectionConfig(socket_dir=tmp_path / "run"))
    return PrivilegedService(config, AuditLog(tmp_path / "audit.jsonl"), lambda _s, _r: None)


def signed_in_as(svc: PrivilegedService, session_id: int, account: str, uid: int) -> None:
    # What a successful sign-in records (the sign-in itself is proved end to end).
    record = svc._session(session_id)
    record.account, record.uid, record.gid = account, uid, uid


def test_a_desktop_starts_only_for_a_session_that_signed_in(tmp_path: Path) -> None:
    svc = service(tmp_path)
    with pytest.raises(RdscardError, match="has not signed in"):
        asyncio.run(svc.start_desktop(1, width=800, height=600, keyboard_layout=0x409,
                                      client_address=""))


def test_tickets_move_only_between_sessions_of_one_account(tmp_path: Path) -> None:
    svc = service(tmp_path)
    signed_in_as(svc, 1, "alice", 1001)
    signed_in_as(svc, 2, "bob", 1002)
    with pytest.raises(RdscardError, match="cannot take over"):
        svc.take_over(1, 2)
    with pytest.raises(RdscardError, match="has not signed in"):
        svc.take_over(1, 3)
    signed_in_as(svc, 3, "alice", 1001)
    svc.take_over(1, 3)


@pytest.mark.parametrize("session_id", [0, -1, 1 << 31, 1 << 62])
def test_session_ids_out_of_range_are_refused(tmp_path: Path, session_id: int) -> None:
    with pytest.raises(RdscardError, match="no session"):
        service(tmp_path).open_card_socket(session_id)


def test_the_card_socket_is_private_and_follows_the_signed_in_account(tmp_path: Path) -> None:
    svc = service(tmp_path)
    listener, path = svc.open_card_socket(5)
    try:
        directory = os.lstat(path.parent)
        assert stat.S_IMODE(directory.st_mode) == 0o700 and directory.st_uid == 0
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        signed_in_as(svc, 5, "nobody", 65534)
        svc._give(svc._session(5))
        assert os.lstat(path.parent).st_uid == 65534 and os.lstat(path).st_uid == 65534
        svc.session_ended(5)
        assert not path.parent.exists()
    finally:
        listener.close()
