"""The network process: ``python -m rdscard.privsep.network`` (started by the monitor).

It starts as root only to bind what the server listens on (the RDP port,
the control socket) and to load the TLS certificate and key, then drops to
``[server] user`` for good (:mod:`rdscard.privsep.drop`) before it reads a
single byte from the network. Everything it may not do itself goes to the
monitor over the descriptor given with ``--ipc-fd``; when the monitor goes,
it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.abc
import logging
import os
import pkgutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from rdscard.cli.main import configure_logging
from rdscard.cli.serve import serve
from rdscard.config import load_config
from rdscard.errors import RdscardError
from rdscard.privsep.drop import drop_privileges
from rdscard.privsep.remote import RemoteGateway
from rdscard.server.listener import RdpServer

log = logging.getLogger("rdscard.privsep")
#: Not part of the network process (tools of the command line and of the tests).
NOT_PRELOADED = ("rdscard.cli.", "rdscard.testbed", "rdscard.privsep.monitor",
                 "rdscard.session.leader", "rdscard.xclient")


def preload() -> None:
    """Load every module, shared library and font the server uses while still root.

    The installation may live where the unprivileged account cannot read
    (a root-only home): nothing may be left to load after the drop.
    """
    import encodings

    from PIL import Image

    import rdscard
    from rdscard.codec import freerdp
    from rdscard.screen.render import BODY, SMALL, TITLE, font

    for module in pkgutil.walk_packages(rdscard.__path__, "rdscard."):
        if not module.name.startswith(NOT_PRELOADED):
            importlib.import_module(module.name)
    for module in pkgutil.iter_modules(encodings.__path__, "encodings."):
        with contextlib.suppress(ImportError):  # the codecs of other systems
            importlib.import_module(module.name)
    Image.init()
    freerdp.load()
    for size in (TITLE, BODY, SMALL):
        font(size)
    sys.meta_path.insert(0, LateImports())


class LateImports(importlib.abc.MetaPathFinder):
    """Names every module first imported after the drop (it may be unreadable by then)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: object = None) -> None:
        if fullname not in sys.modules:
            log.warning("module %s is first imported without privileges: if the "
                        "installation is unreadable to the server's account this fails "
                        "(add it to rdscard.privsep.network.preload)", fullname)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rdscard-network",
                                     description="rdscard's unprivileged network process")
    parser.add_argument("--ipc-fd", type=int, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--listen")
    parser.add_argument("--state-dir")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser.parse_args(argv)


async def run_network(server: RdpServer, gateway: RemoteGateway, user: str) -> None:
    """Serve until SIGTERM or until the monitor goes, as ``user`` once listening."""
    stop = asyncio.Event()
    gateway.channel.on_closed = stop.set
    gateway.start()

    def unprivileged() -> None:
        gateway.control = server.control.answer
        preload()
        drop_privileges(user)
        log.info("network process %d: running as %s without privileges", os.getpid(), user)

    await serve(server, after_start=unprivileged, stop=stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    try:
        config = load_config(args.config).with_overrides(listen=args.listen,
                                                         state_dir=args.state_dir)
        gateway = RemoteGateway(socket.socket(fileno=args.ipc_fd))
        server = RdpServer(config, gateway, control_socket=False)
        uvloop.run(run_network(server, gateway, config.server.user))
    except RdscardError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
