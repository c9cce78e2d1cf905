"""`sim sweep`: a scenario over the cartesian grid of --set values (logic in
llm_energy_sim.analysis.sweep)."""

from __future__ import annotations

from pathlib import Path

import click

from llm_energy_sim.analysis.grid import (
    ScenarioRef,
    parse_sets,
)
from llm_energy_sim.analysis.sweep import (
    SUMMARY_COLUMNS,
    plot_sweep,
    print_table,
    run_sweep,
)
from llm_energy_sim.cli.options import check_not_overridden, check_out_dir, check_workers
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.estimate import check_points_memory


@click.command("sweep")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=V1,V2",
    help="a swept field, values as YAML (repeat for a cartesian grid)",
)
@click.option("--requests", type=int, help="shorten every run to N requests")
@click.option("--workers", type=int, default=2, show_default=True, help="local processes")
@click.option("--dask", "dask_address", help="dask.distributed scheduler, e.g. tcp://host:8786")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="results folder (default results/sweep-<scenario>)",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="the tidy table's format",
)
@click.option(
    "--plot",
    "plot_metrics",
    help="metrics to plot, comma-separated, e.g. "
    "energy.per_request_wh,latency_s.ttft.p90 (writes sweep.png)",
)
@click.option("--restart", is_flag=True, help="discard the rows of an earlier run of this sweep")
@click.option(
    "--force", is_flag=True, help="run points whose estimated memory is above the limit too"
)
@click.option(
    "--interval/--no-interval",
    default=True,
    show_default=True,
    help="give every row the 80% prediction intervals of sim run (intervals.<figure>.lower "
    "/ .upper columns; two more runs per point for host-bound engines)",
)
@click.option("--quiet", is_flag=True, help="no progress bar, no table")
def sweep_cmd(
    scenario,
    sets,
    requests,
    workers,
    dask_address,
    out_dir,
    fmt,
    plot_metrics,
    restart,
    force,
    interval,
    quiet,
) -> None:
    """Run SCENARIO over the cartesian grid of --set values; resumes an interrupted sweep.
    A point without hardware.host_time_factor runs at the profile's default (the median of
    its serving-host samples), as sim run does."""
    if requests is not None and requests <= 0:
        raise UserError("--requests must be > 0")
    check_workers(workers, dask_address)
    metrics = plot_metrics.split(",") if plot_metrics else []
    ref = ScenarioRef.from_path(scenario)
    points = parse_sets(sets)
    if requests is not None:
        check_not_overridden(points[0], {"workload.requests": "--requests"})
    ref.load(points[0])  # fail fast on a bad key/value, with the usual one-line error
    check_points_memory(ref, points, requests, force)
    out_dir = out_dir or Path("results") / f"sweep-{Path(scenario).stem}"
    check_out_dir(out_dir)
    table = out_dir / f"sweep.{fmt}"
    df = run_sweep(
        ref, points, table, workers, dask_address, requests, not quiet, restart, metrics, interval
    )
    if metrics:
        plot_sweep(df, metrics, out_dir / "sweep.png")
    if not quiet:
        print_table(df, metrics or SUMMARY_COLUMNS)
        n_err = int((df["error"].fillna("") != "").sum())
        click.echo(f"{len(df)} points ({n_err} with errors) in {table}")
