"""The `sim` command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from sim.cliopts import host_speed_option
from sim.errors import UserError


class _Group(click.Group):
    """Turn UserError into one line on stderr and exit code 2 (no traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="llm-energy-sim")
def main() -> None:
    """Predict the energy, latency and hardware of LLM serving scenarios."""


def _overrides(requests: int | None, sets: tuple[str, ...]) -> dict:
    from sim.scenario import parse_override

    ov = dict(parse_override(s) for s in sets)
    if requests is not None:
        ov["workload.requests"] = requests
    return ov


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="results directory (default results/<name>)",
)
@click.option("--profile", help="profile name (calibrate/profiles/NAME.json) or JSON path")
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
    "--grid-intensity", type=float, help="grid carbon intensity in gCO2/kWh, to report CO2"
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
@click.option("--quiet", is_flag=True, help="no table, no progress bar")
def run(
    scenario: Path,
    out_dir,
    profile,
    requests,
    sets,
    plot,
    grid_intensity,
    host_tables,
    step_log,
    quiet,
) -> None:
    """Simulate SCENARIO (a YAML file) and write a results directory."""
    from sim.accounting import requests_frame, summarize, timeline_frame
    from sim.output import print_summary, write_results
    from sim.simulation import simulate

    if requests is not None and requests <= 0:
        raise UserError("--requests must be > 0")
    scen, host_runs = load_with_host_speed(
        scenario, _overrides(requests, sets), host_tables, profile
    )
    t0 = time.perf_counter()
    res = simulate(scen, profile_override=profile, progress=not quiet, step_log=step_log)
    wall = time.perf_counter() - t0
    df = requests_frame(res)
    summary = summarize(res, df, grid_intensity)
    summary["simulation_wall_s"] = wall
    if host_runs is not None:
        summary["host_time_factor_runs"] = host_runs  # the measured runs it averages
    tl = timeline_frame(res)
    out_dir = out_dir or Path("results") / scen.name
    write_results(out_dir, summary, df, tl)
    if step_log:
        from sim.steptable import write_steps

        write_steps(out_dir, sorted(row for r in res.replicas for row in r.step_log))
    if plot:
        from sim.plots import plot_results

        plot_results(out_dir, summary, df, tl)
    if not quiet:
        print_summary(summary)
        click.echo(f"simulated {len(df)} requests in {wall:.2f} s; results in {out_dir}")


def load_with_host_speed(scenario: Path, ov: dict, host_tables, profile: str | None):
    """The scenario with its overrides; with host tables, hardware.host_time_factor set from
    them (against the profile the run uses). Returns (scenario, the host runs used or None)."""
    from sim.scenario import load_scenario

    scen = load_scenario(scenario, ov)
    if not host_tables:
        return scen, None
    if "hardware.host_time_factor" in ov:
        raise UserError("give either --host-speed or --set hardware.host_time_factor, not both")
    from calibrate.hostspeed import factor_from_tables
    from sim.simulation import profile_for

    prof, _ = profile_for(scen, profile)
    ov = dict(ov)
    ov["hardware.host_time_factor"], host_runs = factor_from_tables(list(host_tables), prof)
    return load_scenario(scenario, ov), host_runs


def _register_optional_commands() -> None:
    """Commands living in other modules; each imports its heavy dependencies lazily."""
    import importlib

    for module, attr in (
        ("calibrate.cli", "calibrate_cmd"),
        ("sim.replay_cli", "replay_cmd"),
        ("sim.compare", "compare_cmd"),
        ("sim.sweep", "sweep_cmd"),
        ("sim.plan", "plan_cmd"),
        ("sim.stepcheck", "steps_cmd"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        main.add_command(getattr(mod, attr))


_register_optional_commands()


if __name__ == "__main__":
    main()
