"""Process-wide allocator setting for the videosr command line: keep freed memory for reuse.

videosr allocates and frees the same few large tensors for every frame (a 1080p float RGB frame is 25 MB).
glibc serves blocks over its mmap threshold (at most 32 MB, adjusted dynamically) with fresh mmaps and
returns them on free, and trims the heap top back to the OS, so every frame page-faults its memory in
again, 4 KB at a time. On a virtual machine a page fault is expensive: on this project's 2-core VM the
fast-x4 model took much longer per 480x270 -> 1080p frame by default than with this setting, and
large tensor copies and `videosr bench` end to end were slower too (one-off measurements, docs/models.md).

:func:`keep_freed_memory` raises both thresholds so large blocks come from the heap and stay there: the
resident size stays at its peak (bounded by the frame size, as every stage is) instead of shrinking
between frames. A no-op where the C library is not glibc. The CLI calls it once at start; library users
may call it themselves (it changes the whole process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_BIG = 1 << 30  # 1 GiB: larger blocks still get their own mapping

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Serve blocks up to 1 GiB from the heap and never trim it; True when glibc accepted the setting."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _BIG)) and bool(mallopt(_M_TRIM_THRESHOLD, _BIG))
    # one arena for all threads: the other arenas are mmapped heaps of at most 64 MB, so a stage thread's
    # larger blocks (a chunk of 1080p frames) would still be fresh mappings; a handful of mallocs per frame
    # do not contend for its lock
    mallopt(_M_ARENA_MAX, 1)
    return _done
