"""Run the microbenchmark grid, appending one raw row per point (skips points already there)."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from llm_energy_sim.calibrate.grid import Point
from llm_energy_sim.calibrate.microbench import make_kernel, supported
from llm_energy_sim.calibrate.rawtable import append_row, done_keys
from llm_energy_sim.meter.nvml import GpuMeter, measure

STATE_FIELDS = ("sm_clock_mhz", "mem_clock_mhz", "throttle_reasons", "temperature_c")


def _sync(device: str):
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def run_grid(
    points: list[Point],
    out_csv: Path,
    device: str = "cuda",
    meter: GpuMeter | None = None,
    window_s: float = 1.0,
    budget_s: float | None = None,
    progress: bool = True,
) -> int:
    """Measure every point not yet in out_csv; stops (resumably) when the budget is spent."""
    import torch
    from tqdm import tqdm

    done = done_keys(out_csv)
    todo = [p for p in points if p.key not in done]
    start = time.monotonic()
    n = 0
    sync = _sync(device)
    for p in tqdm(todo, desc="microbenchmarks", unit="pt", disable=not progress):
        if budget_s is not None and time.monotonic() - start > budget_s:
            break
        if not supported(p, device):
            continue
        g = p.kernel()
        try:
            fn = make_kernel(p, device)
            m = measure(fn, sync, meter, window_s=window_s)
        except (RuntimeError, ValueError) as exc:  # e.g. a shape a backend refuses: record, go on
            m, err = None, f"{type(exc).__name__}: {exc}"[:200]
        else:
            err = ""
        row = {
            "key": p.key,
            **asdict(p),
            "flops": g.flops,
            "bytes": g.bytes,
            "count": g.count,
            "seconds": m.seconds if m else "",
            "spread": m.spread if m else "",
            "calls": m.calls if m else "",
            "window_s": m.window_s if m else "",
            "energy_j": m.energy_j_per_call if m and m.energy_j_per_call is not None else "",
            "power_w": m.power_w if m and m.power_w is not None else "",
            **{k: (m.state.get(k, "") if m else "") for k in STATE_FIELDS},
            "error": err,
            "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        append_row(out_csv, row)
        n += 1
        del fn
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return n
