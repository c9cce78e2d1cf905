"""The decorator tgicore's functions are compiled with: numba.njit(cache=True) (the compile
is paid once per machine and kept in numba's cache), or the functions as they are where
numba is missing or NUMBA_DISABLE_JIT is set (then the loop runs, slowly, in Python)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; kept for a bare install
    numba = None


def jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn compiled in nopython mode, IEEE arithmetic (no fastmath), cached on disk."""
    if numba is None:
        return fn
    return numba.njit(cache=True, nogil=True)(fn)
