"""What `sim run` and `sim replay` compute the same way from a requests frame: each request's
latencies and idle share, and the summary's request, throughput, energy, latency, token and
batch blocks. The two differ only in where the energy totals and the batch sizes come from
(the simulator's ledgers, or the meter and the requests in flight), which the callers pass.

Latencies (seconds, completed requests only): TTFT = first token - arrival, E2E = finish -
arrival, TPOT = (finish - first token) / (generated - 1) for requests of more than one token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

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
_OK = RequestStatus.OK.value

#: a requests table: a DataFrame, or any mapping of column name -> array (numpy columns)
Table = Mapping[str, Any]


def _col(df: Table, name: str, dtype=None) -> np.ndarray:
    return np.asarray(df[name], dtype=dtype)


def ok_mask(status) -> np.ndarray:
    """True for the completed requests."""
    return np.asarray(status, dtype=object) == _OK


def latencies(
    ok: np.ndarray,
    arrival: np.ndarray,
    first: np.ndarray,
    finish: np.ndarray,
    generated: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ttft_s, e2e_s, tpot_s) of each request, NaN for those that did not complete."""
    ttft = first - arrival
    e2e = finish - arrival
    tpot = np.where(generated > 1, (finish - first) / np.maximum(generated - 1, 1), np.nan)
    for a in (ttft, e2e, tpot):
        a[~ok] = np.nan
    return ttft, e2e, tpot


def add_latencies(df) -> None:
    """Add ttft_s, e2e_s, tpot_s (NaN for requests that did not complete) to df in place."""
    df["ttft_s"], df["e2e_s"], df["tpot_s"] = latencies(
        ok_mask(df["status"]),
        _col(df, "arrival_s", float),
        _col(df, "first_token_s", float),
        _col(df, "finish_s", float),
        _col(df, "generated_tokens"),
    )


def idle_shares(status, idle_j: float) -> np.ndarray:
    """Each request's equal share of the idle energy: idle_j / completed for completed
    requests, 0 for the others."""
    ok = ok_mask(status)
    n_ok = int(ok.sum())
    return np.where(ok, idle_j / n_ok if n_ok else 0.0, 0.0)


def latency_stats(values) -> LatencyStats:
    """Mean and p50/p90/p99 of a latency column (NaN ignored; None when empty)."""
    s = np.asarray(values, dtype=float)
    s = s[~np.isnan(s)]
    if not len(s):
        return LatencyStats(mean=None, p50=None, p90=None, p99=None)
    p50, p90, p99 = (float(np.percentile(s, q)) for q in (50, 90, 99))
    return LatencyStats(mean=float(np.mean(s)), p50=p50, p90=p90, p99=p99)


def request_counts(status, live: bool) -> RequestCounts:
    """How many requests ended how; a live run also counts errors and timeouts."""
    st = np.asarray(status, dtype=object)
    n = Counter(st.tolist())
    counts = RequestCounts(
        total=len(st),
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
    df: Table,
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
    """The Summary fields computed from the requests table (a DataFrame or numpy columns)
    and the run's energy totals:
    requests, makespan_s, throughput, energy, latency_s, tokens, batch.

    Prefill and decode energy sum over every request; per-token and per-request figures
    divide by the completed requests' tokens and count.
    """
    status = np.asarray(df["status"], dtype=object)
    ok = status == _OK  # the completed rows' columns, one at a time (a million rows: 8 MB each)
    n_ok = int(ok.sum())
    prompt_eff = int(_col(df, "prompt_tokens")[ok].sum())
    prompt_comp = int(_col(df, "computed_prompt_tokens")[ok].sum())
    out_tokens = int(_col(df, "generated_tokens")[ok].sum())
    e_prefill = float(np.nansum(_col(df, "energy_prefill_j", float)))  # NaN: not metered
    e_decode = float(np.nansum(_col(df, "energy_decode_j", float)))
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
        "requests": request_counts(status, live),
        "makespan_s": makespan_s,
        "throughput": Throughput(
            requests_per_s=n_ok / makespan_s if makespan_s > 0 else None,
            output_tokens_per_s=out_tokens / makespan_s if makespan_s > 0 else None,
        ),
        "energy": energy,
        "latency_s": Latency(
            ttft=latency_stats(_col(df, "ttft_s", float)[ok]),
            tpot=latency_stats(_col(df, "tpot_s", float)[ok]),
            e2e=latency_stats(_col(df, "e2e_s", float)[ok]),
        ),
        "tokens": Tokens(
            prompt_effective=prompt_eff, prompt_computed=prompt_comp, output=out_tokens
        ),
        "batch": batch,
    }
