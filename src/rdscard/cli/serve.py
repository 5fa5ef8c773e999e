"""``rdscard serve``: run the RD Session Host."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import uvloop

from rdscard.config import load_config
from rdscard.errors import ConfigError
from rdscard.server.listener import RdpServer

log = logging.getLogger("rdscard.serve")


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the RD Session Host",
        description=(
            "Listen for RDP clients (xfreerdp, mstsc) over TLS and show them the "
            "smart card logon screen. Settings come from the TOML file given with "
            "--config (see docs/configuration.md); --listen and --state-dir override it."
        ),
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to listen on")
    parser.add_argument("--state-dir", metavar="DIR", help="directory for generated state")
    parser.set_defaults(handler=run)


async def serve(server: RdpServer) -> None:
    """Start ``server`` and serve until SIGINT or SIGTERM."""
    try:
        await server.start()
    except OSError as exc:
        cfg = server.config.server
        raise ConfigError(
            f"cannot start on {cfg.listen} with state directory {cfg.state_dir}: "
            f"{exc.strerror or exc}; choose another address with --listen or fix --state-dir"
        ) from None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve_forever())
    await stop.wait()
    log.info("shutting down")
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    await server.close()


def run(args: argparse.Namespace) -> int:
    """Handler of ``rdscard serve``.

    The event loop is uvloop's: every redirected smart card call crosses the
    loop twice (the program's request, the client's reply), and uvloop makes
    each crossing cheaper than the default loop does (BENCHMARKS.md).
    """
    config = load_config(args.config).with_overrides(listen=args.listen, state_dir=args.state_dir)
    uvloop.run(serve(RdpServer(config)))
    return 0
