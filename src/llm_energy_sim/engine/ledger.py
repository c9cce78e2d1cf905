"""Energy ledger of one replica: busy intervals as they happen, idle gaps filled in at the end.

Intervals are appended to typed arrays (array.array: 8 bytes a value, 4 a batch size, not a
Python object each) and read back as numpy arrays without a copy, once per ledger (`arrays`): a
run's accounting asks for them many times, and works on them a chunk at a time.
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
    starts: array = field(default_factory=lambda: array("d"))
    ends: array = field(default_factory=lambda: array("d"))
    energy: array = field(default_factory=lambda: array("d"))  # all GPUs
    batch: array = field(default_factory=lambda: array("i"))  # 4 bytes: a batch size
    p_last: array = field(default_factory=lambda: array("d"))  # per-GPU power, interval's last step
    queue_t: array = field(default_factory=lambda: array("d"))
    queue_len: array = field(default_factory=lambda: array("i"))
    _arrays: tuple | None = field(default=None, repr=False, compare=False)
    _gap_e: tuple | None = field(default=None, repr=False, compare=False)  # idle_energy's

    def add_busy(
        self, start: float, end: float, energy_j: float, batch: int, p_last: float
    ) -> None:
        self._arrays = self._gap_e = None
        self.starts.append(start)
        self.ends.append(end)
        self.energy.append(energy_j)
        self.batch.append(batch)
        self.p_last.append(p_last)

    def note_queue(self, t: float, length: int) -> None:
        self.queue_t.append(t)
        self.queue_len.append(length)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(starts, ends, energy, batch, p_last), read-only, built once: for after the run.
        Views of the ledger's own buffers, no copy (batch sizes stay 4-byte ints), which
        cannot grow while such a view is alive: add_busy then raises BufferError."""
        if self._arrays is None:
            out = tuple(
                array_view(a)
                for a in (self.starts, self.ends, self.energy, self.batch, self.p_last)
            )
            for a in out:
                a.flags.writeable = False
            self._arrays = out
        return self._arrays

    def release(self) -> None:
        """Forget every interval and queue note (after the run's accounting: a million-request
        run's ledgers are ~130 MB that writing the requests table does not need)."""
        self._arrays = self._gap_e = None
        for name in ("starts", "ends", "energy", "p_last", "queue_t"):
            setattr(self, name, array("d"))
        self.batch, self.queue_len = array("i"), array("i")

    def _last_end(self, t_end: float) -> float:
        """Where the last gap ends: t_end, or the last step's end if that is later."""
        return max(t_end, self.ends[-1] if len(self.ends) else 0.0)

    def gaps(self, t_end: float, lo: int = 0, hi: int | None = None) -> tuple[np.ndarray, ...]:
        """(gap start, gap length, power of the step before) of idle gaps lo..hi-1 of the
        n + 1 in [0, t_end] (gap j precedes busy interval j; default: all). Gaps between
        back-to-back steps have length 0."""
        s, e, _, _, p = self.arrays()
        n = len(s)
        hi = n + 1 if hi is None else hi
        g_start = np.concatenate([[0.0], e[: hi - 1]] if lo == 0 else [e[lo - 1 : hi - 1]])
        g_end = s[lo:hi] if hi <= n else np.concatenate([s[lo:], [self._last_end(t_end)]])
        p_before = np.concatenate(
            [[self.idle.active_idle_w], p[: hi - 1]] if lo == 0 else [p[lo - 1 : hi - 1]]
        )
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
        s, e, en, _, p = self.arrays()
        n = len(s)
        t = np.asarray(t, float)
        # gap k (and busy k-1 before it): gap k starts at the end of step k-1 (gap 0 at 0)
        k = np.clip(np.searchsorted(e, t, side="right"), 0, n)
        if n:
            before = np.maximum(k - 1, 0)
            g_start = np.where(k == 0, 0.0, e[before])
            g_end = np.where(k < n, s[np.minimum(k, n - 1)], self._last_end(t_end))
            p_before = np.where(k == 0, self.idle.active_idle_w, p[before])
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
