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
from llm_energy_sim.meter.nvml import GpuMeter


def _mean_power(meter: GpuMeter, seconds: float) -> float:
    e0, t0 = meter.energy_j(), time.perf_counter()
    time.sleep(seconds)
    return float((meter.energy_j() - e0).sum() / (time.perf_counter() - t0))


def _gemm_burst(seconds: float) -> None:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()


def _duty(meter: GpuMeter, on_s: float, off_s: float, total_s: float) -> tuple[float, float]:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    e0, t0 = meter.energy_j(), time.perf_counter()
    busy = 0.0
    while time.perf_counter() - t0 < total_s:
        ts = time.perf_counter()
        while time.perf_counter() - ts < on_s:
            a @ a
            torch.cuda.synchronize()
        busy += time.perf_counter() - ts
        time.sleep(off_s)
    el = time.perf_counter() - t0
    return float((meter.energy_j() - e0).sum() / el), busy / el


def measure_idle(out_csv: Path, decay_s: float = 25.0) -> None:
    """Rows: state, seconds since burst end (decay), power W. Must run before torch touches CUDA."""
    meter = GpuMeter([0])
    append_row(
        out_csv,
        {
            "state": "deep_idle_no_context",
            "t_s": "",
            "power_w": _mean_power(meter, 4.0),
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
        {"state": "active_idle_context", "t_s": "", "power_w": _mean_power(meter, 4.0), "duty": ""},
    )
    _gemm_burst(3.0)
    t0 = time.perf_counter()
    while (t := time.perf_counter() - t0) < decay_s:
        e0 = meter.energy_j()
        time.sleep(0.25)
        append_row(
            out_csv,
            {
                "state": "decay_after_gemm",
                "t_s": t + 0.125,
                "power_w": float((meter.energy_j() - e0).sum() / 0.25),
                "duty": "",
            },
        )
    for on, off in ((0.010, 0.010), (0.100, 0.100)):
        p, duty = _duty(meter, on, off, 4.0)
        append_row(
            out_csv,
            {
                "state": f"duty_{int(on * 1e3)}ms_on_{int(off * 1e3)}ms_off",
                "t_s": "",
                "power_w": p,
                "duty": duty,
            },
        )
    e0, t0 = meter.energy_j(), time.perf_counter()
    _gemm_burst(3.0)
    p = float((meter.energy_j() - e0).sum() / (time.perf_counter() - t0))
    append_row(out_csv, {"state": "gemm_back_to_back", "t_s": "", "power_w": p, "duty": 1.0})
    del keep
