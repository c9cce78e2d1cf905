"""The time series of GPU energy a live run needs: a thread sampling the energy counters.

A replay attributes energy to requests and to intervals (results/measured.py), so it needs
the cumulative counters over time rather than one window (meter/monitor.py). The sampler
reads through the NVML wrapper (meter/nvml.py) every POLL_S, faster than the counter's
~100 ms updates (docs/replay.md, "The meter"), from construction until stop(); the caller stops it on every
exit path (its `finally`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from llm_energy_sim.meter.monitor import Reader
from llm_energy_sim.meter.nvml import Nvml

POLL_S = 0.02  # faster than the counter's ~0.1 s updates, so no update is missed by long


class EnergySampler:
    """Samples `read` (cumulative J per GPU) with perf_counter times in its own thread;
    `names` label the GPUs; `close` runs after the last reading (releases the meter)."""

    def __init__(
        self,
        read: Reader,
        names: Sequence[str],
        close: Callable[[], None] = lambda: None,
        poll_s: float = POLL_S,
    ) -> None:
        self._read_j, self._close, self._poll_s = read, close, poll_s
        self.names = tuple(names)
        self.t: list[float] = []
        self.j: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="energy-sampler", daemon=True)
        self._read()
        self._thread.start()

    def _read(self) -> None:
        vals = self._read_j()
        self.t.append(time.perf_counter())
        self.j.append(vals)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            self._read()

    def stop(self, t0: float):
        """Stop the thread, take a last reading, release the meter; the samples as
        llm_energy_sim.results.measured.EnergySamples with times relative to t0 (to the first
        sample when t0 is not finite: a run interrupted before it started)."""
        from llm_energy_sim.results.measured import EnergySamples

        self._stop.set()
        self._thread.join(timeout=5)
        self._read()
        self._close()
        t = np.asarray(self.t) - (t0 if np.isfinite(t0) else self.t[0])
        e = np.asarray(self.j, dtype=float)
        return EnergySamples(t, counter_steps(t, e), self.names)


def counter_steps(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Keep the counter's own update instants: repeated readings between two updates carry no
    new information, so each run of equal values is replaced by a linear ramp from the
    reading where it started to the next change (the energy came in over that time)."""
    out = e.copy()
    for g in range(e.shape[1]):
        col = e[:, g]
        change = np.flatnonzero(np.diff(col) != 0) + 1
        keep = np.concatenate([[0], change, [len(col) - 1]])
        out[:, g] = np.interp(t, t[keep], col[keep])
    return out


def start_meter(gpu_ids: Sequence[int]) -> EnergySampler:
    """Start sampling the NVML energy counters of these GPUs (labels 'index:name')."""
    nvml = Nvml(gpu_ids)
    names = [f"{i}:{n}" for i, n in zip(nvml.indices, nvml.names(), strict=True)]
    return EnergySampler(nvml.energy_j, names, nvml.close)
