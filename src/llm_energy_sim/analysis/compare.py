"""`sim compare PREDICTED MEASURED`: the error table of a prediction against a live run.

Both directories are results directories (summary.json, requests.csv, timeline.csv), from
`sim run` and `sim replay` of the same scenario, so requests match by id. Error = predicted /
measured - 1 (positive: the simulator predicts more).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.plots import step_bins
from llm_energy_sim.results.pngsave import pyplot, save_figure
from llm_energy_sim.results.schema import RequestStatus

OK = RequestStatus.OK


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == OK]


def _pct(s: pd.Series, q: float) -> float:
    s = s.dropna()
    return float(np.percentile(s, q)) if len(s) else float("nan")


def metric_rows(ps: dict, pr: pd.DataFrame, ms: dict, mr: pd.DataFrame) -> list[dict]:
    """One row per metric: predicted, measured, relative error. Latencies over the requests
    that completed in both runs, matched by request_id."""
    both = set(_ok(pr)["request_id"]) & set(_ok(mr)["request_id"])
    p = pr[pr["request_id"].isin(both)].set_index("request_id").sort_index()
    m = mr[mr["request_id"].isin(both)].set_index("request_id").sort_index()
    rows: list[tuple[str, str, float, float]] = []
    pe, me = ps["energy"], ms["energy"]
    rows.append(("energy per request (total)", "Wh", pe["per_request_wh"], me["per_request_wh"]))
    rows.append(
        (
            "energy per request, attributed p50",
            "Wh",
            _pct(p["energy_j"], 50) / 3600,
            _pct(m["energy_j"], 50) / 3600,
        )
    )
    rows.append(
        (
            "energy per request, attributed p90",
            "Wh",
            _pct(p["energy_j"], 90) / 3600,
            _pct(m["energy_j"], 90) / 3600,
        )
    )
    rows.append(("total energy", "Wh", pe["total_wh"], me["total_wh"]))
    rows.append(("mean power per GPU", "W", pe["mean_power_per_gpu_w"], me["mean_power_per_gpu_w"]))
    for name in ("ttft", "tpot", "e2e"):
        col = f"{name}_s"
        for q in (50, 90):
            rows.append((f"{name.upper()} p{q}", "s", _pct(p[col], q), _pct(m[col], q)))
    rows.append(("makespan", "s", ps["makespan_s"], ms["makespan_s"]))
    rows.append(
        (
            "throughput",
            "req/s",
            ps["throughput"]["requests_per_s"],
            ms["throughput"]["requests_per_s"],
        )
    )
    rows.append(
        (
            "throughput",
            "tok/s",
            ps["throughput"]["output_tokens_per_s"],
            ms["throughput"]["output_tokens_per_s"],
        )
    )
    rows.append(
        (
            "mean batch size when busy",
            "req",
            ps["batch"]["mean_size_when_busy"],
            ms["batch"]["mean_size_when_busy"],
        )
    )
    out = []
    for metric, unit, pv, mv in rows:
        pv = float("nan") if pv is None else float(pv)
        mv = float("nan") if mv is None else float(mv)
        err = (
            pv / mv - 1.0
            if mv not in (0.0,) and np.isfinite(mv) and np.isfinite(pv)
            else float("nan")
        )
        out.append({"metric": metric, "unit": unit, "predicted": pv, "measured": mv, "error": err})
    return out


def per_request_errors(pr: pd.DataFrame, mr: pd.DataFrame) -> pd.DataFrame:
    """Per matched request: predicted and measured energy and latencies, side by side."""
    cols = ["energy_j", "ttft_s", "tpot_s", "e2e_s"]
    p = pr.set_index("request_id")[cols + ["status"]].add_prefix("pred_")
    m = mr.set_index("request_id")[cols + ["status"]].add_prefix("meas_")
    j = p.join(m, how="inner")
    for c in cols:
        j[f"err_{c}"] = j[f"pred_{c}"] / j[f"meas_{c}"] - 1.0
    return j.reset_index()


DRIFT_BIN_S = 10.0
DRIFT_MIN_REQUESTS = 3  # a bin's median error needs a few requests
DRIFT_NOTE_SPREAD = 0.20  # bin medians further apart than this: say so


def tpot_error_by_time(pr: pd.DataFrame, mr: pd.DataFrame, bin_s: float = DRIFT_BIN_S):
    """Median per-request TPOT error by when the request decoded (the midpoint of its measured
    first token and finish, in bins of bin_s). The prediction already accounts for what else
    ran beside each request, so an error that moves with time points at the live machine's
    speed changing during the run: host-bound engines run at their CPU's speed, which on
    one H200 cloud machine moved from 0.97 to 1.47 times the calibration host's within six
    minutes (the host passes of measurements/live/h200-d/*/summary.json; docs/host-speed.md)."""
    j = _decoded_at(pr, mr).dropna(subset=["err_tpot_s"])
    j = j.assign(bin_start_s=np.floor(j["decoded_at_s"] / bin_s) * bin_s)
    g = j.groupby("bin_start_s")["err_tpot_s"]
    return pd.DataFrame({"requests": g.size(), "median_error": g.median()}).reset_index()


def _decoded_at(pr: pd.DataFrame, mr: pd.DataFrame) -> pd.DataFrame:
    """per_request_errors of the requests that completed in both runs, with `decoded_at_s`:
    the midpoint of each one's measured first token and finish."""
    j = per_request_errors(pr, mr)
    j = j[(j["pred_status"] == OK) & (j["meas_status"] == OK)]
    when = mr.set_index("request_id").loc[j["request_id"], ["first_token_s", "finish_s"]]
    return j.assign(decoded_at_s=((when["first_token_s"] + when["finish_s"]) / 2).to_numpy())


def drift_spread(by_time: pd.DataFrame) -> float | None:
    """Max - min of the bins' median TPOT errors (bins with enough requests); None if < 2."""
    ok = by_time[by_time["requests"] >= DRIFT_MIN_REQUESTS]["median_error"]
    return float(ok.max() - ok.min()) if len(ok) >= 2 else None


def compare_dirs(pred: Path, meas: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    from llm_energy_sim.results.output import read_results

    ps, pr, _ = read_results(pred)
    ms, mr, _ = read_results(meas)
    if len(pr) != len(mr):
        raise UserError(
            f"{pred} has {len(pr)} requests, {meas} has {len(mr)}: compare runs of the same scenario and --requests"
        )
    for key in ("prompt_tokens", "output_tokens"):
        a = pr.set_index("request_id")[key].sort_index()
        b = mr.set_index("request_id")[key].sort_index()
        if not a.equals(b):
            raise UserError(
                f"{pred} and {meas}: the requests' {key} differ: not the same trace (scenario, seed)"
            )
    table = pd.DataFrame(metric_rows(ps, pr, ms, mr))
    by_time = tpot_error_by_time(pr, mr)
    meta = {
        "predicted": str(pred),
        "measured": str(meas),
        "scenario": ms.get("scenario"),
        "completed_predicted": ps["requests"]["completed"],
        "completed_measured": ms["requests"]["completed"],
        "profile": ps.get("profile"),
        "host_time_factor_predicted": ps.get("host_time_factor", 1.0),
        "host_speed_measured": ms.get("host_speed"),
        "tpot_error_by_time": {
            "bin_s": DRIFT_BIN_S,
            "bins": by_time.to_dict("records"),
            "spread": drift_spread(by_time),
        },
    }
    return table, per_request_errors(pr, mr), meta


def print_table(table: pd.DataFrame, meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"{meta['scenario']}: predicted ({meta['profile']}) vs measured", header_style="bold"
    )
    for c in ("metric", "unit", "predicted", "measured", "error"):
        t.add_column(c, justify="left" if c in ("metric", "unit") else "right")
    for r in table.itertuples():
        err = "-" if not np.isfinite(r.error) else f"{r.error * 100:+.1f}%"
        t.add_row(r.metric, r.unit, f"{r.predicted:.4g}", f"{r.measured:.4g}", err)
    Console().print(t)
    click.echo(
        f"requests completed: predicted {meta['completed_predicted']}, measured {meta['completed_measured']}"
    )
    if hs := meta.get("host_speed_measured"):
        name, factor = hs["profile"], hs["host_time_factor"]
        if meta["profile"] in hs.get("by_profile", {}):
            name, factor = meta["profile"], hs["by_profile"][meta["profile"]]
        passes = ", ".join(f"{k} {v:.2f}" for k, v in hs.get("passes", {}).items())
        click.echo(
            f"live machine's host: host_time_factor {factor:.2f} against {name} (measured by "
            f"sim replay --hostspeed{'; ' + passes if passes and name == hs['profile'] else ''}); "
            f"the prediction used {meta['host_time_factor_predicted']:.2f}"
        )
    drift = meta.get("tpot_error_by_time", {})
    if (spread := drift.get("spread")) is not None and spread > DRIFT_NOTE_SPREAD:
        med = [b["median_error"] for b in drift["bins"] if b["requests"] >= DRIFT_MIN_REQUESTS]
        click.echo(
            f"TPOT error by time in the run ({drift['bin_s']:g} s bins): {min(med) * 100:+.0f}% to "
            f"{max(med) * 100:+.0f}%. If the engine is host-bound, the live machine's speed "
            "may have changed during the run; one host_time_factor cannot follow that. "
            "`sim steps SCENARIO MEASURED` shows the speed the engine's own steps ran at."
        )


def plot_overlay(pred: Path, meas: Path, out: Path, title: str) -> Path:
    """Power timelines (all GPUs summed), CDFs of latencies and per-request energy, and the
    TPOT error over the run, predicted vs measured."""
    plt = pyplot()

    from llm_energy_sim.results.output import read_results

    _, pr, pt = read_results(pred)
    _, mr, mt = read_results(meas)
    fig, axes = plt.subplots(2, 3, figsize=(17, 7))
    ax = axes[0, 0]
    for tl, label, style in ((mt, "measured", "-"), (pt, "predicted", "--")):
        mid = (tl["t_start_s"] + tl["t_end_s"]) / 2
        ax.plot(mid, tl["power_total_w"], style, lw=0.9, label=label)
    ax.set_xlabel("time since first arrival (s)")
    ax.set_ylabel("GPU power (W, all GPUs)")
    ax.set_title("power timeline")
    ax.legend()
    _plot_tpot_error_by_time(axes[1, 2], pr, mr)
    for ax, col, name in (
        (axes[0, 1], "ttft_s", "TTFT"),
        (axes[0, 2], "energy_j", "energy per request (attributed)"),
        (axes[1, 0], "tpot_s", "TPOT"),
        (axes[1, 1], "e2e_s", "end-to-end"),
    ):
        for df, label, style in ((mr, "measured", "-"), (pr, "predicted", "--")):
            v = np.sort(_ok(df)[col].dropna().to_numpy())
            if len(v):
                ax.step(v, np.arange(1, len(v) + 1) / len(v), style, where="post", label=label)
        ax.set_xlabel(f"{name} ({'J' if col == 'energy_j' else 's'})")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{name} CDF")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "compare.png"
    save_figure(fig, path)
    plt.close(fig)
    return path


def _plot_tpot_error_by_time(ax, pr: pd.DataFrame, mr: pd.DataFrame) -> None:
    """Per-request TPOT error against when the request decoded, with the bins' medians."""
    j = _decoded_at(pr, mr)
    ax.scatter(j["decoded_at_s"], j["err_tpot_s"] * 100, s=8, alpha=0.5, label="request")
    b = tpot_error_by_time(pr, mr)
    b = b[b["requests"] >= DRIFT_MIN_REQUESTS]
    step_bins(ax, b["bin_start_s"], b["median_error"] * 100, DRIFT_BIN_S, "bin median")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("time in the measured run (s)")
    ax.set_ylabel("TPOT error (%)")
    ax.set_title(f"TPOT error over the run ({DRIFT_BIN_S:g} s bins)")
    ax.legend()
