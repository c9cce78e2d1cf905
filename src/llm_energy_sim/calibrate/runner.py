"""Run the microbenchmark grid, appending one raw row per point (skips points already there).

A point is its kernel repeated for a metered window of at least 1 s in all (the H100's
total-energy counter updates about every 100 ms: docs/replay.md, "The meter"), split into >= 3 timed parts
whose spread is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from llm_energy_sim.calibrate.grid import Point
from llm_energy_sim.calibrate.microbench import make_kernel, supported
from llm_energy_sim.calibrate.rawtable import GPU_STATE_FIELDS, append_row, done_keys
from llm_energy_sim.meter.monitor import EnergyMonitor


def _sync(device: str):
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


@dataclass(frozen=True)
class PointMeasurement:
    seconds: float  # median over sub-windows of the mean time per call
    spread: float  # (max - min) / median over sub-windows
    calls: int
    window_s: float
    energy_j_per_call: float | None
    power_w: float | None  # mean per metered GPU
    state: dict


def measure(
    fn: Callable[[], None],
    sync: Callable[[], None],
    monitor: EnergyMonitor,
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
    means: list[float] = []
    with monitor.window("point") as w:
        start = time.perf_counter()
        while len(means) < windows or time.perf_counter() - start < window_s:
            ts = time.perf_counter()
            for _ in range(per_window):
                fn()
            sync()
            means.append((time.perf_counter() - ts) / per_window)
    m = w.measurement
    calls = per_window * len(means)
    med = float(np.median(means))
    return PointMeasurement(
        med,
        float((max(means) - min(means)) / med),
        calls,
        m.time_s,
        None if m.total_j is None else m.total_j / calls,
        m.mean_power_w,
        monitor.state(),
    )


def run_grid(
    points: list[Point],
    out_csv: Path,
    monitor: EnergyMonitor,
    device: str = "cuda",
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
            m = measure(fn, sync, monitor, window_s=window_s)
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
            **{k: (m.state.get(k, "") if m else "") for k in GPU_STATE_FIELDS},
            "error": err,
            "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        append_row(out_csv, row)
        n += 1
        del fn
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return n
