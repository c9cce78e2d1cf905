"""Fit transformers CB's serial host work per KV token read (HostOverhead.per_kv_token_s).

Between two forwards the engine builds the next step's tensors on the host with the GPU
drained (cost/costmodel.ENGINE_SHAPES host_serial); its read index covers every cached token of
every running request, so that work grows with the KV tokens a step reads, which the host
tables (batches of 1-32 over small KV) cannot separate from the per-request term. The probe
(tools/device/kv_host_probe.py, measurements/calibration/h200-kvhost) times the engine's
phases (schedule, tensors, update: the serial part) over 12 decode-only steps at batch 64-256
over 21k-88k KV tokens, each point between two host-speed passes.

Per engine entry: each point's serial time in calibration-host time (divided by the geometric
mean of its two passes' factors) less the entry's own per-step and per-request terms; the
least-squares slope through zero of that excess against the point's KV tokens, floored at 0
(an engine whose excess does not grow with the KV gets none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.calibrate.hostspeed import host_time_factor
from llm_energy_sim.config.profile import HostOverhead, Profile

SERIAL_PHASES = ("schedule", "tensors", "update")  # tools/device/step_probe.py's phases
MODE_OF_ENGINE = {"transformers_cb_graphs": "graphs", "transformers_cb": "eager"}


@dataclass(frozen=True)
class KvHostFit:
    per_kv_token_s: float  # calibration-host seconds per KV token read, >= 0
    raw_slope_s: float  # the least-squares slope before the floor at 0
    points: int
    median_error: float  # median |relative error| of the serial time, with the slope
    kv_range: tuple[int, int]
    factor_range: tuple[float, float]


def serial_points(raw: Path, profile: Profile) -> pd.DataFrame:
    """One row per (batch, prompt, mode): serial_s (median over the plain window), kv (median
    KV tokens read), factor (geometric mean of the point's two passes)."""
    phases = pd.read_csv(raw / "phases.csv.gz")
    steps = pd.read_csv(raw / "steps.csv.gz")
    passes = host_time_factor(pd.read_csv(raw / "hostspeed.csv.gz"), profile)
    passes["point"] = passes["tag"].str.extract(r"point-(\d+)-", expand=False).astype(int)
    by_point = passes.groupby("point")["host_time_factor"].apply(
        lambda f: float(np.exp(np.log(f).mean()))
    )
    per_phase = (
        phases[phases["phase"].isin(SERIAL_PHASES)]
        .groupby(["batch", "prompt", "mode", "phase"])["seconds"]
        .median()
        .groupby(["batch", "prompt", "mode"])
        .sum()
        .rename("serial_s")
    )
    kv = (
        steps[steps["window"] == "plain"]
        .groupby(["batch", "prompt", "mode"])["decode_ctx_sum"]
        .median()
        .rename("kv")
    )
    out = pd.concat([per_phase, kv], axis=1).reset_index()
    order = (
        steps.drop_duplicates(["batch", "prompt"])[["batch", "prompt"]]
        .reset_index(drop=True)
        .reset_index()
        .rename(columns={"index": "point"})
    )
    out = out.merge(order, on=["batch", "prompt"])
    out["factor"] = out["point"].map(by_point)
    return out


def fit_kv_host(points: pd.DataFrame, engine: str, host: HostOverhead) -> KvHostFit:
    """The per-KV-token slope of `engine`'s points (module docstring)."""
    x = points[points["mode"] == MODE_OF_ENGINE[engine]]
    base = host.per_step_s + host.per_sequence_s * x["batch"]
    serial = x["serial_s"] / x["factor"]  # calibration-host time
    excess = serial - base
    kv = x["kv"].astype(float)
    slope = float((excess * kv).sum() / (kv * kv).sum())
    c = max(slope, 0.0)
    err = (base + c * kv) / serial - 1.0
    return KvHostFit(
        c,
        slope,
        len(x),
        float(err.abs().median()),
        (int(kv.min()), int(kv.max())),
        (float(x["factor"].min()), float(x["factor"].max())),
    )
