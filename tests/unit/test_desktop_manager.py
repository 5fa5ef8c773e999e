"""The desktop manager's per-account turn: one sign-in at a time chooses and starts."""

from __future__ import annotations

import asyncio

from rdscard.config import Config
from rdscard.server.desktop import DesktopManager
from rdscard.server.sessions import SessionTable


def test_sign_ins_of_one_account_take_turns_and_other_accounts_do_not_wait() -> None:
    async def scenario() -> list[str]:
        manager = DesktopManager(Config(), SessionTable())
        order: list[str] = []

        async def sign_in(account: str, name: str, hold: float) -> None:
            async with manager.account_turn(account):
                order.append(f"{name} in")
                await asyncio.sleep(hold)
                order.append(f"{name} out")

        await asyncio.gather(sign_in("alice", "a1", 0.05), sign_in("alice", "a2", 0.0),
                             sign_in("bob", "b1", 0.0))
        assert manager._starting == {}  # nothing kept once every turn is over
        return order

    order = asyncio.run(scenario())
    assert order.index("a1 out") < order.index("a2 in")
    assert order.index("b1 in") < order.index("a1 out")
