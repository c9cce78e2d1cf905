"""Tensor-parallel interconnect: NCCL all-reduce latency and energy, and its fitted model.

One process per GPU (torch.multiprocessing, started by `sim calibrate --interconnect`);
for each group size g (2, 4, ... up to the GPU count) the first g ranks all-reduce bf16
buffers from a few KB to hundreds of MB while every GPU of the node -- busy or idle -- is
metered through NVML's total-energy counter over windows of >= 1 s. The same code runs
on CPU with the gloo backend (timing only), which is how CI exercises it.

Fitted model (llm_energy_sim.config.profile.Interconnect): t = alpha + 2(g-1)/g * bytes / bus_bandwidth,
power_w = mean power per participating GPU during large all-reduces.
"""

from __future__ import annotations

import csv
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm_energy_sim.calibrate.rawread import read_raw
from llm_energy_sim.meter.monitor import EnergyMonitor

# NVLink multicast stays off: it can take a shared host's GPUs out of service (device docs)
SAFE_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
DEFAULT_SIZES = [2**k for k in range(12, 29, 2)]  # 4 KiB .. 256 MiB
FIELDS = [
    "backend",
    "world",
    "group",
    "bytes",
    "iters",
    "repeat",
    "seconds_per_call",
    "energy_j_group",
    "energy_j_idle_gpus",
    "power_w_per_group_gpu",
    "power_w_per_idle_gpu",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    rank: int,
    world: int,
    port: int,
    backend: str,
    sizes: list[int],
    groups: list[int],
    window_s: float,
    repeats: int,
    out_csv: str,
) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(SAFE_ENV)
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    cuda = backend == "nccl"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    # rank 0 meters every GPU of the node, busy or idle; the others time only
    monitor = EnergyMonitor(list(range(world)) if cuda and rank == 0 else [])
    handles = {g: dist.new_group(list(range(g))) for g in groups}  # every rank creates every group
    rows = []
    for g in groups:
        member = rank < g
        for nbytes in sizes:
            x = torch.ones(max(nbytes // 2, 1), dtype=torch.bfloat16, device=device)
            if member:
                for _ in range(3):
                    dist.all_reduce(x, group=handles[g])
            sync()
            # iterations for a >= window_s meter window, decided by rank 0 and shared
            probe = torch.zeros(1, dtype=torch.float64, device=device)
            if member:
                t0 = time.perf_counter()
                for _ in range(5):
                    dist.all_reduce(x, group=handles[g])
                sync()
                probe[0] = (time.perf_counter() - t0) / 5
            dist.broadcast(probe, src=0)
            iters = int(min(max(window_s / max(float(probe[0]), 1e-7), 5), 200_000))
            for rep in range(repeats):
                dist.barrier()
                with monitor.window("allreduce") as w:
                    if member:
                        for _ in range(iters):
                            dist.all_reduce(x, group=handles[g])
                    sync()
                m = w.measurement
                took = torch.tensor(
                    [m.time_s if member else 0.0], dtype=torch.float64, device=device
                )
                dist.all_reduce(took, op=dist.ReduceOp.MAX)
                if rank == 0:
                    t = float(took[0])
                    row = {
                        "backend": backend,
                        "world": world,
                        "group": g,
                        "bytes": nbytes,
                        "iters": iters,
                        "repeat": rep,
                        "seconds_per_call": t / iters,
                    }
                    if m.energy_j is not None:
                        eg, ei = float(m.energy_j[:g].sum()), float(m.energy_j[g:].sum())
                        row.update(
                            energy_j_group=eg,
                            energy_j_idle_gpus=ei,
                            power_w_per_group_gpu=eg / t / g,
                            power_w_per_idle_gpu=(ei / t / (world - g)) if world > g else "",
                        )
                    rows.append(row)
                    _append(out_csv, row)
            del x
    dist.barrier()
    dist.destroy_process_group()


def _append(path: str, row: dict) -> None:
    new = not Path(path).exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in FIELDS})


def measure_allreduce(
    out_csv: Path,
    world: int | None = None,
    backend: str | None = None,
    sizes: list[int] | None = None,
    window_s: float = 1.0,
    repeats: int = 3,
) -> Path:
    """Spawn one process per GPU (or `world` CPU processes with gloo) and append rows to out_csv."""
    import torch
    import torch.multiprocessing as mp

    os.environ.update(SAFE_ENV)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= 2 else "gloo"
    if world is None:
        world = torch.cuda.device_count() if backend == "nccl" else 2
    groups = [g for g in (2, 4, 8) if g <= world]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    mp.spawn(
        _worker,
        args=(
            world,
            _free_port(),
            backend,
            sizes or DEFAULT_SIZES,
            groups,
            window_s,
            repeats,
            str(out_csv),
        ),
        nprocs=world,
        join=True,
    )
    return out_csv


@dataclass(frozen=True)
class InterconnectFit:
    group: int
    alpha_s: float
    bus_bandwidth: float
    power_w: float | None
    n_points: int
    time_median_ape: float
    time_p90_ape: float


def _allreduce_time(p: np.ndarray, nbytes: np.ndarray, factor: float) -> np.ndarray:
    """alpha + factor * bytes / bandwidth, with p = (log alpha, log bandwidth)."""
    return np.exp(p[0]) + factor * nbytes / np.exp(p[1])


def fit_allreduce(rows, large_bytes: int = 2**20) -> list[InterconnectFit]:
    """Fit alpha and bus bandwidth per group size on log error; every 4th size is held out."""
    import pandas as pd
    from scipy.optimize import least_squares

    df = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
    med = df.groupby(["group", "bytes"], as_index=False)["seconds_per_call"].median()
    fits = []
    for g, d in med.groupby("group"):
        d = d.sort_values("bytes").reset_index(drop=True)
        held = d.index % 4 == 3
        train = d[~held] if (~held).sum() >= 3 else d
        test = d[held] if held.any() else d
        factor = 2.0 * (g - 1) / g
        sol = least_squares(
            lambda p, b, t, f: np.log(_allreduce_time(p, b, f)) - np.log(t),
            x0=[np.log(2e-5), np.log(1e11)],
            args=(train["bytes"].to_numpy(), train["seconds_per_call"].to_numpy(), factor),
        )
        pred = _allreduce_time(sol.x, test["bytes"].to_numpy(), factor)
        ape = np.abs(pred / test["seconds_per_call"].to_numpy() - 1) * 100
        power = None
        if "power_w_per_group_gpu" in df.columns:
            p = pd.to_numeric(
                df[(df.group == g) & (df.bytes >= large_bytes)]["power_w_per_group_gpu"],
                errors="coerce",
            ).dropna()
            power = float(p.median()) if len(p) else None
        fits.append(
            InterconnectFit(
                int(g),
                float(np.exp(sol.x[0])),
                float(np.exp(sol.x[1])),
                power,
                len(d),
                float(np.median(ape)),
                float(np.percentile(ape, 90)),
            )
        )
    return fits


def fits_to_profile_entries(fits: list[InterconnectFit], source: str) -> dict:
    """Profile `interconnect` entries (keyed by GPU count) for fits that have a measured power."""
    from llm_energy_sim.config.profile import FitError, Interconnect

    out = {}
    for f in fits:
        if f.power_w is None:
            continue
        out[str(f.group)] = Interconnect(
            alpha_s=f.alpha_s,
            bus_bandwidth=f.bus_bandwidth,
            power_w=f.power_w,
            fit_error=FitError(
                n_points=f.n_points, time_median_ape=f.time_median_ape, time_p90_ape=f.time_p90_ape
            ),
            source=source,
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """python -m llm_energy_sim.calibrate.interconnect --out DIR: measure on this node, fit, write CSV + JSON."""
    import argparse
    import json
    from datetime import datetime, timezone

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--window-s", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fit-only", action="store_true", help="refit OUT/allreduce.csv")
    args = ap.parse_args(argv)
    csv_path = args.out / "allreduce.csv"
    if not args.fit_only:
        measure_allreduce(csv_path, window_s=args.window_s, repeats=args.repeats)
    df = read_raw(csv_path)
    fits = fit_allreduce(df)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    source = f"calibrate/interconnect.py all-reduce benchmark (NCCL, bf16, {args.repeats} windows of >= {args.window_s} s per size), fitted {when}; raw: allreduce.csv"
    entries = {
        k: v.model_dump(mode="json") for k, v in fits_to_profile_entries(fits, source).items()
    }
    (args.out / "interconnect_fit.json").write_text(json.dumps(entries, indent=2) + "\n")
    for f in fits:
        print(
            f"g={f.group}: alpha={f.alpha_s * 1e6:.1f} us, bus bandwidth={f.bus_bandwidth / 1e9:.1f} GB/s, "
            f"power={f.power_w} W/GPU, held-out time error median {f.time_median_ape:.1f}% p90 {f.time_p90_ape:.1f}%"
        )


if __name__ == "__main__":
    main()
