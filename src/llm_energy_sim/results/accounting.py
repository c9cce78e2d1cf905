"""Energy accounting and latency metrics from a finished simulation.

total      : every GPU of every replica over [0, t_end], idle included (what a meter sees)
per request: total / completed (the reference paper's 'mean energy per request')
attributed : each step's energy shared by its requests by tokens (prefill, decode), plus an
             equal share of the idle energy per completed request, so the parts add up to
             the total
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llm_energy_sim.results.metrics import (
    add_latencies,
    idle_shares,
    scenario_fields,
    summary_blocks,
)
from llm_energy_sim.results.schema import Batch, Provenance, Summary
from llm_energy_sim.simulation import SimResult


def requests_frame(res: SimResult) -> pd.DataFrame:
    """requests.csv of a simulated run: one row per request (results.schema.RequestRow)."""
    log, t = res.log, res.trace
    df = pd.DataFrame(
        {
            "request_id": np.arange(log.n, dtype=np.int64),
            "replica": log.replica,
            "status": pd.array(log.status_strings(), dtype="str"),
            "arrival_s": np.asarray(t.arrival_s, float),
            "start_s": log.t_start,
            "first_token_s": log.t_first,
            "finish_s": log.t_finish,
            "prompt_tokens": np.asarray(t.prompt_tokens, np.int64),
            "computed_prompt_tokens": log.computed_prompt,
            "output_tokens": np.asarray(t.output_tokens, np.int64),
            "generated_tokens": log.generated,
            "energy_prefill_j": log.e_prefill,
            "energy_decode_j": log.e_decode,
        }
    )
    df["energy_idle_share_j"] = idle_shares(df["status"], total_idle_energy(res))
    df["energy_j"] = df["energy_prefill_j"] + df["energy_decode_j"] + df["energy_idle_share_j"]
    add_latencies(df)
    return df


def total_idle_energy(res: SimResult) -> float:
    return sum(r.ledger.idle_energy(res.t_end) for r in res.replicas)


def total_busy_energy(res: SimResult) -> float:
    return sum(r.ledger.busy_energy() for r in res.replicas)


def _batch(res: SimResult) -> Batch:
    """Mean batch size over the busy time (steps weighted by duration) and the largest."""
    arrays = [r.ledger.arrays() for r in res.replicas]
    batch_sizes = np.concatenate([a[3] for a in arrays]) if arrays else np.array([])
    durations = np.concatenate([a[1] - a[0] for a in arrays]) if arrays else np.array([])
    mean_batch = float(np.average(batch_sizes, weights=durations)) if durations.sum() > 0 else 0.0
    return Batch(
        mean_size_when_busy=mean_batch,
        max_size=float(batch_sizes.max()) if len(batch_sizes) else 0.0,
    )


def build_summary(
    res: SimResult,
    df: pd.DataFrame,
    grid_g_per_kwh: float | None = None,
    provenance: Provenance | None = None,
) -> Summary:
    """summary.json of a simulated run; CO2 figures with a grid intensity (gCO2/kWh)."""
    scen = res.scenario
    n_gpus = scen.hardware.replicas * scen.hardware.gpus_per_replica
    busy = total_busy_energy(res)
    idle = total_idle_energy(res)
    total = busy + idle
    makespan = res.t_end
    summary = Summary(
        **scenario_fields(scen),
        gpus=n_gpus,
        host_time_factor=scen.hardware.host_time_factor,
        profile=res.profile.name,
        profile_path=str(res.profile_path),
        server_limits=res.server_info,
        **summary_blocks(
            df,
            makespan_s=makespan,
            n_gpus=n_gpus,
            total_j=total,
            busy_j=busy,
            idle_j=idle,
            deep_idle_floor_j=res.profile.idle.deep_idle_w * n_gpus * makespan,
            batch=_batch(res),
            live=False,
        ),
        steps=sum(r.steps for r in res.replicas),
    )
    if grid_g_per_kwh is not None:
        e, n_ok = summary.energy, summary.requests.completed
        e.co2_g = total / 3.6e6 * grid_g_per_kwh
        e.co2_g_per_request = e.co2_g / n_ok if n_ok else None
    if provenance is not None:
        summary.provenance = provenance.model_copy(
            update={"host_time_factor": res.host_time_factor_source}
        )
    return summary


def summarize(res: SimResult, df: pd.DataFrame, grid_g_per_kwh: float | None = None) -> dict:
    """build_summary as the summary.json object (what sweeps and grids flatten)."""
    return build_summary(res, df, grid_g_per_kwh).to_dict()


def timeline_frame(res: SimResult, bin_s: float | None = None) -> pd.DataFrame:
    """Per time bin: mean power of each GPU (W), busy fraction, mean batch size, queue length."""
    t_end = res.t_end
    if bin_s is None:
        bin_s = res.scenario.output.timeline_bin_s or max(t_end / 2000.0, 0.01)
    # bins of bin_s, the last one cut at t_end so the bins integrate to the total exactly
    edges = np.arange(0.0, t_end, bin_s)
    edges = edges[edges < t_end - 1e-9 * bin_s]
    edges = np.append(edges, t_end) if t_end > 0 else np.array([0.0, bin_s])
    out = {"t_start_s": edges[:-1], "t_end_s": edges[1:]}
    width = np.diff(edges)
    for rep in res.replicas:
        led = rep.ledger
        cum = led.cumulative_energy(edges, t_end)
        power = np.diff(cum) / width / led.n_gpus
        for g in range(led.n_gpus):
            out[f"power_w_r{rep.index}g{g}"] = power
        s, e, _, b, _ = led.arrays()
        busy_time = _overlap_sum(s, e, np.ones_like(s), edges)
        batch_time = _overlap_sum(s, e, b, edges)
        out[f"busy_frac_r{rep.index}"] = busy_time / width
        out[f"batch_r{rep.index}"] = np.where(
            busy_time > 0, batch_time / np.maximum(busy_time, 1e-300), 0.0
        )
        out[f"queue_r{rep.index}"] = _step_mean(
            np.asarray(led.queue_t, float), np.asarray(led.queue_len, float), edges
        )
    df = pd.DataFrame(out)
    power_cols = [c for c in df.columns if c.startswith("power_w_")]
    df["power_total_w"] = df[power_cols].sum(axis=1)
    return df


def _overlap_sum(s: np.ndarray, e: np.ndarray, w: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """For each bin, sum over intervals of weight * overlap time (cumulative-integral trick)."""
    if len(s) == 0:
        return np.zeros(len(edges) - 1)
    t = np.concatenate([s, e])
    dw = np.concatenate([w, -w])
    order = np.argsort(t, kind="stable")
    t, dw = t[order], dw[order]
    rate = np.cumsum(dw)  # weight active after each breakpoint
    integral = np.concatenate([[0.0], np.cumsum(rate[:-1] * np.diff(t))])

    def at(x):
        k = np.searchsorted(t, x, side="right") - 1
        base = np.where(k >= 0, integral[np.clip(k, 0, None)], 0.0)
        r = np.where(k >= 0, rate[np.clip(k, 0, None)], 0.0)
        return base + r * (x - np.where(k >= 0, t[np.clip(k, 0, None)], x))

    return np.diff(at(edges))


def _step_mean(t: np.ndarray, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-average of a step function (value v[i] from t[i] on, 0 before) over each bin."""
    if len(t) == 0:
        return np.zeros(len(edges) - 1)
    dv = np.diff(np.concatenate([[0.0], v]))
    tt = np.concatenate([t, [edges[-1]]])
    level = np.cumsum(dv)
    integral = np.concatenate([[0.0], np.cumsum(level * np.diff(tt))])

    def at(x):
        k = np.searchsorted(t, x, side="right") - 1
        kk = np.clip(k, 0, None)
        return np.where(k >= 0, integral[kk] + level[kk] * (x - t[kk]), 0.0)

    return np.diff(at(edges)) / np.diff(edges)
