"""The C allocator's settings for a long-running server process.

glibc raises its mmap threshold each time a large block is freed, so after
the first full-screen capture or logon frame every later buffer of that
size comes from the heap, and a heap does not shrink while anything above
the freed space is alive: idle sessions then look megabytes larger than
what they keep (4.2 instead of 1.6 MB each at 1920x1080). A fixed
threshold keeps buffers of 1 MiB and more (logon frames, whole-screen
captures) in their own mappings, returned to the system when freed. It is
not lower because the redirection path allocates buffers of a few hundred
KiB per call: a 128 KiB threshold made each of those an mmap and munmap,
about 25 us more per redirected call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("rdscard.server")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024
TRIM_THRESHOLD = 4 * 1024 * 1024


def tune_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not done:
        log.debug("mallopt refused the allocator thresholds")
    return done
