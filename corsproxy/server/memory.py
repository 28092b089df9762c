"""Memory the serve process tunes: glibc's malloc told to keep the buffers a stream reuses,
and the collector told to leave the start-up's objects alone (issue #15).

While a request body arrives faster than the upstream takes it, aiohttp 3.14's request parser
keeps the unparsed rest of each read and joins it to the next: buffers of a few hundred KiB,
made and freed for every read of an upload. With glibc's defaults the heap's top goes back to
the kernel as soon as 128 KiB of it are free, and the size above which a buffer gets its own
mapping moves with the last one freed: an upload then faulted fresh pages in for every read
(two `brk` calls per 256 KiB; a third of the throughput), or did not, by the process's history.
Fixed thresholds make it the same every time: buffers under 1 MiB come from the heap, and the
heap keeps up to 4 MiB free at its top. Elsewhere (musl, macOS) there is nothing to tune.

The cyclic collector's full pass scanned every object alive, ~45k of them made at start-up
(modules, the config, the State), for 25-30 ms, a few times a second under load: every
request in flight waited that long, which is what a p99 sees. `settle` freezes them once the
proxy is ready and again after a reload (gc.freeze: later passes skip them). It also lets more
young objects pile up before a pass: with CPython's 700, the objects of 50 requests in flight
set one off every ~25 requests, to find them all alive (900 passes in 5 s of GETs, ~5% of the
CPU); at 5,000 a pass comes when garbage has piled up (13 in 5 s), and a pass over 5,000 young
objects is a millisecond or two.
"""

from __future__ import annotations

import ctypes
import gc

# mallopt(3) parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 4 << 20
# Container objects allocated (net) before the collector's young pass runs; CPython's is 700.
YOUNG_OBJECTS = 5_000


def keep_stream_buffers() -> bool:
    """Set the thresholds; whether this C library took them."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def settle() -> None:
    """Collect what is garbage now, keep every object alive out of later collections, and let
    YOUNG_OBJECTS young objects be made before a pass (see above). The previous freeze is undone
    first: a frozen object let go since (a State a reload replaced, in a cycle) is collected
    here, not kept for good."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])
