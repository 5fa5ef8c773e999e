"""Linux fscrypt v2 from Python: policies and master keys through the kernel's ioctls.

Linux kernel documentation, "Filesystem-level encryption (fscrypt)",
sections "User API" (FS_IOC_SET_ENCRYPTION_POLICY, FS_IOC_GET_ENCRYPTION_POLICY_EX,
FS_IOC_ADD_ENCRYPTION_KEY, FS_IOC_REMOVE_ENCRYPTION_KEY(_ALL_USERS),
FS_IOC_GET_ENCRYPTION_KEY_STATUS) and "Key hierarchy" (the v2 key identifier
is HKDF-SHA512 of the master key, info ``"fscrypt\\0"`` + context 1, 16 bytes).
The structures are those of ``<linux/fscrypt.h>``; the master key travels in
a ``bytearray`` that is zeroed as soon as the ioctl returns.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rdscard.errors import RdscardError
from rdscard.secret import Secret

MASTER_KEY_SIZE: Final = 64
IDENTIFIER_SIZE: Final = 16


def _iowr(nr: int, size: int, read_only: bool = False) -> int:
    # _IOC(dir, 'f', nr, size): dir 2 = read (_IOR), 3 = read|write (_IOWR)
    direction = 2 if read_only else 3
    return (direction << 30) | (size << 16) | (ord("f") << 8) | nr


FS_IOC_SET_ENCRYPTION_POLICY: Final = _iowr(19, 12, read_only=True)
FS_IOC_GET_ENCRYPTION_POLICY_EX: Final = _iowr(22, 9)
FS_IOC_ADD_ENCRYPTION_KEY: Final = _iowr(23, 80)
FS_IOC_REMOVE_ENCRYPTION_KEY: Final = _iowr(24, 64)
FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS: Final = _iowr(25, 64)
FS_IOC_GET_ENCRYPTION_KEY_STATUS: Final = _iowr(26, 128)

POLICY_V2: Final = 2
MODE_AES_256_XTS: Final = 1
MODE_AES_256_CTS: Final = 4
FLAGS_PAD_32: Final = 0x03
KEY_SPEC_TYPE_IDENTIFIER: Final = 2
REMOVAL_FILES_BUSY: Final = 0x1
REMOVAL_OTHER_USERS: Final = 0x2

ENABLE_HINT: Final = (
    "enable the filesystem's encrypt feature: ext4 `tune2fs -O encrypt DEVICE` "
    "(or `mkfs.ext4 -O encrypt`), f2fs `mkfs.f2fs -O encrypt`; the kernel needs "
    "CONFIG_FS_ENCRYPTION"
)


class FscryptError(RdscardError):
    """An fscrypt operation failed; the message says why and what to do."""


class KeyStatus(IntEnum):
    """FSCRYPT_KEY_STATUS_* of FS_IOC_GET_ENCRYPTION_KEY_STATUS."""

    ABSENT = 1
    PRESENT = 2
    INCOMPLETELY_REMOVED = 3


@dataclass(frozen=True)
class Removal:
    """What FS_IOC_REMOVE_ENCRYPTION_KEY reported."""

    removed: bool  # the key was there (or is gone) and this call dealt with it
    files_busy: bool  # some files were still open: they stay readable until closed
    other_users: bool  # other users still hold a claim (only the caller's went)


def key_identifier(master_key: Secret) -> bytes:
    """The v2 master key identifier: HKDF-SHA512(key, info "fscrypt\\0" 0x01), 16 bytes."""
    hkdf = HKDF(algorithm=hashes.SHA512(), length=IDENTIFIER_SIZE, salt=None,
                info=b"fscrypt\x00\x01")
    return hkdf.derive(bytes(master_key.reveal()))


def _explain(exc: OSError, what: str, path: Path) -> FscryptError:
    code = exc.errno
    if code in (errno.EOPNOTSUPP, errno.ENOTTY):
        return FscryptError(f"{what} on {path}: the filesystem does not support encryption; "
                            + ENABLE_HINT)
    if code == errno.EEXIST:
        return FscryptError(f"{what} on {path}: the directory already has a different "
                            "encryption policy")
    if code == errno.ENOTEMPTY:
        return FscryptError(f"{what} on {path}: the directory is not empty (only an empty "
                            "directory can be encrypted; move its files out first)")
    if code == errno.ENOTDIR:
        return FscryptError(f"{what} on {path}: not a directory")
    return FscryptError(f"{what} on {path}: {os.strerror(code or 0)}")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise FscryptError(f"cannot open {path}: {os.strerror(exc.errno or 0)}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def set_policy(directory: Path, identifier: bytes) -> None:
    """Give an empty directory a v2 policy (AES-256-XTS contents, AES-256-CTS names)."""
    policy = struct.pack("<BBBB4x16s", POLICY_V2, MODE_AES_256_XTS, MODE_AES_256_CTS,
                         FLAGS_PAD_32, identifier)
    with _opened(directory) as fd:
        try:
            fcntl.ioctl(fd, FS_IOC_SET_ENCRYPTION_POLICY, policy)
        except OSError as exc:
            raise _explain(exc, "setting the encryption policy", directory) from None


def get_policy_identifier(directory: Path) -> bytes | None:
    """The v2 policy's master key identifier, or None when the directory has no policy."""
    arg = bytearray(struct.pack("<Q", 24) + bytes(24))
    with _opened(directory) as fd:
        try:
            fcntl.ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, arg)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return None
            raise _explain(exc, "reading the encryption policy", directory) from None
    if arg[8] != POLICY_V2:
        raise FscryptError(f"{directory} has a v{arg[8]} encryption policy, not v2")
    return bytes(arg[16:32])


def mountpoint_of(path: Path) -> Path:
    """The mount point of the filesystem holding ``path``.

    The key ioctls go there, not to the encrypted directory: a descriptor
    of that directory keeps its inode in use, so a removal made through it
    always reports FILES_BUSY.
    """
    current = Path(os.path.realpath(path))
    while not os.path.ismount(current) and current.parent != current:
        current = current.parent
    return current


def _key_spec(identifier: bytes) -> bytes:
    if len(identifier) != IDENTIFIER_SIZE:
        raise ValueError("an fscrypt v2 key identifier is 16 bytes")
    return struct.pack("<II", KEY_SPEC_TYPE_IDENTIFIER, 0) + identifier + bytes(16)


def add_key(path: Path, master_key: Secret) -> bytes:
    """FS_IOC_ADD_ENCRYPTION_KEY: the key goes to the filesystem of ``path``; returns its
    identifier.

    The argument buffer holding the key is zeroed before this returns.
    """
    key = master_key.reveal()
    if len(key) != MASTER_KEY_SIZE:
        raise FscryptError(f"an fscrypt master key is {MASTER_KEY_SIZE} bytes, not {len(key)}")
    mountpoint = mountpoint_of(path)
    arg = bytearray(80 + MASTER_KEY_SIZE)
    struct.pack_into("<II", arg, 0, KEY_SPEC_TYPE_IDENTIFIER, 0)
    struct.pack_into("<I", arg, 40, MASTER_KEY_SIZE)
    try:
        arg[80:] = key
        with _opened(mountpoint) as fd:
            try:
                fcntl.ioctl(fd, FS_IOC_ADD_ENCRYPTION_KEY, arg)
            except OSError as exc:
                raise _explain(exc, "adding the encryption key", mountpoint) from None
        return bytes(arg[8:24])
    finally:
        arg[:] = bytes(len(arg))


def remove_key(path: Path, identifier: bytes, *, all_users: bool = True) -> Removal:
    """FS_IOC_REMOVE_ENCRYPTION_KEY(_ALL_USERS) on the filesystem of ``path``; call again
    while ``files_busy``."""
    mountpoint = mountpoint_of(path)
    arg = bytearray(_key_spec(identifier) + bytes(24))
    request = FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS if all_users \
        else FS_IOC_REMOVE_ENCRYPTION_KEY
    with _opened(mountpoint) as fd:
        try:
            fcntl.ioctl(fd, request, arg)
        except OSError as exc:
            if exc.errno == errno.ENOKEY:
                return Removal(removed=False, files_busy=False, other_users=False)
            raise _explain(exc, "removing the encryption key", mountpoint) from None
    (flags,) = struct.unpack_from("<I", arg, 40)
    return Removal(removed=True, files_busy=bool(flags & REMOVAL_FILES_BUSY),
                   other_users=bool(flags & REMOVAL_OTHER_USERS))


def key_status(path: Path, identifier: bytes) -> KeyStatus:
    """FS_IOC_GET_ENCRYPTION_KEY_STATUS of the key ``identifier`` on the filesystem of
    ``path``."""
    mountpoint = mountpoint_of(path)
    arg = bytearray(_key_spec(identifier) + bytes(128 - 40))
    with _opened(mountpoint) as fd:
        try:
            fcntl.ioctl(fd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, arg)
        except OSError as exc:
            raise _explain(exc, "reading the key status", mountpoint) from None
    (status,) = struct.unpack_from("<I", arg, 64)
    return KeyStatus(status)
