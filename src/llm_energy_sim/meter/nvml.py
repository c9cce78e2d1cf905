"""NVML energy meter for microbenchmarks: total-energy counters, instant power, clocks.

The H100's total-energy counter (mJ) updates about every 100 ms, so every measured point
repeats its kernel for a window of at least 1 s; `nvmlDeviceGetPowerUsage` is a 1 s moving
average (it lagged the counter by 7% over a 6.8 s GEMM), so instant power
(NVML_FI_DEV_POWER_INSTANT) is used for timelines (docs/replay.md, "The meter").
Without NVML (a CPU machine) the meter reports timing only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llm_energy_sim.config.errors import UserError


def _str(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class GpuMeter:
    """Counters of the GPUs with the given indices (NVML indices = CUDA indices here)."""

    def __init__(self, indices: list[int]) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # ImportError or NVMLError: no GPU metering possible
            raise UserError(
                f"no NVML on this machine ({type(exc).__name__}: {exc}); sim calibrate needs an NVIDIA GPU"
            ) from None
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices]

    def energy_j(self) -> np.ndarray:
        return (
            np.array([self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]) / 1e3
        )

    def power_w(self) -> np.ndarray:
        out = []
        for h in self.handles:
            try:
                fid = self.nvml.NVML_FI_DEV_POWER_INSTANT
                v = self.nvml.nvmlDeviceGetFieldValues(h, [fid])[0]
                out.append(
                    v.value.uiVal / 1e3
                    if v.nvmlReturn == 0
                    else self.nvml.nvmlDeviceGetPowerUsage(h) / 1e3
                )
            except Exception:
                out.append(self.nvml.nvmlDeviceGetPowerUsage(h) / 1e3)
        return np.array(out)

    def state(self) -> dict:
        """Clocks and throttle reasons of the first GPU, recorded beside every point."""
        h, n = self.handles[0], self.nvml
        return {
            "sm_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
            "mem_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
            "throttle_reasons": hex(n.nvmlDeviceGetCurrentClocksThrottleReasons(h)),
            "temperature_c": n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
        }

    def info(self) -> dict:
        h, n = self.handles[0], self.nvml
        return {
            "gpu_name": _str(n.nvmlDeviceGetName(h)),
            "driver": _str(n.nvmlSystemGetDriverVersion()),
            "memory_bytes": int(n.nvmlDeviceGetMemoryInfo(h).total),
            "power_limit_w": n.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3,
        }


@dataclass(frozen=True)
class PointMeasurement:
    seconds: float  # median over sub-windows of the mean time per call
    spread: float  # (max - min) / median over sub-windows
    calls: int
    window_s: float
    energy_j_per_call: float | None
    power_w: float | None
    state: dict


def measure(
    fn: Callable[[], None],
    sync: Callable[[], None],
    meter: GpuMeter | None,
    window_s: float = 1.0,
    windows: int = 3,
    warmup: int = 3,
) -> PointMeasurement:
    """Repeat fn for >= window_s in total (at least `windows` timed parts), metering energy
    over the whole, after warm-up and a pipelined sizing batch."""
    for _ in range(warmup):
        fn()
    sync()
    # size the loop on a pipelined batch: one synced call also pays the launch + sync latency,
    # which made tiny kernels' windows far shorter than window_s (0.12-0.9 s in the first
    # H100 table); then keep adding windows until the metered time really is >= window_s
    batch, one = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        sync()
        one = max((time.perf_counter() - t0) / batch, 1e-7)
        if one * batch >= 0.02 or batch >= 4096:
            break
        batch *= 4
    per_window = max(int(window_s / windows / one), 1)
    e0 = meter.energy_j() if meter else None
    start = time.perf_counter()
    means: list[float] = []
    while len(means) < windows or time.perf_counter() - start < window_s:
        ts = time.perf_counter()
        for _ in range(per_window):
            fn()
        sync()
        means.append((time.perf_counter() - ts) / per_window)
    elapsed = time.perf_counter() - start
    calls = per_window * len(means)
    e = p = None
    if meter:
        de = float((meter.energy_j() - e0).sum())
        e, p = de / calls, de / elapsed / len(meter.handles)
    med = float(np.median(means))
    return PointMeasurement(
        med,
        float((max(means) - min(means)) / med),
        calls,
        elapsed,
        e,
        p,
        meter.state() if meter else {},
    )
