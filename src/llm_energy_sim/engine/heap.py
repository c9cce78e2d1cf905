"""Give the C heap's free memory back to the operating system (after a big release).

glibc keeps memory freed inside its heap for later mallocs: what a run's temporaries and its
ledgers held (~30 and ~60 MB at 10^6 requests) would stay in the process while the timeline
is computed and the results are written (Arrow's writers allocate from their own pool,
mimalloc, and do not reuse it). `trim()` calls malloc_trim(0) where the C
library has it (glibc); elsewhere it does nothing. It changes no result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim() -> bool:
    """Return the C heap's free pages to the system; False where the C library cannot."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
