"""`sim steps SCENARIO MEASURED_DIR`: cost every step a live run made with the cost model.

`sim compare` says how far a prediction is from a live run; this says why. It takes the
engine's own steps (what each computed, how long it took) and costs exactly those steps, so
scheduling is taken out: what is left is the step cost's error. Over time, the ratio of
host-bound decode steps is the host speed the engine's thread saw, which on cloud machines
moves by up to 1.9x within minutes (docs/host-speed.md).

Steps come from the continuous batching engine's step log (steps.csv, hf/steplog.py)
or, for the one-request-at-a-time HF generate engine, from its per-token times
(token_times.csv): one step per generated token, its prefill ending at the first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.engine.replica import PlanCache
from llm_energy_sim.results.plots import step_bins
from llm_energy_sim.results.pngsave import pyplot, save_figure
from llm_energy_sim.results.readcheck import check_typed
from llm_energy_sim.results.schema import RequestStatus
from llm_energy_sim.results.steptable import STEPS_STEM, read_steps
from llm_energy_sim.results.tables import has_table, read_table, table_path

BIN_S = 10.0  # time bins of the ratio over the run
MIN_STEPS_PER_BIN = 20
PREFILL, DECODE = "prefill", "decode"


def steps_from_log(path: Path) -> pd.DataFrame:
    """The step log of a continuous batching run (its results dir, or steps.csv itself)."""
    return read_steps(path)[["start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum"]]


def steps_from_tokens(requests: pd.DataFrame, tokens: pd.DataFrame) -> pd.DataFrame:
    """One-request-at-a-time runs: request r's steps are its prefill (start to first token)
    and one decode per later token (previous token to this one, KV = prompt + k)."""
    rows = []
    by_req = {rid: g["t_s"].to_numpy() for rid, g in tokens.groupby("request_id")}
    for r in requests[requests["status"] == RequestStatus.OK].itertuples():
        t = np.sort(by_req.get(r.request_id, np.array([])))
        if not len(t) or math.isnan(r.start_s):
            continue
        p = int(r.prompt_tokens)
        rows.append((float(r.start_s), float(t[0]), ((p, 0),), 0, 0))
        for k in range(1, len(t)):
            rows.append((float(t[k - 1]), float(t[k]), (), 1, p + k))
    cols = ["start_s", "end_s", "prefill", "n_decode", "decode_ctx_sum"]
    return pd.DataFrame(rows, columns=cols).sort_values("start_s", ignore_index=True)


def load_steps(measured: Path) -> tuple[pd.DataFrame, str]:
    """The live run's steps and where they came from (tables as CSV or Parquet)."""
    if has_table(measured, STEPS_STEM):
        source = f"{table_path(measured, STEPS_STEM).name} (engine step log)"
        return steps_from_log(measured), source
    if not (has_table(measured, "token_times") and has_table(measured, "requests")):
        raise UserError(
            f"{measured}: no steps.csv (step log of `sim replay --engine transformers`) and no "
            "token_times.csv + requests.csv to rebuild steps from"
        )
    requests = read_table(measured, "requests")
    check_typed(
        requests,
        {
            "request_id": int,
            "status": str,
            "start_s": float,
            "finish_s": float,
            "prompt_tokens": int,
        },
        table_path(measured, "requests"),
    )
    batched = requests.dropna(subset=["start_s", "finish_s"]).sort_values("start_s")
    if (batched["start_s"].to_numpy()[1:] < batched["finish_s"].to_numpy()[:-1] - 1e-6).any():
        raise UserError(
            f"{measured}: requests overlap and there is no steps.csv; steps can be rebuilt "
            "from token times only for one-request-at-a-time runs (replay a batching engine "
            "again to get its step log)"
        )
    tokens = read_table(measured, "token_times")
    check_typed(tokens, {"request_id": int, "t_s": float}, table_path(measured, "token_times"))
    return steps_from_tokens(requests, tokens), "token_times.csv (one request at a time)"


def cost_steps(steps: pd.DataFrame, cost: CostModel, cold_start: bool) -> pd.DataFrame:
    """Each step's predicted wall, GPU and host time, with the engine's attention-plan misses
    (a new attention shape) and a fresh process's first step charged as the simulator does."""
    plans = PlanCache(cost)
    out = []
    for i, s in enumerate(steps.itertuples()):
        work = StepWork(s.prefill, int(s.n_decode), int(s.decode_ctx_sum))
        miss = plans.step_miss(work)
        c = cost.step_cost(work, shape_miss=miss, cold=cold_start and i == 0)
        out.append((c.wall_s, c.gpu_s, c.host_s, miss > 0, work.tokens, work.n_seqs))
    cols = ["predicted_s", "gpu_s", "host_s", "shape_miss", "tokens", "seqs"]
    df = pd.concat([steps.reset_index(drop=True), pd.DataFrame(out, columns=cols)], axis=1)
    df["measured_s"] = df["end_s"] - df["start_s"]
    df["kind"] = np.where(df["prefill"].map(len) > 0, PREFILL, DECODE)
    df["ratio"] = df["measured_s"] / df["predicted_s"]
    df["host_bound"] = df["host_s"] > df["gpu_s"]
    return df


def _stats(g: pd.DataFrame) -> dict:
    r = g["ratio"]
    return {
        "steps": int(len(g)),
        "measured_ms_p50": float(g["measured_s"].median() * 1e3),
        "predicted_ms_p50": float(g["predicted_s"].median() * 1e3),
        "ratio_p10": float(r.quantile(0.1)),
        "ratio_p50": float(r.median()),
        "ratio_p90": float(r.quantile(0.9)),
        "time_ratio": float(g["measured_s"].sum() / g["predicted_s"].sum()),
    }


def by_time(df: pd.DataFrame, bin_s: float = BIN_S) -> pd.DataFrame:
    """Median measured/predicted of decode steps per time bin (bins with enough steps)."""
    d = df[df["kind"] == DECODE]
    if d.empty:
        return pd.DataFrame(columns=["bin_start_s", "steps", "ratio_p50"])
    b = (d["start_s"] // bin_s) * bin_s
    g = d.groupby(b)["ratio"].agg(["size", "median"]).reset_index()
    g.columns = ["bin_start_s", "steps", "ratio_p50"]
    return g[g["steps"] >= MIN_STEPS_PER_BIN].reset_index(drop=True)


def summarize(df: pd.DataFrame, host_factor: float, source: str) -> dict:
    """Per kind of step, the measured/predicted ratios; the host speed the engine saw."""
    kinds = {k: _stats(g) for k, g in df.groupby("kind")}
    hb = df[(df["kind"] == DECODE) & df["host_bound"]]
    bins = by_time(df)
    out = {
        "source": source,
        "host_time_factor": host_factor,
        "steps": int(len(df)),
        "busy_s": {
            "measured": float(df["measured_s"].sum()),
            "predicted": float(df["predicted_s"].sum()),
        },
        "by_kind": kinds,
        "decode_ratio_by_time": bins.to_dict("records"),
    }
    if len(hb):
        # host-bound decode steps take host time: their ratio rescales the factor used
        seen = host_factor * float(hb["ratio"].median())
        out["host_time_factor_seen_by_engine"] = seen
    if len(bins) > 1:
        out["decode_ratio_bin_spread"] = float(bins["ratio_p50"].max() - bins["ratio_p50"].min())
    return out


def compare_schedules(predicted: pd.DataFrame, measured: pd.DataFrame) -> dict:
    """Step by step, does the simulator batch as the engine did? The i-th steps match when
    they prefill the same (new, past) chunks and decode as many sequences over the same KV.
    Under queued work (a burst) the schedule does not depend on timing and should match
    throughout; with spaced arrivals it follows step times, so it drifts once those differ."""

    def key(df: pd.DataFrame) -> list[tuple]:
        return list(zip(df["prefill"], df["n_decode"], df["decode_ctx_sum"], strict=True))

    p, m = key(predicted), key(measured)
    same = [a == b for a, b in zip(p, m, strict=False)]
    first = next((i for i, ok in enumerate(same) if not ok), None)
    if first is None and len(p) != len(m):
        first = min(len(p), len(m))

    def tokens(df: pd.DataFrame) -> pd.Series:
        return df["prefill"].map(lambda pf: sum(n for n, _ in pf)) + df["n_decode"]

    return {
        "steps": {"predicted": len(p), "measured": len(m)},
        "identical_steps": int(sum(same)),
        "first_divergence": first,
        "tokens_per_step_mean": {
            "predicted": float(tokens(predicted).mean()),
            "measured": float(tokens(measured).mean()),
        },
    }


def print_summary(summary: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col in ("steps", "kind", "measured p50", "predicted p50", "ratio p10/p50/p90", "Σ time"):
        t.add_column(col, justify="right")
    for kind, s in summary["by_kind"].items():
        t.add_row(
            str(s["steps"]),
            kind,
            f"{s['measured_ms_p50']:.1f} ms",
            f"{s['predicted_ms_p50']:.1f} ms",
            f"{s['ratio_p10']:.2f} / {s['ratio_p50']:.2f} / {s['ratio_p90']:.2f}",
            f"{s['time_ratio']:.2f}",
        )
    c = Console()
    c.print(t)
    c.print(f"ratio = measured / predicted step time; steps from {summary['source']}")
    if "host_time_factor_seen_by_engine" in summary:
        c.print(
            f"host-bound decode steps: host_time_factor {summary['host_time_factor']:.2f} used, "
            f"{summary['host_time_factor_seen_by_engine']:.2f} seen by the engine"
        )
    if sched := summary.get("schedule"):
        n, first = sched["steps"], sched["first_divergence"]
        where = "every step identical" if first is None else f"first difference at step {first}"
        c.print(
            f"schedule: {n['measured']} steps measured, {n['predicted']} simulated, "
            f"{sched['identical_steps']} identical ({where}); tokens per step "
            f"{sched['tokens_per_step_mean']['measured']:.1f} measured, "
            f"{sched['tokens_per_step_mean']['predicted']:.1f} simulated"
        )
    bins = summary["decode_ratio_by_time"]
    if len(bins) > 1:
        lo = min(bins, key=lambda b: b["ratio_p50"])
        hi = max(bins, key=lambda b: b["ratio_p50"])
        c.print(
            f"decode ratio over the run ({BIN_S:g} s bins): {lo['ratio_p50']:.2f} at "
            f"{lo['bin_start_s']:.0f} s to {hi['ratio_p50']:.2f} at {hi['bin_start_s']:.0f} s"
        )


def plot_steps(df: pd.DataFrame, out: Path, title: str) -> Path:
    """Measured against predicted step time, and the ratio over the run."""
    plt = pyplot()

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
    for kind, g in df.groupby("kind"):
        a.scatter(g["predicted_s"] * 1e3, g["measured_s"] * 1e3, s=5, alpha=0.4, label=kind)
        b.scatter(g["start_s"], g["ratio"], s=4, alpha=0.3, label=f"{kind} step")
    hi = float(max(df["predicted_s"].max(), df["measured_s"].max()) * 1e3)
    a.plot([0, hi], [0, hi], color="k", lw=0.7, label="measured = predicted")
    a.set_xlabel("predicted step time (ms)")
    a.set_ylabel("measured step time (ms)")
    a.set_xscale("log")
    a.set_yscale("log")
    a.legend()
    bins = by_time(df)
    step_bins(b, bins["bin_start_s"], bins["ratio_p50"], BIN_S, "decode median")
    b.axhline(1.0, color="grey", lw=0.6)
    b.set_xlabel("time in the measured run (s)")
    b.set_ylabel("measured / predicted step time")
    b.set_ylim(0, max(2.5, float(bins["ratio_p50"].max()) * 1.2) if len(bins) else 2.5)
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = out / "steps_check.png"
    save_figure(fig, path)
    plt.close(fig)
    return path


def write_check(df: pd.DataFrame, summary: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cols = ["start_s", "end_s", "kind", "tokens", "seqs", "measured_s", "predicted_s"]
    cols += ["gpu_s", "host_s", "shape_miss", "ratio"]
    df[cols].to_csv(out / "steps_check.csv", index=False, float_format="%.6g")
    (out / "steps_check.json").write_text(json.dumps(summary, indent=2) + "\n")
