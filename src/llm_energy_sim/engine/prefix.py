"""Running sums of long float sequences a chunk at a time, the same floats as numpy's.

`np.cumsum` (add.accumulate) sums in one sequential pass; starting each chunk's pass from the
last running sum of the one before (prepended, not added afterwards) repeats that pass
exactly, so a run's accounting can read the running sums of millions of steps at a few
thousand positions without holding the whole sequence (tests/engine/test_prefix.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: elements summed per pass
CHUNK = 1 << 16


def chunks(n: int, size: int | None = None) -> Iterator[tuple[int, int]]:
    """(lo, hi) of consecutive slices covering range(n), CHUNK long (the last shorter)."""
    size = CHUNK if size is None else size
    for lo in range(0, n, size):
        yield lo, min(lo + size, n)


def running_sums(n: int, part: Callable[[int, int], np.ndarray]) -> Iterator[np.ndarray]:
    """For each chunk (lo, hi) of range(n), in order: cumsum(x)[lo:hi] of the sequence x whose
    slices part(lo, hi) gives, bit for bit the whole cumsum's."""
    carry = None
    for lo, hi in chunks(n):
        x = np.asarray(part(lo, hi), dtype=float)
        cs = np.cumsum(x if carry is None else np.concatenate(([carry], x)))
        cs = cs if carry is None else cs[1:]
        if len(cs):
            carry = cs[-1]
        yield cs


def prefix_at(n: int, part: Callable[[int, int], np.ndarray], idx: np.ndarray) -> np.ndarray:
    """concatenate([[0.0], cumsum(x)])[idx] for the sequence x of length n that part(lo, hi)
    gives slice by slice (idx in 0..n, any order)."""
    idx = np.asarray(idx, dtype=np.int64)
    out = np.zeros(idx.shape)
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    got = np.zeros(len(sorted_idx))
    for (lo, hi), cs in zip(chunks(n), running_sums(n, part), strict=True):
        # positions lo+1..hi of the prefix array are cs[0..hi-lo-1]
        a, b = np.searchsorted(sorted_idx, [lo + 1, hi + 1])
        got[a:b] = cs[sorted_idx[a:b] - lo - 1]
    out[order] = got
    return out


def values_at(n: int, part: Callable[[int, int], np.ndarray], idx: np.ndarray) -> np.ndarray:
    """x[idx] of the sequence part(lo, hi) gives slice by slice (idx in 0..n-1, any order)."""
    idx = np.asarray(idx, dtype=np.int64)
    out = np.zeros(idx.shape)
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    got = np.zeros(len(sorted_idx))
    for lo, hi in chunks(n):
        a, b = np.searchsorted(sorted_idx, [lo, hi])
        if b > a:
            got[a:b] = np.asarray(part(lo, hi), dtype=float)[sorted_idx[a:b] - lo]
    out[order] = got
    return out
