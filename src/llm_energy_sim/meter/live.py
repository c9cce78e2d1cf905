"""The replay's view of the GPU energy meter: start it, stop it, get cumulative joules per GPU.

The meter itself belongs to calibration (meter/nvml.py); this module only adapts its
readings to llm_energy_sim.results.measured.EnergySamples (times relative to the replay's t0). Until that module
exists, a stopgap polls NVML's total-energy counter (mJ, updated ~every 100 ms on the H100,
the reading docs/replay.md describes) in its own thread; it is stopped on every exit path by
the caller's `finally`.
"""

from __future__ import annotations

import threading
import time

import numpy as np

POLL_S = 0.02  # faster than the counter's ~0.1 s updates, so no update is missed by long


class NvmlEnergyPoller:
    """One thread sampling nvmlDeviceGetTotalEnergyConsumption of each GPU every 20 ms."""

    def __init__(self, gpu_ids: list[int]) -> None:
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in gpu_ids]
        self.names = tuple(
            f"{i}:{_as_str(pynvml.nvmlDeviceGetName(h))}"
            for i, h in zip(gpu_ids, self.handles, strict=True)
        )
        self.t: list[float] = []
        self.mj: list[list[int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nvml-energy", daemon=True)
        self._read()
        self._thread.start()

    def _read(self) -> None:
        vals = [self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]
        self.t.append(time.perf_counter())
        self.mj.append(vals)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self._read()

    def stop(self, t0: float):
        """Stop the thread and return llm_energy_sim.results.measured.EnergySamples relative to t0."""
        from llm_energy_sim.results.measured import EnergySamples

        self._stop.set()
        self._thread.join(timeout=5)
        self._read()
        self._nvml.nvmlShutdown()
        t = np.asarray(self.t) - (t0 if np.isfinite(t0) else self.t[0])
        e = np.asarray(self.mj, dtype=float) / 1000.0
        return EnergySamples(t, _counter_steps(t, e), self.names)


def _counter_steps(t: np.ndarray, e: np.ndarray) -> np.ndarray:
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


def _as_str(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def start_meter(gpu_ids: list[int]):
    """Start the time-series energy meter of a live run (meter/nvml.py does the fixed
    windows of microbenchmarks; a live run needs counter samples over time instead)."""
    return NvmlEnergyPoller(gpu_ids)
