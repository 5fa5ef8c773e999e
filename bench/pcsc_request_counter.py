"""A counting pass-through for pcsc-lite client connections (benchmarks only).

Listens on a UNIX socket, forwards every connection to a daemon socket
(pcscd's or a session's) byte for byte, and counts the requests of the
client wire protocol (pcsc-lite winscard_msg.h: header {size, command},
the fixed struct, then the APDU or control data of TRANSMIT and CONTROL).
The counts say which calls a program makes per operation.
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
from pathlib import Path

COMMAND_NAMES = {
    0x01: "ESTABLISH_CONTEXT", 0x02: "RELEASE_CONTEXT", 0x04: "CONNECT", 0x05: "RECONNECT",
    0x06: "DISCONNECT", 0x07: "BEGIN_TRANSACTION", 0x08: "END_TRANSACTION", 0x09: "TRANSMIT",
    0x0A: "CONTROL", 0x0B: "STATUS", 0x0D: "CANCEL", 0x0F: "GET_ATTRIB", 0x10: "SET_ATTRIB",
    0x11: "CMD_VERSION", 0x12: "CMD_GET_READERS_STATE", 0x13: "CMD_WAIT_READER_STATE_CHANGE",
    0x14: "CMD_STOP_WAITING_READER_STATE_CHANGE", 0x15: "CMD_GET_READER_EVENTS",
}


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return bytes(data)


class RequestCounter:
    """``path`` forwards to ``target``; ``counts`` holds requests by command name."""

    def __init__(self, path: Path, target: Path) -> None:
        self.path = path
        self.target = target
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        path.chmod(0o777)
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> collections.Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, collections.Counter()
        return counts

    def _accept(self) -> None:
        while True:
            try:
                program, _ = self._listener.accept()
            except OSError:
                return
            daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            daemon.connect(str(self.target))
            threading.Thread(target=self._requests, args=(program, daemon), daemon=True).start()
            threading.Thread(target=self._replies, args=(daemon, program), daemon=True).start()

    def _requests(self, program: socket.socket, daemon: socket.socket) -> None:
        try:
            while True:
                header = _read_exactly(program, 8)
                size, command = struct.unpack("<II", header)
                body = _read_exactly(program, size)
                extra = 0
                if command == 0x09 and size >= 16:
                    extra = struct.unpack_from("<I", body, 12)[0]
                elif command == 0x0A and size >= 12:
                    extra = struct.unpack_from("<I", body, 8)[0]
                payload = _read_exactly(program, extra) if extra else b""
                with self._lock:
                    self.counts[COMMAND_NAMES.get(command, hex(command))] += 1
                daemon.sendall(header + body + payload)
        except (ConnectionError, OSError):
            pass
        finally:
            daemon.close()

    @staticmethod
    def _replies(daemon: socket.socket, program: socket.socket) -> None:
        try:
            while chunk := daemon.recv(65536):
                program.sendall(chunk)
        except OSError:
            pass
        finally:
            program.close()

    def close(self) -> None:
        self._listener.close()
