"""The monitor: ``rdscard serve`` as root, with privilege separation (OpenSSH's design).

It keeps what needs root (the logon service with its audit log and trust
stores, the card socket directories, the credential caches, the session
leaders) and starts the network process, which parses everything that
comes from the network as ``[server] user``. The two talk over one
``SOCK_SEQPACKET`` pair (:mod:`rdscard.privsep.ipc`); no smart card call of
a session crosses it, only the sign-in's APDUs. When the network process
ends, the monitor logs every desktop off and ends too (a service manager
restarts both).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys

from rdscard.config import Config
from rdscard.logon.audit import AuditLog
from rdscard.private_files import make_private_dir, tighten
from rdscard.privsep.drop import system_account
from rdscard.privsep.monitor_control import MonitorControl
from rdscard.privsep.privileged import PrivilegedService
from rdscard.privsep.remote import MonitorHandler

log = logging.getLogger("rdscard.monitor")
AUDIT_LOG_NAME = "audit.jsonl"


async def run_monitor(config: Config, network_arguments: list[str]) -> int:
    """Start the network process and serve its requests until it ends; the exit status."""
    cfg = config.server
    account = system_account(cfg.user)
    make_private_dir(cfg.state_dir)
    tighten(cfg.state_dir)
    audit = AuditLog(cfg.state_dir / AUDIT_LOG_NAME)
    service = PrivilegedService(config, audit, lambda _session, _reason: None)
    service.start_directory_refresh()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    handler = MonitorHandler(service, ours)
    handler.channel.start()
    control = MonitorControl(service, handler.channel, cfg.state_dir)
    await control.start()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rdscard.privsep.network", "--ipc-fd", str(theirs.fileno()),
        *network_arguments, pass_fds=(theirs.fileno(),))
    theirs.close()
    log.info("monitor: network process %d starts and runs as %s (uid %d)", process.pid,
             account.pw_name, account.pw_uid)
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        status = await process.wait()
    finally:
        await control.close()
        handler.channel.close()
        await service.close_all()
    if stopping:
        log.info("monitor: stopped")
        return 0
    log.error("monitor: the network process ended with status %d: every session was ended",
              status)
    return status or 1
