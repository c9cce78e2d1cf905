"""What `sim run` and `sim replay` compute the same way from a requests frame: each request's
latencies and idle share, and the summary's request, throughput, energy, latency, token and
batch blocks. The two differ only in where the energy totals and the batch sizes come from
(the simulator's ledgers, or the meter and the requests in flight), which the callers pass.

Latencies (seconds, completed requests only): TTFT = first token - arrival, E2E = finish -
arrival, TPOT = (finish - first token) / (generated - 1) for requests of more than one token.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llm_energy_sim.config.scenario import Scenario
from llm_energy_sim.results.schema import (
    Batch,
    Energy,
    Latency,
    LatencyStats,
    RequestCounts,
    RequestStatus,
    Throughput,
    Tokens,
)

J_PER_WH = 3600.0


def add_latencies(df: pd.DataFrame) -> None:
    """Add ttft_s, e2e_s, tpot_s (NaN for requests that did not complete) to df in place."""
    ok = df["status"] == RequestStatus.OK
    df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
    df["e2e_s"] = df["finish_s"] - df["arrival_s"]
    df["tpot_s"] = np.where(
        df["generated_tokens"] > 1,
        (df["finish_s"] - df["first_token_s"]) / (df["generated_tokens"] - 1).clip(lower=1),
        np.nan,
    )
    df.loc[~ok, ["ttft_s", "e2e_s", "tpot_s"]] = np.nan


def idle_shares(status: pd.Series, idle_j: float) -> np.ndarray:
    """Each request's equal share of the idle energy: idle_j / completed for completed
    requests, 0 for the others."""
    ok = status == RequestStatus.OK
    n_ok = int(ok.sum())
    return np.where(ok, idle_j / n_ok if n_ok else 0.0, 0.0)


def _pct(series: pd.Series, q: float) -> float | None:
    s = series.dropna()
    return float(np.percentile(s, q)) if len(s) else None


def latency_stats(series: pd.Series) -> LatencyStats:
    """Mean and p50/p90/p99 of a latency column (NaN ignored; None when empty)."""
    s = series.dropna()
    return LatencyStats(
        mean=float(s.mean()) if len(s) else None, p50=_pct(s, 50), p90=_pct(s, 90), p99=_pct(s, 99)
    )


def request_counts(status: pd.Series, live: bool) -> RequestCounts:
    """How many requests ended how; a live run also counts errors and timeouts."""
    n = status.value_counts().to_dict()
    counts = RequestCounts(
        total=len(status),
        completed=int(n.get(RequestStatus.OK, 0)),
        rejected_429=int(n.get(RequestStatus.REJECTED_QUEUE_FULL, 0)),
        rejected_422=int(n.get(RequestStatus.REJECTED_TOO_LONG, 0)),
        unfinished=int(n.get(RequestStatus.UNFINISHED, 0)),
    )
    if live:
        counts.errors = int(n.get(RequestStatus.ERROR, 0))
        counts.timeouts = int(n.get(RequestStatus.TIMEOUT, 0))
    return counts


def scenario_fields(scen: Scenario) -> dict:
    """The Summary fields the scenario names: scenario, model, dtype, server, tensor_parallel,
    replicas, seed."""
    return {
        "scenario": scen.name,
        "model": scen.model,
        "dtype": scen.dtype,
        "server": scen.server.kind,
        "tensor_parallel": scen.hardware.gpus_per_replica,
        "replicas": scen.hardware.replicas,
        "seed": scen.seed,
    }


def summary_blocks(
    df: pd.DataFrame,
    *,
    makespan_s: float,
    n_gpus: int,
    total_j: float,
    busy_j: float,
    idle_j: float,
    deep_idle_floor_j: float | None,
    batch: Batch,
    live: bool,
    attribution: str | None = None,
) -> dict:
    """The Summary fields computed from the requests frame and the run's energy totals:
    requests, makespan_s, throughput, energy, latency_s, tokens, batch.

    Prefill and decode energy sum over every request; per-token and per-request figures
    divide by the completed requests' tokens and count.
    """
    # only the columns used: a million-row frame's completed rows copied whole are 140 MB
    used = ["prompt_tokens", "computed_prompt_tokens", "generated_tokens", "ttft_s", "tpot_s"]
    ok = df.loc[df["status"] == RequestStatus.OK, [*used, "e2e_s"]]
    n_ok = len(ok)
    prompt_eff = int(ok["prompt_tokens"].sum())
    prompt_comp = int(ok["computed_prompt_tokens"].sum())
    out_tokens = int(ok["generated_tokens"].sum())
    e_prefill = float(df["energy_prefill_j"].sum())
    e_decode = float(df["energy_decode_j"].sum())
    total, idle = total_j, idle_j
    energy = Energy(
        total_j=total,
        total_wh=total / J_PER_WH,
        busy_j=busy_j,
        idle_j=idle,
        prefill_j=e_prefill,
        decode_j=e_decode,
        deep_idle_floor_j=deep_idle_floor_j,
        idle_fraction=idle / total if total > 0 else None,
        per_request_wh=total / n_ok / J_PER_WH if n_ok else None,
        per_request_active_wh=(e_prefill + e_decode) / n_ok / J_PER_WH if n_ok else None,
        per_request_idle_share_wh=idle / n_ok / J_PER_WH if n_ok else None,
        per_input_token_effective_j=e_prefill / prompt_eff if prompt_eff else None,
        per_input_token_computed_j=e_prefill / prompt_comp if prompt_comp else None,
        per_output_token_j=e_decode / out_tokens if out_tokens else None,
        mean_power_per_gpu_w=total / makespan_s / n_gpus if makespan_s > 0 and n_gpus else None,
    )
    if attribution is not None:
        energy.attribution = attribution
    return {
        "requests": request_counts(df["status"], live),
        "makespan_s": makespan_s,
        "throughput": Throughput(
            requests_per_s=n_ok / makespan_s if makespan_s > 0 else None,
            output_tokens_per_s=out_tokens / makespan_s if makespan_s > 0 else None,
        ),
        "energy": energy,
        "latency_s": Latency(
            ttft=latency_stats(ok["ttft_s"]),
            tpot=latency_stats(ok["tpot_s"]),
            e2e=latency_stats(ok["e2e_s"]),
        ),
        "tokens": Tokens(
            prompt_effective=prompt_eff, prompt_computed=prompt_comp, output=out_tokens
        ),
        "batch": batch,
    }
