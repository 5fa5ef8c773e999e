"""A shared-memory image buffer created by the X server and passed to us as a file descriptor.

MIT-SHM 1.2 ``ShmCreateSegment`` (opcode 7) asks the X server to create
the segment itself (a memfd in Xorg 21.1, ``Xext/shm.c``) and returns its
file descriptor in the reply's ancillary data; we map it. No System V
segment is involved, so no IPC permission check applies: that works for a
root server process and an X server running as the session's user, and for
any other pair of uids, and nobody else on the machine can attach the
screen's pixels by segment id.

The System V way (``shmget`` + ``ShmAttach``) was probed against Xvfb
21.1 running as an ordinary account with a root client: the server checks
the *client's* credentials against the segment's mode (``shm_access``; a
uid 0 client always passes), but ``shmat`` then runs with the *server's*
uid, and ShmGetImage needs a writable attach. A root-owned IPC_PRIVATE
segment of mode 0600 or 0644 is refused (BadAccess); 0666 attaches, but
then every local account can read and write the session's pixels. The
remaining choice, an IPC_SET chown to the X server's uid, would fail the
``shm_access`` check for a non-root client of a third uid (by reading of
that check; not probed). Fd passing avoids all of it.

xcffib can neither flag a request ``XCB_REQUEST_REPLY_FDS`` nor call
``xcb_get_reply_fds``; this module sends the request through xcffib's
libxcb binding with that flag and reads the reply with the two libxcb
functions it binds itself (cffi, on the same library instance).
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any, Final

import xcffib
import xcffib.shm
from cffi import FFI
from xcffib.ffi import ffi as xcb_ffi

from rdscard.desktop.errors import DesktopError, XExtensionMissingError

_CDEF: Final = """
void *xcb_wait_for_reply(void *c, unsigned int request, void **e);
int *xcb_get_reply_fds(void *c, void *reply, size_t reply_size);
void free(void *ptr);
"""

_ffi = FFI()
_ffi.cdef(_CDEF)
_xcb: Any = None
_libc: Any = None


def _libs() -> tuple[Any, Any]:
    global _xcb, _libc
    if _xcb is None:
        # The soname xcffib itself loaded, so both share one libxcb instance.
        _xcb = _ffi.dlopen(xcffib.soname)
        _libc = _ffi.dlopen(None)
    return _xcb, _libc


def connection_pointer(conn: Any) -> Any:
    """The ``xcb_connection_t *`` of an xcffib connection, as a ``void *`` of this module."""
    address = int(xcb_ffi.cast("uintptr_t", conn._conn))
    return _ffi.cast("void *", address)


#: xcb_send_request flags (xcb.h / xcbext.h): a checked request whose reply carries fds.
XCB_REQUEST_CHECKED: Final = 1 << 0
XCB_REQUEST_REPLY_FDS: Final = 1 << 3
#: MIT-SHM 1.2 ShmCreateSegment minor opcode.
SHM_CREATE_SEGMENT: Final = 7


def _send_create_segment(conn: Any, seg: int, size: int) -> int:
    """Send ShmCreateSegment flagged REPLY_FDS (xcffib cannot), returning its sequence."""
    body = struct.pack("=xx2xIIB3x", seg, size, 0)
    request = xcb_ffi.new("xcb_protocol_request_t *")
    request.count = 2
    request.ext = xcffib.shm.key.c_key
    request.opcode = SHM_CREATE_SEGMENT
    request.isvoid = 0
    # xcb_send_request writes into the two iovecs before the ones it is given.
    parts = xcb_ffi.new("struct iovec[4]")
    data = xcb_ffi.new("char[]", body)
    parts[2].iov_base = data
    parts[2].iov_len = len(body)
    parts[3].iov_base = xcb_ffi.NULL
    parts[3].iov_len = 0
    flags = XCB_REQUEST_CHECKED | XCB_REQUEST_REPLY_FDS
    return int(conn.send_request(flags, parts + 2, request))


def create_segment(conn: Any, size: int) -> tuple[int, mmap.mmap]:
    """Create a ``size``-byte segment in the X server; returns (shmseg id, our mapping).

    Raises :class:`XExtensionMissingError` when MIT-SHM 1.2 is not there.
    """
    shm = conn(xcffib.shm.key)
    version = shm.QueryVersion().reply()
    if (version.major_version, version.minor_version) < (1, 2):
        raise XExtensionMissingError(
            f"MIT-SHM {version.major_version}.{version.minor_version} lacks "
            "ShmCreateSegment (1.2 is needed)"
        )
    xcb, libc = _libs()
    seg = conn.generate_id()
    sequence = _send_create_segment(conn, seg, size)
    c = connection_pointer(conn)
    error = _ffi.new("void **")
    reply = xcb.xcb_wait_for_reply(c, sequence, error)
    if error[0] != _ffi.NULL:
        libc.free(error[0])
        raise DesktopError(f"ShmCreateSegment of {size} bytes refused by the X server")
    if reply == _ffi.NULL:
        conn.invalid()
        raise DesktopError("ShmCreateSegment: no reply")
    try:
        header = _ffi.cast("unsigned char *", reply)
        nfd = header[1]
        length = int.from_bytes(bytes(_ffi.buffer(header + 4, 4)), "little")
        if nfd != 1:
            raise DesktopError(f"ShmCreateSegment returned {nfd} descriptors, not 1")
        fds = xcb.xcb_get_reply_fds(c, reply, 32 + 4 * length)
        fd = int(fds[0])
    finally:
        libc.free(reply)
    try:
        mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return seg, mapping
