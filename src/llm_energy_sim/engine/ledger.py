"""Energy ledger of one replica: busy intervals as they happen, idle gaps filled in at the end.

Intervals are appended to typed arrays (array.array: 8 bytes a value, not a Python float
each) and read back as numpy arrays without a copy, once per ledger (`arrays`): a run's
accounting asks for them many times.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from llm_energy_sim.config.profile import IdlePower
from llm_energy_sim.cost.idle import gap_energy_per_gpu


@dataclass
class Ledger:
    """Busy intervals of a replica (all its GPUs), recorded in time order."""

    n_gpus: int
    idle: IdlePower
    starts: array = field(default_factory=lambda: array("d"))
    ends: array = field(default_factory=lambda: array("d"))
    energy: array = field(default_factory=lambda: array("d"))  # all GPUs
    batch: array = field(default_factory=lambda: array("q"))
    p_last: array = field(default_factory=lambda: array("d"))  # per-GPU power, interval's last step
    queue_t: array = field(default_factory=lambda: array("d"))
    queue_len: array = field(default_factory=lambda: array("q"))
    _arrays: tuple | None = field(default=None, repr=False, compare=False)
    _gaps: tuple | None = field(default=None, repr=False, compare=False)
    _gap_e: tuple | None = field(default=None, repr=False, compare=False)

    def add_busy(
        self, start: float, end: float, energy_j: float, batch: int, p_last: float
    ) -> None:
        self._arrays = self._gaps = self._gap_e = None
        self.starts.append(start)
        self.ends.append(end)
        self.energy.append(energy_j)
        self.batch.append(batch)
        self.p_last.append(p_last)

    def note_queue(self, t: float, length: int) -> None:
        self.queue_t.append(t)
        self.queue_len.append(length)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(starts, ends, energy, batch, p_last) as float arrays, read-only, built once: for
        after the run (the first three are views of the ledger's own buffers, which cannot
        grow while such a view is alive: add_busy then raises BufferError)."""
        if self._arrays is None:
            out = tuple(
                _view(a).astype(float, copy=False)
                for a in (self.starts, self.ends, self.energy, self.batch, self.p_last)
            )
            for a in out:
                a.flags.writeable = False
            self._arrays = out
        return self._arrays

    def gaps(self, t_end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gap start, gap length, power of the step before) for every idle gap in [0, t_end]
        (kept for the last t_end asked: the accounting asks several times)."""
        arrays = self.arrays()
        key = (t_end, id(arrays))
        if self._gaps is not None and self._gaps[0] == key:
            return self._gaps[1]
        s, e, _, _, p = arrays
        g_start = np.concatenate([[0.0], e])
        g_end = np.concatenate([s, [max(t_end, e[-1] if len(e) else 0.0)]])
        p_before = np.concatenate([[self.idle.active_idle_w], p])
        out = (g_start, np.maximum(g_end - g_start, 0.0), p_before)
        for a in out:
            a.flags.writeable = False
        self._gaps = (key, out)
        return out

    def busy_energy(self) -> float:
        return float(np.sum(self.energy))

    def idle_energy(self, t_end: float) -> float:
        """Energy of every idle gap in [0, t_end], all GPUs."""
        return float(np.sum(self._gap_energy(t_end))) * self.n_gpus

    def _gap_energy(self, t_end: float) -> np.ndarray:
        """Energy of each gap, per GPU (kept with the gaps it belongs to)."""
        gaps = self.gaps(t_end)
        if self._gap_e is None or self._gap_e[0] is not gaps:
            _, length, p_before = gaps
            self._gap_e = (gaps, gap_energy_per_gpu(self.idle, p_before, length))
        return self._gap_e[1]

    def cumulative_energy(self, t: np.ndarray, t_end: float) -> np.ndarray:
        """Energy (all GPUs) drawn in [0, t] for each t: exact for gaps, linear within busy spans."""
        s, e, en, _, _ = self.arrays()
        g_start, g_len, p_before = self.gaps(t_end)
        gap_e = self._gap_energy(t_end) * self.n_gpus
        # cumulative energy at the start of each gap k (gap k precedes busy interval k)
        cum_gap_start = np.concatenate([[0.0], np.cumsum(gap_e[:-1] + en)])
        t = np.asarray(t, float)
        k = np.searchsorted(g_start, t, side="right") - 1  # gap k (and busy k-1 before it)
        k = np.clip(k, 0, len(g_start) - 1)
        into_gap = np.clip(t - g_start[k], 0.0, g_len[k])
        out = cum_gap_start[k] + gap_energy_per_gpu(self.idle, p_before[k], into_gap) * self.n_gpus
        # inside busy interval k (after gap k): linear share of its energy
        has_busy = k < len(s)
        kb = np.minimum(k, max(len(s) - 1, 0))
        if len(s):
            dur = np.maximum(e[kb] - s[kb], 1e-300)
            frac = np.clip((t - s[kb]) / dur, 0.0, 1.0)
            out = out + np.where(has_busy & (t > s[kb]), frac * en[kb], 0.0)
        return out


def _view(a: array) -> np.ndarray:
    """A numpy view of a typed array (no copy; empty arrays have no buffer to share)."""
    if not len(a):
        return np.zeros(0, float if a.typecode == "d" else np.int64)
    return np.frombuffer(a, float if a.typecode == "d" else np.int64)
