"""`sim run`: simulate a scenario and write its results directory."""

from __future__ import annotations

import time
from pathlib import Path

import click

from llm_energy_sim.cli.options import (
    FiniteFloat,
    check_out_dir,
    host_speed_option,
    load_with_host_speed,
    overrides,
)
from llm_energy_sim.config.errors import UserError


@click.command("run")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="results directory (default results/<name>)",
)
@click.option(
    "--profile", help="profile name (src/llm_energy_sim/data/profiles/NAME.json) or JSON path"
)
@click.option("--requests", type=int, help="override workload.requests (e.g. a shortened run)")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="override any scenario field, e.g. --set dtype=int8",
)
@click.option("--plot/--no-plot", default=False, help="also write PNG plots")
@click.option(
    "--grid-intensity",
    type=FiniteFloat(0.0),
    help="grid carbon intensity in gCO2/kWh (>= 0), to report CO2",
)
@host_speed_option(
    "set hardware.host_time_factor from host runs measured on the serving machine: a "
    "host table (hostspeed.csv, tphost.csv, tpcbhost.csv), a `sim replay --hostspeed` "
    "results directory, or a `sim steps` steps_check.json (the speed a live engine's own "
    "steps ran at); repeat to average several (e.g. before and after a replay)"
)
@click.option(
    "--step-log",
    is_flag=True,
    help="also write steps.csv: every simulated step's composition and times, in the format "
    "of the live engine's step log (`sim steps ... --predicted DIR` sets them side by side)",
)
@click.option(
    "--requests-format",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="file format of the per-request table (requests.parquet or requests.csv)",
)
@click.option(
    "--force",
    is_flag=True,
    help="run even when the run's estimated memory is above half this machine's memory",
)
@click.option(
    "--interval/--no-interval",
    default=True,
    show_default=True,
    help="also give every headline figure an 80% prediction interval (summary.json "
    "'intervals'): the run again at the p10 and p90 of the profile's serving-host speeds, in "
    "parallel processes where CPUs are free, combined with the measured run-to-run spread",
)
@click.option("--quiet", is_flag=True, help="no table, no progress bar")
def run_cmd(
    scenario: Path,
    out_dir,
    profile,
    requests,
    sets,
    plot,
    grid_intensity,
    host_tables,
    step_log,
    requests_format,
    force,
    interval,
    quiet,
) -> None:
    """Simulate SCENARIO (a YAML file) and write a results directory.

    The directory is written whole: a rerun into it replaces every file of the previous
    run (plots included), and an interrupted run leaves the previous one as it was.

    Without a host_time_factor (scenario, --set, --host-speed) the run is at the profile's
    default, the median of its serving-host samples (summary.json provenance says which).
    With --interval (default) the figures carry an 80% prediction interval
    (analysis/intervals.py states the method); the bound runs need the host-bound engines
    only (TGI does not move with the host)."""
    from llm_energy_sim.analysis import intervals as iv
    from llm_energy_sim.config.estimate import check_memory
    from llm_energy_sim.engine.heap import trim
    from llm_energy_sim.results.accounting import (
        RequestTable,
        build_summary,
        ledger_figures,
        timeline_columns,
    )
    from llm_energy_sim.results.marker import mark_complete
    from llm_energy_sim.results.output import SUMMARY_FILE, print_summary, write_results
    from llm_energy_sim.results.provenance import provenance
    from llm_energy_sim.results.staging import check_replaceable, staged_dir
    from llm_energy_sim.simulation import profile_for, simulate

    if requests is not None and requests <= 0:
        raise UserError("--requests must be > 0")
    scen, host_runs = load_with_host_speed(
        scenario, overrides(requests, sets), host_tables, profile
    )
    bounds = iv.plan(scen, profile_for(scen, profile)[0]) if interval else None
    n_bounds = len(bounds.bound_factors) if bounds is not None else 0
    parallel = n_bounds > 0 and iv.spare_cpus() >= 1 and iv.can_fork()
    extra = n_bounds if parallel else min(n_bounds, 1)
    check_memory(scen, force, step_log, str(scenario), profile, extra_runs=extra)
    out_dir = out_dir or Path("results") / scen.name
    check_out_dir(out_dir)
    check_replaceable(out_dir, SUMMARY_FILE)  # before the simulation, not after
    t0 = time.perf_counter()
    factors = bounds.bound_factors if bounds is not None else ()
    with iv.BoundRuns(scen, tuple(factors), profile, parallel) as pending:
        res = simulate(scen, profile_override=profile, progress=not quiet, step_log=step_log)
        wall = time.perf_counter() - t0
        # what needs the replicas' ledgers first; then they are released (a million
        # requests' are ~80 MB that the requests table and its summary do not need)
        tl = timeline_columns(res)
        ledger_figures(res)
        for rep in res.replicas:
            rep.ledger.release()
        trim()  # what they held, back to the system before the writers allocate
        df = RequestTable(res)  # numpy columns, no pandas
        summary = build_summary(
            res, df, grid_intensity, provenance("sim run", scenario, sets, requests)
        )
        if bounds is not None and not bounds.empty:
            central = iv.figures(summary.to_dict())
            summary.intervals = iv.combine(central, pending.results(), bounds, iv.floors(res))
    waited = time.perf_counter() - t0 - wall  # the bound runs beyond the central one
    summary.simulation_wall_s = wall
    if host_runs is not None:
        summary.host_time_factor_runs = host_runs  # the measured runs it averages
    with staged_dir(out_dir, SUMMARY_FILE) as tmp:
        write_results(tmp, summary, df, tl, requests_format)
        if step_log:
            from llm_energy_sim.results.steptable import write_steps

            write_steps(tmp, sorted(row for r in res.replicas for row in r.step_log))
        if plot:
            import pandas as pd

            from llm_energy_sim.results.plots import plot_results

            plot_results(tmp, summary.to_dict(), df.to_pandas(), pd.DataFrame(tl))
        mark_complete(tmp)  # last: readers refuse a directory without it
    if not quiet:
        print_summary(summary.to_dict())
        if bounds is not None and bounds.empty:
            click.echo(f"no interval: {bounds.host_note}, and no run-to-run spread")
        how = "in parallel" if parallel else "after it"
        runs = f" (+ {n_bounds} interval bound runs {how}: {waited:.2f} s more)" if n_bounds else ""
        click.echo(f"simulated {len(df)} requests in {wall:.2f} s{runs}; results in {out_dir}")
