"""``rdscard pki``: placeholder until its module lands (see issue 3)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``pki`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("pki", help="(not yet available)")
    parser.set_defaults(handler=lambda _args: 1)
