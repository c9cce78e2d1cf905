"""Idle power in its states, and the standby tail after short gaps (duty-cycle probe).

- deep idle: before this process creates a CUDA context (after whatever rest preceded it);
- active idle: context held, model-sized memory allocated, no kernels;
- decay: power samples for ~25 s after a burst of GEMMs;
- duty cycles: bf16 GEMMs 10 ms on / 10 ms off and 100/100, mean power over >= 3 s.
"""

from __future__ import annotations

import time
from pathlib import Path

from llm_energy_sim.calibrate.rawtable import append_row
from llm_energy_sim.meter.monitor import EnergyMonitor, Measurement


def _mean_power(monitor: EnergyMonitor, seconds: float) -> float:
    """Power of all metered GPUs over `seconds` of sleep."""
    with monitor.window("idle") as w:
        time.sleep(seconds)
    return _power(w.measurement)


def _power(m: Measurement) -> float:
    """Total power of the metered GPUs over a window (W); the monitor must meter a GPU."""
    return float(m.total_j / m.time_s)


def _gemm_burst(seconds: float) -> None:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()


def _duty(monitor: EnergyMonitor, on_s: float, off_s: float, total_s: float) -> tuple[float, float]:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    busy = 0.0
    with monitor.window("duty") as w:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < total_s:
            ts = time.perf_counter()
            while time.perf_counter() - ts < on_s:
                a @ a
                torch.cuda.synchronize()
            busy += time.perf_counter() - ts
            time.sleep(off_s)
    m = w.measurement
    return _power(m), busy / m.time_s


def measure_idle(out_csv: Path, monitor: EnergyMonitor, decay_s: float = 25.0) -> None:
    """Rows: state, seconds since burst end (decay), power W of the metered GPUs. Must run
    before torch touches CUDA (the deep-idle reading is of a process without a context)."""
    append_row(
        out_csv,
        {
            "state": "deep_idle_no_context",
            "t_s": "",
            "power_w": _mean_power(monitor, 4.0),
            "duty": "",
        },
    )
    import torch

    keep = torch.empty(
        int(16e9) // 2, dtype=torch.bfloat16, device="cuda"
    )  # a loaded 8B model's memory
    torch.cuda.synchronize()
    append_row(
        out_csv,
        {
            "state": "active_idle_context",
            "t_s": "",
            "power_w": _mean_power(monitor, 4.0),
            "duty": "",
        },
    )
    _gemm_burst(3.0)
    t0 = time.perf_counter()
    while (t := time.perf_counter() - t0) < decay_s:
        append_row(
            out_csv,
            {
                "state": "decay_after_gemm",
                "t_s": t + 0.125,
                "power_w": _mean_power(monitor, 0.25),
                "duty": "",
            },
        )
    for on, off in ((0.010, 0.010), (0.100, 0.100)):
        p, duty = _duty(monitor, on, off, 4.0)
        append_row(
            out_csv,
            {
                "state": f"duty_{int(on * 1e3)}ms_on_{int(off * 1e3)}ms_off",
                "t_s": "",
                "power_w": p,
                "duty": duty,
            },
        )
    with monitor.window("burst") as w:
        _gemm_burst(3.0)
    append_row(
        out_csv,
        {"state": "gemm_back_to_back", "t_s": "", "power_w": _power(w.measurement), "duty": 1.0},
    )
    del keep
