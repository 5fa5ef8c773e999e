"""Entry point of the ``rdscard`` command.

Each subcommand lives in its own module under :mod:`rdscard.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from rdscard import __version__
from rdscard.errors import RdscardError

SUBCOMMAND_MODULES = ("serve", "session", "ntauth", "demo", "pki", "card", "efs")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
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
        module = importlib.import_module(f"rdscard.cli.{name}")
        module.register(subparsers)
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
    parser = build_parser()
    args = parser.parse_args(argv)
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
