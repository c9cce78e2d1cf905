"""Results frames of a live run (`sim replay`), in the same layout as `sim run` writes.

Inputs: one record per request (times in s since the run's first arrival) and the GPUs'
cumulative energy counters sampled over the run. Energy is what the counters say, integrated
over [0, t_end] (t_end = last finish, as in the simulator). Per request, the measured energy is
split the way the simulator splits its own: each moment's energy is shared equally by the
requests being served then (before their first token: prefill, after: decode), and energy drawn
while none is served is idle energy, shared equally by the completed requests. The simulator
shares a step by tokens, so the two per-request splits differ by construction; totals do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llm_energy_sim.results.metrics import (
    add_latencies,
    idle_shares,
    scenario_fields,
    summary_blocks,
)
from llm_energy_sim.results.schema import Batch, Energy, Provenance, Summary

ATTRIBUTION = "time share: energy of each moment split equally by the requests being served"


@dataclass(frozen=True)
class EnergySamples:
    """GPU energy counters: t_s (n,) seconds since t0, energy_j (n, gpus) cumulative joules."""

    t_s: np.ndarray
    energy_j: np.ndarray
    gpu_names: tuple[str, ...] = ()

    @property
    def n_gpus(self) -> int:
        return self.energy_j.shape[1]

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        """Energy of each GPU drawn in [0, t] (linear between counter samples), shape (len(t), gpus)."""
        t = np.asarray(t, float)
        out = np.empty((len(t), self.n_gpus))
        for g in range(self.n_gpus):
            e = np.interp(t, self.t_s, self.energy_j[:, g])
            out[:, g] = e - np.interp(0.0, self.t_s, self.energy_j[:, g])
        return out

    def covers(self, t_end: float) -> bool:
        return len(self.t_s) >= 2 and self.t_s[0] <= 0.0 + 1e-9 and self.t_s[-1] >= t_end - 1e-9


def base_requests_frame(records: list) -> pd.DataFrame:
    """Per-request timing columns of requests.csv (the simulator's names) plus send_s/error."""
    df = pd.DataFrame(
        {
            "request_id": [r.request_id for r in records],
            "replica": 0,
            "status": [str(r.status) for r in records],
            "arrival_s": [r.arrival_s for r in records],
            "send_s": [r.send_s for r in records],
            "start_s": [r.start_s for r in records],
            "first_token_s": [r.first_token_s for r in records],
            "finish_s": [r.finish_s for r in records],
            "prompt_tokens": [r.prompt_tokens for r in records],
            # padding included where the engine reports it (the static engine's batches)
            "computed_prompt_tokens": [
                int(r.extra.get("computed_prompt_tokens", r.prompt_tokens)) for r in records
            ],
            "output_tokens": [r.output_tokens for r in records],
            "generated_tokens": [r.generated_tokens for r in records],
            "error": [r.error for r in records],
        }
    )
    add_latencies(df)
    return df


def _service_start(df: pd.DataFrame) -> np.ndarray:
    """When a request starts being served: the engine's start if known, else when it was sent."""
    return np.where(np.isnan(df["start_s"]), df["send_s"], df["start_s"]).astype(float)


def attribute_energy(
    df: pd.DataFrame, energy: EnergySamples, t_end: float
) -> tuple[pd.DataFrame, float]:
    """Add energy_prefill_j / energy_decode_j / energy_idle_share_j / energy_j; return idle J."""
    start = _service_start(df)
    first = df["first_token_s"].to_numpy(float)
    fin = df["finish_s"].to_numpy(float)
    fin = np.where(np.isnan(fin), t_end, fin)
    first = np.where(np.isnan(first), fin, first)
    inner = energy.t_s[(energy.t_s > 0) & (energy.t_s < t_end)]
    events = np.concatenate([[0.0, t_end], inner, start, first, fin])
    grid = np.unique(np.clip(events[~np.isnan(events)], 0.0, t_end))
    seg_e = np.diff(energy.cumulative(grid).sum(axis=1))
    mid = (grid[:-1] + grid[1:]) / 2.0
    valid = ~np.isnan(start)
    in_pre = valid[:, None] & (start[:, None] <= mid[None, :]) & (mid[None, :] < first[:, None])
    in_dec = valid[:, None] & (first[:, None] <= mid[None, :]) & (mid[None, :] < fin[:, None])
    n_in = (in_pre | in_dec).sum(axis=0)
    share = np.where(n_in > 0, seg_e / np.maximum(n_in, 1), 0.0)
    idle = float(seg_e[n_in == 0].sum())
    out = df.copy()
    if energy.n_gpus == 0:
        for c in ("energy_prefill_j", "energy_decode_j", "energy_idle_share_j", "energy_j"):
            out[c] = np.nan
        return out, float("nan")
    out["energy_prefill_j"] = (in_pre * share[None, :]).sum(axis=1)
    out["energy_decode_j"] = (in_dec * share[None, :]).sum(axis=1)
    out["energy_idle_share_j"] = idle_shares(out["status"], idle)
    out["energy_j"] = out["energy_prefill_j"] + out["energy_decode_j"] + out["energy_idle_share_j"]
    return out, idle


def _in_flight(
    df: pd.DataFrame, t_end: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Breakpoints and (served, queued) counts as step functions over [0, t_end]."""
    start = _service_start(df)
    fin = df["finish_s"].to_numpy(float)
    fin = np.where(np.isnan(fin), t_end, fin)
    arr = df["arrival_s"].to_numpy(float)
    has = ~np.isnan(start)
    t = np.unique(np.concatenate([[0.0], start[has], fin[has], arr, [t_end]]))
    t = t[(t >= 0) & (t <= t_end)]
    served = ((start[has][:, None] <= t[None, :]) & (t[None, :] < fin[has][:, None])).sum(axis=0)
    queued = ((arr[has][:, None] <= t[None, :]) & (t[None, :] < start[has][:, None])).sum(axis=0)
    return t, served.astype(float), queued.astype(float), has


def _bin_mean(t: np.ndarray, v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-average over each bin of a step function (value v[i] from t[i] on)."""
    if len(t) == 0:
        return np.zeros(len(edges) - 1)
    tt = np.concatenate([t, [max(edges[-1], t[-1])]])
    cum = np.concatenate([[0.0], np.cumsum(v * np.diff(tt))])

    def at(x):
        k = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 1)
        return np.where(x >= t[0], cum[k] + v[k] * (x - t[k]), 0.0)

    return np.diff(at(edges)) / np.diff(edges)


def timeline(
    df: pd.DataFrame, energy: EnergySamples, t_end: float, bin_s: float | None
) -> pd.DataFrame:
    """timeline.csv: per bin, each GPU's mean power (from its energy counter), busy fraction,
    requests being served ('batch') and requests waiting ('queue')."""
    if bin_s is None:
        bin_s = max(t_end / 2000.0, 0.1)  # the counter updates ~10 times a second
    edges = np.arange(0.0, t_end, bin_s)
    edges = np.append(edges, t_end) if t_end > 0 else np.array([0.0, bin_s])
    width = np.diff(edges)
    cum = energy.cumulative(edges)
    out: dict[str, np.ndarray] = {"t_start_s": edges[:-1], "t_end_s": edges[1:]}
    for g in range(energy.n_gpus):
        out[f"power_w_r0g{g}"] = np.diff(cum[:, g]) / width
    t, served, queued, _ = _in_flight(df, t_end)
    out["busy_frac_r0"] = _bin_mean(t, (served > 0).astype(float), edges)
    busy = out["busy_frac_r0"]
    mean_served = _bin_mean(t, served, edges)
    out["batch_r0"] = np.where(busy > 0, mean_served / np.maximum(busy, 1e-300), 0.0)
    out["queue_r0"] = _bin_mean(t, queued, edges)
    tl = pd.DataFrame(out)
    tl["power_total_w"] = tl[[c for c in tl.columns if c.startswith("power_w_")]].sum(axis=1)
    return tl


def summarize_measured(
    scen,
    df: pd.DataFrame,
    energy: EnergySamples,
    t_end: float,
    idle_j: float,
    engine_info: dict,
    measured_info: dict,
    deep_idle_w: float | None,
    provenance: Provenance | None = None,
) -> Summary:
    """summary.json of a live run, the simulator's Summary; what a meter cannot see is None."""
    total = float(energy.cumulative(np.array([t_end])).sum()) if t_end > 0 else 0.0
    n_gpus = energy.n_gpus
    t, served, _, _ = _in_flight(df, t_end)
    dur = np.diff(np.concatenate([t, [t_end]]))
    busy = served > 0
    mean_batch = float(np.average(served[busy], weights=dur[busy])) if dur[busy].sum() > 0 else 0.0
    summary = Summary(
        **scenario_fields(scen),
        gpus=n_gpus,
        profile=None,
        profile_path=None,
        server_limits=engine_info,
        **summary_blocks(
            df,
            makespan_s=t_end,
            n_gpus=n_gpus,
            total_j=total,
            busy_j=total - idle_j,
            idle_j=idle_j,
            deep_idle_floor_j=deep_idle_w * n_gpus * t_end if deep_idle_w else None,
            batch=Batch(
                mean_size_when_busy=mean_batch,
                max_size=float(served.max()) if len(served) else 0.0,
            ),
            live=True,
            attribution=ATTRIBUTION,
        ),
        steps=None,
        measured=measured_info,
    )
    if n_gpus == 0:  # not metered: no energy figure at all rather than zeros
        summary.gpus = scen.hardware.gpus_per_replica * scen.hardware.replicas
        summary.energy = Energy.unknown(attribution=None)
    if provenance is not None:
        summary.provenance = provenance
    return summary


def send_lag_stats(df: pd.DataFrame) -> dict:
    """How late the client sent requests compared with the trace (s): the replay's fidelity."""
    lag = (df["send_s"] - df["arrival_s"]).dropna()
    if not len(lag):
        return {"p50": None, "max": None}
    return {"p50": float(np.median(lag)), "max": float(lag.max())}
