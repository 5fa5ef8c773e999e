"""The command line imports only what the verb being run needs (rdscard.cli.main)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from rdscard.cli.main import SUBCOMMAND_HELP, build_parser, subcommand_of

#: Modules an administrator's verb has no use for: the server, its event loop, the codecs.
HEAVY = ("asyncio", "uvloop", "cryptography", "numpy", "PIL", "xcffib",
         "rdscard.server.listener", "rdscard.privsep.gateway", "rdscard.pdu")


def loaded_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after ``rdscard ARGV``."""
    code = ("import sys\nfrom rdscard.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    return set(result.stdout.split())


def test_each_subcommand_is_listed_with_the_help_its_module_registers() -> None:
    full = build_parser()
    action = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    registered = {choice.dest: choice.help for choice in action._choices_actions}
    assert registered == SUBCOMMAND_HELP


def test_subcommand_of() -> None:
    assert subcommand_of(["-v", "session", "list"]) == "session"
    assert subcommand_of(["--help"]) is None
    assert subcommand_of(["nonsense", "session"]) is None


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["session", "--help"],
    ["session", "--state-dir", "/nonexistent", "exec", "1", "--", "true"],
    ["session", "--state-dir", "/nonexistent", "list"],
])
def test_administrator_verbs_leave_the_server_unimported(argv: list[str]) -> None:
    modules = loaded_after(argv)
    assert "rdscard.cli.main" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []


def test_serve_still_imports_the_server() -> None:
    assert "rdscard.server.listener" in loaded_after(["serve", "--help"])
