"""``rdscard demo``: placeholder, being written."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("demo", help="(not yet available)")
    parser.set_defaults(handler=lambda _args: 1)
