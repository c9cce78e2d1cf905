"""`sim compare PREDICTED MEASURED`: the error table of a prediction against a live run.

Both directories are results directories (summary.json, requests.csv, timeline.csv), from
`sim run` and `sim replay` of the same scenario, so requests match by id. Error = predicted /
measured - 1 (positive: the simulator predicts more).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from sim.errors import UserError

OK = "ok"


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


def compare_dirs(pred: Path, meas: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    from sim.output import read_results

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
    meta = {
        "predicted": str(pred),
        "measured": str(meas),
        "scenario": ms.get("scenario"),
        "completed_predicted": ps["requests"]["completed"],
        "completed_measured": ms["requests"]["completed"],
        "profile": ps.get("profile"),
        "host_time_factor_predicted": ps.get("host_time_factor", 1.0),
        "host_speed_measured": ms.get("host_speed"),
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


def plot_overlay(pred: Path, meas: Path, out: Path, title: str) -> Path:
    """Power timelines (all GPUs summed) and latency CDFs, predicted vs measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim.output import read_results

    _, pr, pt = read_results(pred)
    _, mr, mt = read_results(meas)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    ax = axes[0, 0]
    for tl, label, style in ((mt, "measured", "-"), (pt, "predicted", "--")):
        mid = (tl["t_start_s"] + tl["t_end_s"]) / 2
        ax.plot(mid, tl["power_total_w"], style, lw=0.9, label=label)
    ax.set_xlabel("time since first arrival (s)")
    ax.set_ylabel("GPU power (W, all GPUs)")
    ax.set_title("power timeline")
    ax.legend()
    for ax, col, name in (
        (axes[0, 1], "ttft_s", "TTFT"),
        (axes[1, 0], "tpot_s", "TPOT"),
        (axes[1, 1], "e2e_s", "end-to-end"),
    ):
        for df, label, style in ((mr, "measured", "-"), (pr, "predicted", "--")):
            v = np.sort(_ok(df)[col].dropna().to_numpy())
            if len(v):
                ax.step(v, np.arange(1, len(v) + 1) / len(v), style, where="post", label=label)
        ax.set_xlabel(f"{name} (s)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{name} CDF")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "compare.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@click.command("compare")
@click.argument("predicted", type=click.Path(path_type=Path))
@click.argument("measured", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), help="where to write (default: MEASURED)"
)
@click.option("--plot/--no-plot", default=True, show_default=True, help="write compare.png")
def compare_cmd(predicted: Path, measured: Path, out_dir: Path | None, plot: bool) -> None:
    """Error table of PREDICTED (sim run) against MEASURED (sim replay), and an overlay plot."""
    table, per_req, meta = compare_dirs(predicted, measured)
    out_dir = out_dir or measured
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "compare.csv", index=False)
    per_req.to_csv(out_dir / "compare_requests.csv", index=False)
    records = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for r in table.to_dict("records")
    ]
    (out_dir / "compare.json").write_text(json.dumps({**meta, "metrics": records}, indent=2) + "\n")
    print_table(table, meta)
    if plot:
        path = plot_overlay(
            predicted, measured, out_dir, f"{meta['scenario']}: predicted vs measured"
        )
        click.echo(f"wrote {out_dir / 'compare.csv'}, {out_dir / 'compare.json'}, {path}")
