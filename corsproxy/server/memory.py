"""glibc's malloc told to keep the buffers a stream reuses (issue #15).

While a request body arrives faster than the upstream takes it, aiohttp 3.14's request parser
keeps the unparsed rest of each read and joins it to the next: buffers of a few hundred KiB,
made and freed for every read of an upload. With glibc's defaults the heap's top goes back to
the kernel as soon as 128 KiB of it are free, and the size above which a buffer gets its own
mapping moves with the last one freed: an upload then faulted fresh pages in for every read
(two `brk` calls per 256 KiB; a third of the throughput), or did not, by the process's history.
Fixed thresholds make it the same every time: buffers under 1 MiB come from the heap, and the
heap keeps up to 4 MiB free at its top. Elsewhere (musl, macOS) there is nothing to tune.
"""

from __future__ import annotations

import ctypes

# mallopt(3) parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 4 << 20


def keep_stream_buffers() -> bool:
    """Set the thresholds; whether this C library took them."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
