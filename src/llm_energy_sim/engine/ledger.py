"""Energy ledger of one replica: busy intervals as they happen, idle gaps filled in at the end.

Intervals are appended to typed arrays (array.array: 8 bytes a value, 4 a batch size, not a
Python object each) and read back as numpy arrays without a copy, once per ledger (`arrays`): a
run's accounting asks for them many times, and works on them a chunk at a time.

Most steps start where the one before ended (97% of a busy TGI run's), so the ledger keeps an
interval's end, energy and batch size, and only for an interval that starts later (after an
idle gap) its start and the power of the step before the gap: 20 bytes an interval instead
of 36. Starts are rebuilt exactly (a step that starts where the last ended has that float as
its start); the power before a gap of length 0 is not kept, its energy being 0 at any power.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from llm_energy_sim.config.profile import IdlePower
from llm_energy_sim.cost.idle import gap_energy_per_gpu
from llm_energy_sim.engine.prefix import chunks, prefix_at


@dataclass
class Ledger:
    """Busy intervals of a replica (all its GPUs), recorded in time order."""

    n_gpus: int
    idle: IdlePower
    ends: array = field(default_factory=lambda: array("d"))
    energy: array = field(default_factory=lambda: array("d"))  # all GPUs
    batch: array = field(default_factory=lambda: array("i"))  # 4 bytes: a batch size
    # the intervals after an idle gap (the first one included): index, start, and the
    # per-GPU power of the interval before (the last step's; active idle before the first)
    gap_at: array = field(default_factory=lambda: array("q"))
    gap_start: array = field(default_factory=lambda: array("d"))
    gap_p: array = field(default_factory=lambda: array("d"))
    queue_t: array = field(default_factory=lambda: array("d"))
    queue_len: array = field(default_factory=lambda: array("i"))
    _p_prev: float | None = field(default=None, repr=False)  # the last interval's p_last
    _arrays: tuple | None = field(default=None, repr=False, compare=False)
    _gap_e: tuple | None = field(default=None, repr=False, compare=False)  # idle_energy's

    def add_busy(
        self, start: float, end: float, energy_j: float, batch: int, p_last: float
    ) -> None:
        """A busy interval [start, end] (after the last one), its energy (all GPUs), batch
        size and per-GPU power of its last step."""
        self._arrays = self._gap_e = None
        ends = self.ends
        if not ends or start != ends[-1]:
            self.gap_at.append(len(ends))
            self.gap_start.append(start)
            self.gap_p.append(self.idle.active_idle_w if self._p_prev is None else self._p_prev)
        ends.append(end)
        self.energy.append(energy_j)
        self.batch.append(batch)
        self._p_prev = p_last

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def starts(self) -> np.ndarray:
        """Every interval's start (arrays()[0])."""
        return self.arrays()[0]

    def note_queue(self, t: float, length: int) -> None:
        self.queue_t.append(t)
        self.queue_len.append(length)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(starts, ends, energy, batch), read-only, built once: for after the run. Ends,
        energy and batch sizes (4-byte ints) are views of the ledger's own buffers, which
        cannot grow while such a view is alive (add_busy then raises BufferError); the starts
        are rebuilt."""
        if self._arrays is None:
            e = array_view(self.ends)
            starts = np.empty(len(e))
            if len(e):
                starts[1:] = e[:-1]
                starts[array_view(self.gap_at)] = array_view(self.gap_start)
            out = (starts, e, array_view(self.energy), array_view(self.batch))
            for a in out:
                a.flags.writeable = False
            self._arrays = out
        return self._arrays

    def _p_before(self, k: np.ndarray) -> np.ndarray:
        """Per-GPU power of the step before gap k (k in 0..n: active idle before the first
        step), for every gap with a length; active idle for a gap of length 0 (between
        back-to-back steps), whose energy is 0 whatever the power."""
        k = np.asarray(k, np.int64)
        out = np.full(k.shape, self.idle.active_idle_w)
        at, gp = array_view(self.gap_at), array_view(self.gap_p)
        if len(at):
            j = np.minimum(np.searchsorted(at, k), len(at) - 1)
            hit = at[j] == k
            out[hit] = gp[j[hit]]
        if len(self.ends):
            out[k == len(self.ends)] = self._p_prev
        return out

    def release(self) -> None:
        """Forget every interval and queue note (after the run's accounting: a million-request
        run's ledgers are ~130 MB that writing the requests table does not need)."""
        self._arrays = self._gap_e = self._p_prev = None
        for name in ("ends", "energy", "gap_start", "gap_p", "queue_t"):
            setattr(self, name, array("d"))
        self.batch, self.queue_len, self.gap_at = array("i"), array("i"), array("q")

    def _last_end(self, t_end: float) -> float:
        """Where the last gap ends: t_end, or the last step's end if that is later."""
        return max(t_end, self.ends[-1] if len(self.ends) else 0.0)

    def gaps(self, t_end: float, lo: int = 0, hi: int | None = None) -> tuple[np.ndarray, ...]:
        """(gap start, gap length, power of the step before) of idle gaps lo..hi-1 of the
        n + 1 in [0, t_end] (gap j precedes busy interval j; default: all). Gaps between
        back-to-back steps have length 0 (and active idle as the power before: _p_before)."""
        s, e, _, _ = self.arrays()
        n = len(s)
        hi = n + 1 if hi is None else hi
        g_start = np.concatenate([[0.0], e[: hi - 1]] if lo == 0 else [e[lo - 1 : hi - 1]])
        g_end = s[lo:hi] if hi <= n else np.concatenate([s[lo:], [self._last_end(t_end)]])
        p_before = self._p_before(np.arange(lo, hi))
        return g_start, np.maximum(g_end - g_start, 0.0), p_before

    def busy_energy(self) -> float:
        return float(np.sum(array_view(self.energy)))  # (np.sum of the array.array: a copy)

    def idle_energy(self, t_end: float) -> float:
        """Energy of every idle gap in [0, t_end], all GPUs (summed a chunk of gaps at a time,
        and kept for the last t_end asked: the accounting asks several times)."""
        arrays = self.arrays()
        key = (t_end, id(arrays))
        if self._gap_e is None or self._gap_e[0] != key:
            total = 0.0
            for lo, hi in chunks(len(arrays[0]) + 1):
                total += float(np.sum(self._gap_energy(t_end, lo, hi)))
            self._gap_e = (key, total)
        return self._gap_e[1] * self.n_gpus

    def _gap_energy(self, t_end: float, lo: int, hi: int) -> np.ndarray:
        """Energy of gaps lo..hi-1, per GPU (no whole-run array: a chunk is asked at a time)."""
        _, length, p_before = self.gaps(t_end, lo, hi)
        return gap_energy_per_gpu(self.idle, p_before, length)

    def cumulative_energy(self, t: np.ndarray, t_end: float) -> np.ndarray:
        """Energy (all GPUs) drawn in [0, t] for each t: exact for gaps, linear within busy spans.
        (The running sum of gap and busy energies is read at the gaps the times fall in, a
        chunk at a time: engine/prefix.py.)"""
        s, e, en, _ = self.arrays()
        n = len(s)
        t = np.asarray(t, float)
        # gap k (and busy k-1 before it): gap k starts at the end of step k-1 (gap 0 at 0)
        k = np.clip(np.searchsorted(e, t, side="right"), 0, n)
        if n:
            before = np.maximum(k - 1, 0)
            g_start = np.where(k == 0, 0.0, e[before])
            g_end = np.where(k < n, s[np.minimum(k, n - 1)], self._last_end(t_end))
            p_before = self._p_before(k)
        else:
            g_start, g_end = np.zeros(t.shape), np.full(t.shape, self._last_end(t_end))
            p_before = np.full(t.shape, self.idle.active_idle_w)
        g_len = np.maximum(g_end - g_start, 0.0)
        # cumulative energy at the start of each gap k: gaps and busy intervals before it
        cum_gap_start = prefix_at(
            n, lambda lo, hi: self._gap_energy(t_end, lo, hi) * self.n_gpus + en[lo:hi], k
        )
        into_gap = np.clip(t - g_start, 0.0, g_len)
        out = cum_gap_start + gap_energy_per_gpu(self.idle, p_before, into_gap) * self.n_gpus
        # inside busy interval k (after gap k): linear share of its energy
        has_busy = k < n
        kb = np.minimum(k, max(n - 1, 0))
        if n:
            dur = np.maximum(e[kb] - s[kb], 1e-300)
            frac = np.clip((t - s[kb]) / dur, 0.0, 1.0)
            out = out + np.where(has_busy & (t > s[kb]), frac * en[kb], 0.0)
        return out


def array_view(a: array) -> np.ndarray:
    """A numpy view of a typed array (no copy; empty arrays have no buffer to share)."""
    dtype = {"d": np.float64, "q": np.int64, "i": np.intc}[a.typecode]
    if not len(a):
        return np.zeros(0, dtype)
    return np.frombuffer(a, dtype)
