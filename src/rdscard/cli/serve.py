"""``rdscard serve``: run the RD Session Host."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import uvloop

from rdscard import compiled
from rdscard.config import Config, load_config
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
    parser.add_argument("--print-systemd-unit", action="store_true",
                        help="print a sandboxed systemd unit for this installation and exit")
    parser.set_defaults(handler=run)


def hot_path_summary() -> str:
    """Whether the redirection hot path runs compiled (``rdscard.compiled``), for the log."""
    loaded = [name for name in compiled.MODULES if name in sys.modules]
    running = compiled.loaded_compiled()
    if running:
        stale = compiled.stale_modules()
        if stale:  # the sources changed since the build: their old code runs
            return (f"compiled ({len(running)} of its {len(loaded)} loaded modules), but "
                    f"older than the sources of {', '.join(stale)}: run "
                    "scripts/build_compiled.py")
        return f"compiled ({len(running)} of its {len(loaded)} loaded modules)"
    if compiled.pure_requested():
        return f"pure Python ({compiled.PURE_ENV} is set)"
    return "pure Python (not built: scripts/build_compiled.py)"


async def serve(server: RdpServer, *, after_start: Callable[[], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Start ``server`` and serve until SIGINT or SIGTERM (or ``stop`` is set).

    ``after_start`` runs once the server listens, before it accepts anyone
    (the network process drops its privileges there).
    """
    try:
        await server.start()
    except OSError as exc:
        cfg = server.config.server
        raise ConfigError(
            f"cannot start on {cfg.listen} with state directory {cfg.state_dir}: "
            f"{exc.strerror or exc}; choose another address with --listen or fix --state-dir"
        ) from None
    if after_start is not None:
        try:
            after_start()
        except BaseException:
            await server.close()
            raise
    log.info("redirection hot path: %s", hot_path_summary())
    # What is loaded by now lives as long as the process (the network process has loaded
    # every module): the cyclic collector leaves it out of its collections from here on.
    # Each redirected call allocates enough to trigger collections, and walking the whole
    # preloaded heap was about a quarter of the server's CPU per call.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
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
    if args.print_systemd_unit:
        print(systemd_unit(), end="")
        return 0
    config = load_config(args.config).with_overrides(listen=args.listen, state_dir=args.state_dir)
    if separated(config):
        from rdscard.privsep.monitor import run_monitor
        network = [f"-{'v' * args.verbose}"] if args.verbose else []
        for option, value in (("--config", args.config), ("--listen", args.listen),
                              ("--state-dir", args.state_dir)):
            if value is not None:
                network += [option, str(value)]
        return uvloop.run(run_monitor(config, network))
    uvloop.run(serve(RdpServer(config)))
    return 0


def systemd_unit() -> str:
    """The shipped unit, started with the ``rdscard`` of this installation."""
    unit = resources.files("rdscard.privsep") / "systemd" / "rdscard.service"
    command = shutil.which("rdscard") or str(Path(sys.executable).with_name("rdscard"))
    return unit.read_text().replace("@RDSCARD@", command)


def separated(config: Config) -> bool:
    """Privilege separation applies: asked for, and started as root (else nothing to drop)."""
    if not config.server.privilege_separation:
        log.warning("privilege separation is off ([server] privilege_separation = false): "
                    "the network side runs as uid %d", os.geteuid())
        return False
    return os.geteuid() == 0
