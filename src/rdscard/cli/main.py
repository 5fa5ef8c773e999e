"""Entry point of the ``rdscard`` command.

Each subcommand lives in its own module under :mod:`rdscard.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function taking the parsed arguments and returning the exit status.

Only the module of the subcommand being run is imported (``rdscard serve``
needs the whole server, ``rdscard session list`` a socket and some JSON);
the others are listed with their one-line help (:data:`SUBCOMMAND_HELP`,
kept equal to what each module registers by a unit test).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from rdscard import __version__
from rdscard.errors import RdscardError

SUBCOMMAND_MODULES = ("serve", "session", "ntauth", "certutil", "demo", "pki", "card", "efs")
#: Each subcommand's one-line help, shown without importing its module.
SUBCOMMAND_HELP = {
    "serve": "run the RD Session Host",
    "session": "list, disconnect or log off sessions; run a program inside one",
    "ntauth": "add, list and remove the CAs trusted for smart card sign-in (NTAuth)",
    "certutil": "the NTAuth store and its directory copy, with Windows' certutil verbs",
    "demo": "run the end-to-end demo (server + xfreerdp on a virtual screen)",
    "pki": "test PKI: root and issuing CA, KDC and user certificates",
    "card": "virtual PIV cards: create, insert into vpcd, status",
    "efs": "encrypted folders opened with the smart card at sign-in",
}


def subcommand_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), else None."""
    for word in argv:
        if word in SUBCOMMAND_HELP:
            return word
        if not word.startswith("-"):
            return None
    return None


def build_parser(only: str | None = "") -> argparse.ArgumentParser:
    """The argument parser; ``only`` names the one subcommand registered in full.

    ``""`` (the default) registers every subcommand in full; ``None`` none of
    them (they are listed with their help only, for ``rdscard --help``).
    """
    parser = argparse.ArgumentParser(
        prog="rdscard",
        description=(
            "Smart card sign-in and smart card redirection for Remote Desktop: "
            "an RD Session Host for stock RDP clients."
        ),
    )
    parser.add_argument("--version", action="version", version=f"rdscard {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log detail (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        if only == "" or name == only:
            module = importlib.import_module(f"rdscard.cli.{name}")
            module.register(subparsers)
        else:
            subparsers.add_parser(name, help=SUBCOMMAND_HELP[name])
    return parser


def configure_logging(verbosity: int) -> None:
    """Administrator-readable log lines on standard error."""
    level = logging.WARNING - 10 * min(verbosity + 1, 2)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rdscard`` command; returns the process exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(subcommand_of(words))
    args = parser.parse_args(words)
    configure_logging(args.verbose)
    try:
        status: int = args.handler(args)
    except RdscardError as exc:
        print(f"rdscard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
