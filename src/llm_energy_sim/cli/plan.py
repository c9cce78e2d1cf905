"""`sim plan`: capacity planning on simulated runs (logic in llm_energy_sim.analysis.capacity).

sim plan saturation SCENARIO --slo-ttft-p90 S --slo-tpot-p90 S
sim plan optimize SCENARIO --rate R --slo-ttft-p90 S --dtypes ... --tp 1,2,4,8 --replicas auto
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pandas as pd

from llm_energy_sim.analysis.capacity import (
    CONFIG_COLUMNS,
    SECONDS_PER_DAY,
    SLO_AT,
    Slo,
    arrival_at,
    optimize,
    saturation,
)
from llm_energy_sim.analysis.grid import ScenarioRef, grid_points, parse_axis
from llm_energy_sim.cli.options import (
    AT_LEAST_ONE,
    POSITIVE,
    FiniteFloat,
    check_not_overridden,
    check_out_file,
    check_workers,
    write_csv_atomic,
)
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.limits import MAX_RATE, MIN_RATE

__all__ = ["Slo", "optimize", "saturation", "plan_cmd"]

#: request rates a scenario may give (config/limits.py), per second and per day
RATE = FiniteFloat(MIN_RATE, MAX_RATE)
PER_DAY = FiniteFloat(MIN_RATE * SECONDS_PER_DAY, MAX_RATE * SECONDS_PER_DAY)
#: what a plan's memory refusal suggests
_PLAN_HINT = "shorten it (--requests, --max-replicas, output.timeline_bin_s) or give --force"


@click.group("plan")
def plan_cmd() -> None:
    """Capacity planning: saturation rate under SLOs, energy-optimal configuration."""


def _slo_options(f):
    f = click.option(
        "--interval/--no-interval",
        default=True,
        show_default=True,
        help="give the result rows the 80% prediction intervals of sim run (two more runs "
        "per row for host-bound engines)",
    )(f)
    f = click.option(
        "--slo-at",
        type=click.Choice(SLO_AT),
        default="central",
        show_default=True,
        help="meet the SLOs with the central prediction, or with the upper bound of its 80% "
        "prediction interval (host speed and run-to-run spread; needs the interval)",
    )(f)
    f = click.option("--slo-tpot-p90", type=POSITIVE, help="p90 time per output token bound (s)")(f)
    return click.option("--slo-ttft-p90", type=POSITIVE, help="p90 time to first token bound (s)")(
        f
    )


def _force_option(f):
    return click.option(
        "--force",
        is_flag=True,
        help="simulate even when a run's estimated memory is above half this machine's memory",
    )(f)


def _slo(
    ttft: float | None, tpot: float | None, required: bool, at: str = "central", interval=True
) -> Slo:
    for name, v in (("--slo-ttft-p90", ttft), ("--slo-tpot-p90", tpot)):
        if v is not None and v <= 0:
            raise UserError(f"{name} must be > 0")
    if required and ttft is None and tpot is None:
        raise UserError("give at least one SLO: --slo-ttft-p90 and/or --slo-tpot-p90")
    if at == "upper" and not interval:
        raise UserError("--slo-at upper needs the interval: drop --no-interval")
    return Slo(ttft, tpot, at)


def check_optimize_memory(
    ref: ScenarioRef,
    rate: float,
    dtypes: list[str],
    tps: list[int],
    replicas: list[int] | str,
    axes: list[tuple[str, list[Any]]],
    requests: int,
    max_replicas: int,
    force: bool = False,
) -> None:
    """UserError (one line) when a run `sim plan optimize` will simulate needs more memory
    than the limit: each configuration's fleets at the target rate (with replicas 'auto',
    up to max_replicas + 2, the fleet check's last try) and its one-replica bisection at
    its lowest rate, rate / max_replicas."""
    from llm_energy_sim.config.estimate import check_points_memory

    base = grid_points([("dtype", dtypes), ("hardware.gpus_per_replica", tps), *axes])
    if replicas == "auto":
        runs = [(1, rate / max_replicas), (max_replicas + 2, rate)]
    else:
        runs = [(n, rate) for n in replicas]
    points = [
        {**cfg, "hardware.replicas": n, "workload.arrival": arrival_at(r)}
        for cfg in base
        for n, r in runs
    ]
    check_points_memory(ref, points, requests, force, _PLAN_HINT)


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} '{text}': expected comma-separated integers") from None
    if not vals or min(vals) < 1:
        raise UserError(f"{what} '{text}': expected integers >= 1")
    return vals


def _dtypes(text: str) -> list[str]:
    """--dtypes: comma-separated names of config/dtypes.py DTYPES (UserError otherwise)."""
    from llm_energy_sim.config.dtypes import DTYPES

    names = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in names if d not in DTYPES]
    if bad or not names:
        raise UserError(
            f"--dtypes '{text}': unknown dtype {', '.join(bad) or '(none given)'}; "
            f"allowed: {', '.join(DTYPES)}"
        )
    return names


def _print(df: pd.DataFrame, cols: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_header=True, header_style="bold")
    for c in cols:
        t.add_column(c, overflow="fold")
    for _, r in df.iterrows():
        t.add_row(*(_fmt(r[c]) for c in cols))
    Console(width=200).print(t)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _range(row: dict, col: str) -> str:
    """' (80% interval lo-hi)' of a plan row's column, '' without one."""
    lo, hi = row.get(f"{col}_lower"), row.get(f"{col}_upper")
    if _fmt(lo) == "-" or _fmt(hi) == "-":
        return ""
    return f" (80% interval {lo:.3g}-{hi:.3g})"


@plan_cmd.command("saturation")
@click.argument("scenario", type=click.Path(path_type=Path))
@_slo_options
@click.option("--min-rate", type=RATE, default=0.05, show_default=True, help="req/s")
@click.option("--max-rate", type=RATE, default=50.0, show_default=True, help="req/s")
@click.option(
    "--tolerance",
    type=FiniteFloat(0.0, 1.0, low_open=True, high_open=True),
    default=0.01,
    show_default=True,
    help="relative precision of the rate",
)
@click.option(
    "--requests",
    type=AT_LEAST_ONE,
    default=500,
    show_default=True,
    help="requests per simulated run (longer traces: sharper saturation)",
)
@click.option(
    "--arrival", type=click.Choice(["poisson", "fixed"]), default="poisson", show_default=True
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a field")
@click.option("--out", type=click.Path(path_type=Path), help="CSV of every evaluated rate")
@_force_option
def saturation_cmd(
    scenario,
    slo_ttft_p90,
    slo_tpot_p90,
    slo_at,
    interval,
    min_rate,
    max_rate,
    tolerance,
    requests,
    arrival,
    sets,
    out,
    force,
) -> None:
    """Highest request rate whose p90 TTFT/TPOT meet the SLOs (bisection, qMeter 8.1); with
    --slo-at upper, the upper bounds of their 80% prediction intervals must."""
    from llm_energy_sim.config.scenario import parse_override

    slo = _slo(slo_ttft_p90, slo_tpot_p90, True, slo_at, interval)
    if min_rate >= max_rate:
        raise UserError(f"--min-rate ({min_rate:g}) must be below --max-rate ({max_rate:g})")
    ref = ScenarioRef.from_path(scenario)
    overrides = dict(parse_override(s) for s in sets)
    check_not_overridden(
        overrides, {"workload.requests": "--requests", "workload.arrival": "the bisection's rate"}
    )
    from llm_energy_sim.config.estimate import check_memory

    # the run at --min-rate is the longest: its timeline has the most bins
    lowest = {**overrides, "workload.arrival": arrival_at(min_rate, arrival)}
    lowest["workload.requests"] = requests
    check_memory(ref.load(lowest), force, source=ref.source, hint=_PLAN_HINT)
    if out is not None:
        check_out_file(out)
    rate, rows = saturation(
        ref, slo, min_rate, max_rate, tolerance, arrival, requests, overrides, interval
    )
    df = pd.DataFrame(rows).sort_values("rate")
    cols = [
        "rate",
        "slo_met",
        "latency_s.ttft.p90",
        "latency_s.tpot.p90",
        "energy.per_request_wh",
        "slo_violations",
    ]
    shown = df.copy()
    if interval:  # "value [lo, hi]" where the row has its interval
        from llm_energy_sim.analysis.intervals import FIGURE_COLUMNS, bound_column

        for fig, col in FIGURE_COLUMNS.items():
            if col in cols and bound_column(fig, "lower") in df.columns:
                lo, hi = df[bound_column(fig, "lower")], df[bound_column(fig, "upper")]
                shown[col] = [
                    f"{_fmt(v)} [{_fmt(a)}, {_fmt(b)}]"
                    for v, a, b in zip(df[col], lo, hi, strict=True)
                ]
    at = " (SLOs at the 80% upper bound)" if slo.at == "upper" else ""
    _print(shown, cols, f"{ref.source}: {len(rows)} simulated runs of {requests} requests{at}")
    if out:
        write_csv_atomic(df, out)
    if rate >= max_rate:
        click.echo(f"the SLOs still hold at --max-rate {max_rate:g} req/s: saturation is above")
    else:
        click.echo(f"saturation: {rate:.4g} req/s ({rate * SECONDS_PER_DAY:.3g} requests/day)")


@plan_cmd.command("optimize")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--rate", type=RATE, help="target requests per second (Poisson)")
@click.option("--per-day", type=PER_DAY, help="target requests per day, instead of --rate")
@_slo_options
@click.option("--dtypes", default="bfloat16,float16,int8,int4", show_default=True)
@click.option("--tp", default="1,2,4,8", show_default=True, help="tensor-parallel degrees")
@click.option(
    "--replicas",
    default="auto",
    show_default=True,
    help="counts (1,2,4) or 'auto': ceil(rate / one replica's saturation rate)",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=V1,V2",
    help="more swept settings, e.g. server.max_batch_prefill_tokens=4096,8192 "
    "or hardware.gpu=h100-sxm,h200",
)
@click.option(
    "--requests",
    type=AT_LEAST_ONE,
    default=500,
    show_default=True,
    help="requests per simulated run",
)
@click.option("--max-replicas", type=AT_LEAST_ONE, default=64, show_default=True)
@click.option("--workers", type=AT_LEAST_ONE, default=2, show_default=True, help="local processes")
@click.option("--dask", "dask_address", help="dask.distributed scheduler address")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="CSV of the ranked table (default results/plan-<scenario>.csv)",
)
@_force_option
def optimize_cmd(
    scenario,
    rate,
    per_day,
    slo_ttft_p90,
    slo_tpot_p90,
    slo_at,
    interval,
    dtypes,
    tp,
    replicas,
    sets,
    requests,
    max_replicas,
    workers,
    dask_address,
    out,
    force,
) -> None:
    """Energy-optimal dtype x tensor parallel x replicas (x --set) for a rate under SLOs
    (qMeter 8.2). Configurations that do not fit the GPU memory are listed, not fatal. Rows
    carry the 80% intervals of energy, kWh/day and the p90 latencies (columns *_lower,
    *_upper); --slo-at upper sizes the fleet so that the upper bounds meet the SLOs."""
    if (rate is None) == (per_day is None):
        raise UserError("give exactly one of --rate (req/s) and --per-day (requests/day)")
    rate = rate if rate is not None else per_day / SECONDS_PER_DAY
    slo = _slo(slo_ttft_p90, slo_tpot_p90, False, slo_at, interval)
    reps = "auto" if replicas.strip() == "auto" else _ints(replicas, "--replicas")
    if reps != "auto" and max(reps) > max_replicas:
        raise UserError(f"--replicas {replicas}: above --max-replicas {max_replicas}")
    dtype_list = _dtypes(dtypes)
    tps = _ints(tp, "--tp")
    check_workers(workers, dask_address)
    ref = ScenarioRef.from_path(scenario)
    axes = [parse_axis(s) for s in sets]
    check_not_overridden(
        [k for k, _ in axes],
        {
            "dtype": "--dtypes",
            "hardware.gpus_per_replica": "--tp",
            "hardware.replicas": "--replicas",
            "workload.requests": "--requests",
            "workload.arrival": "--rate/--per-day",
        },
    )
    ref.load({k: v[0] for k, v in axes})  # fail fast on a bad key/value, as sweep does
    check_optimize_memory(ref, rate, dtype_list, tps, reps, axes, requests, max_replicas, force)
    out = out or Path("results") / f"plan-{Path(scenario).stem}.csv"
    check_out_file(out)
    df = optimize(
        ref,
        rate,
        slo,
        dtype_list,
        tps,
        reps,
        requests,
        axes,
        workers,
        dask_address,
        max_replicas,
        interval,
    )
    write_csv_atomic(df, out)
    extra = [c for c in df.columns if "." in c]
    cols = [
        "rank",
        *CONFIG_COLUMNS,
        *extra,
        "status",
        "wh_per_request",
        "kwh_per_day",
        "ttft_p90_s",
        "tpot_p90_s",
        "note",
    ]
    shown = df.copy()
    for c in ("wh_per_request", "kwh_per_day", "ttft_p90_s", "tpot_p90_s"):
        lo, hi = df[f"{c}_lower"], df[f"{c}_upper"]
        shown[c] = [
            _fmt(v) + ("" if _fmt(a) == "-" else f" [{_fmt(a)}, {_fmt(b)}]")
            for v, a, b in zip(df[c], lo, hi, strict=True)
        ]
    at = ", SLOs at the 80% upper bound" if slo.at == "upper" else ""
    _print(shown, cols, f"{ref.source} at {rate:.4g} req/s ({rate * SECONDS_PER_DAY:.3g}/day{at})")
    best = df[df.feasible]
    if len(best):
        b = best.iloc[0].to_dict()
        click.echo(
            f"best: {b['gpu']} {b['dtype']} TP{b['tp']} x {b['replicas']} replica(s) = "
            f"{b['gpus']} GPUs, {b['wh_per_request']:.3g} Wh/request, "
            f"{b['kwh_per_day']:.3g} kWh/day{_range(b, 'kwh_per_day')}"
        )
    else:
        click.echo("no configuration meets the SLOs at this rate")
    click.echo(f"table: {out}")
