"""``rdscard session``: list, disconnect and log off a running server's sessions, run a program
inside one, install the PAM service desktops are opened with."""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from pathlib import Path
from typing import Any

from rdscard.config import load_config
from rdscard.errors import RdscardError
from rdscard.server.control_client import CONTROL_SOCKET_NAME, query


def register(subparsers: Any) -> None:
    """Add the ``session`` subcommand and its verbs."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "session",
        help="list, disconnect or log off sessions; run a program inside one",
        description="Administer the sessions of a running `rdscard serve` (as root).",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--state-dir", metavar="DIR", help="the server's state directory")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("list", help="list the live sessions").set_defaults(handler=run_list)
    for verb, text in (
        ("disconnect", "disconnect the session's client; its desktop and programs go on"),
        ("logoff", "end the session and every program in it"),
    ):
        end = verbs.add_parser(verb, help=text, description=text[0].upper() + text[1:] + ".")
        end.add_argument("session", type=int, metavar="SESSION", help="session id (see list)")
        end.set_defaults(handler=run_end, verb_name=verb)
    pam = verbs.add_parser(
        "install-pam",
        help="install the PAM service file desktops are opened with",
        description="Copy rdscard's PAM service file (account and session stacks, no "
                    "authentication: the smart card authenticates) to /etc/pam.d.",
    )
    pam.add_argument("--name", default="rdscard", help="service name (default rdscard)")
    pam.add_argument("--force", action="store_true", help="replace an existing file")
    pam.set_defaults(handler=run_install_pam)
    run = verbs.add_parser(
        "exec",
        help="run COMMAND in a session's environment, as the session's account",
        description=(
            "Run COMMAND with the session's environment (PCSCLITE_CSOCK_NAME for the "
            "redirected smart card, and more once signed in), as the session's account."
        ),
    )
    run.add_argument("session", type=int, metavar="SESSION", help="session id (see list)")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    run.set_defaults(handler=run_exec)


def _state_dir(args: argparse.Namespace) -> Path:
    config = load_config(args.config).with_overrides(state_dir=args.state_dir)
    return config.server.state_dir


def _ask(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any]:
    state_dir = _state_dir(args)
    try:
        reply = query(state_dir, request)
    except (FileNotFoundError, ConnectionRefusedError):
        raise RdscardError(
            f"no running server with state directory {state_dir} "
            f"({state_dir / CONTROL_SOCKET_NAME} does not answer); pass --state-dir or --config"
        ) from None
    except PermissionError:
        raise RdscardError("the control socket is for root: run this as root") from None
    if "error" in reply:
        raise RdscardError(str(reply["error"]))
    return reply


def run_list(args: argparse.Namespace) -> int:
    """Handler of ``rdscard session list``."""
    sessions = _ask(args, {"command": "list"})["sessions"]
    if not sessions:
        print("no sessions")
        return 0
    print(f"{'ID':>4}  {'STATE':<13} {'ACCOUNT':<14} {'UPN':<26} {'CLIENT':<14} "
          f"{'CONNECTION':<22} {'IDLE':>7}  DISPLAY")
    for s in sessions:
        print(f"{s['session_id']:>4}  {s['state']:<13} {s['account'][:14]:<14} "
              f"{(s['upn'] or '-')[:26]:<26} {(s['client_name'] or '-')[:14]:<14} "
              f"{(s['connection'] or '-')[:22]:<22} {_idle(s['idle']):>7}  {s['display'] or '-'}")
    return 0


def _idle(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def run_end(args: argparse.Namespace) -> int:
    """Handler of ``rdscard session disconnect|logoff SESSION``."""
    reply = _ask(args, {"command": args.verb_name, "session": args.session})
    print(reply["done"])
    return 0


def run_install_pam(args: argparse.Namespace) -> int:
    """Handler of ``rdscard session install-pam``."""
    from rdscard.session.pamd import install_pam_service

    path = install_pam_service(name=args.name, overwrite=args.force)
    print(f"installed {path}")
    return 0


def run_exec(args: argparse.Namespace) -> int:
    """Handler of ``rdscard session exec``: replaces this process with COMMAND."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise RdscardError("no command given: rdscard session exec SESSION -- COMMAND...")
    session = _ask(args, {"command": "session", "session": args.session})["session"]
    account = pwd.getpwuid(session["uid"])
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "USER": account.pw_name,
        "LOGNAME": account.pw_name,
        "HOME": account.pw_dir,
        "SHELL": account.pw_shell,
        "RDSCARD_SESSION": str(session["session_id"]),
        **session["env"],
    }
    if session["uid"] != os.geteuid():
        if os.geteuid() != 0:
            raise RdscardError("running a program as the session's account needs root")
        os.initgroups(account.pw_name, session["gid"])
        os.setgid(session["gid"])
        os.setuid(session["uid"])
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise RdscardError(f"cannot run {command[0]}: {exc.strerror}") from None
    return 127  # not reached
