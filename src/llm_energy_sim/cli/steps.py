"""`sim steps SCENARIO MEASURED`: cost a live run's own steps with the cost model
(analysis/stepcheck.py), into a directory of its own (default results/steps-<scenario>)."""

from __future__ import annotations

from pathlib import Path

import click

from llm_energy_sim.analysis.stepcheck import (
    compare_schedules,
    cost_steps,
    load_steps,
    plot_steps,
    print_summary,
    summarize,
    write_check,
)
from llm_energy_sim.cli.options import host_speed_option
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.steptable import STEPS_FILE, STEPS_STEM, read_steps
from llm_energy_sim.results.tables import has_table

#: the file that makes a directory a `sim steps` check (one it may replace)
CHECK_FILE = "steps_check.json"


@click.command("steps")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.argument("measured", type=click.Path(path_type=Path))
@click.option(
    "--profile", help="profile name (src/llm_energy_sim/data/profiles/NAME.json) or JSON path"
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="as for `sim run`")
@host_speed_option("as for `sim run`; default: MEASURED's own hostspeed.csv when it has one")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="where to write (default results/steps-<scenario>)",
)
@click.option(
    "--predicted",
    type=click.Path(path_type=Path),
    help="a `sim run --step-log` results dir of SCENARIO: also compare the schedules step by step",
)
@click.option("--plot/--no-plot", default=True, show_default=True, help="write steps_check.png")
def steps_cmd(scenario, measured, profile, sets, host_tables, predicted, out_dir, plot) -> None:
    """Cost every step of MEASURED (a `sim replay` of SCENARIO) with the cost model: the step
    cost's error without the scheduler's, and the host speed the engine saw over the run."""
    from llm_energy_sim.cli.options import check_out_dir, load_with_host_speed, overrides
    from llm_energy_sim.results.marker import require_complete
    from llm_energy_sim.results.staging import check_replaceable, staged_dir
    from llm_energy_sim.simulation import profile_for, resolve_host_factor, scenario_cost_model

    require_complete(measured)
    if predicted is not None:
        if not has_table(predicted, STEPS_STEM):
            raise UserError(
                f"{predicted}: no {STEPS_FILE}; simulate with `sim run {scenario} --step-log`"
            )
        require_complete(predicted)
    ov = overrides(None, sets)
    if not host_tables and "hardware.host_time_factor" not in ov:
        host_tables = (measured,) if has_table(measured, "hostspeed") else ()
    scen, _ = load_with_host_speed(scenario, ov, host_tables, profile)
    out_dir = out_dir or Path("results") / f"steps-{scen.name}"
    check_out_dir(out_dir)
    check_replaceable(out_dir, CHECK_FILE)  # before the costing, so nothing is done in vain
    if (measured / "summary.json").exists():
        from llm_energy_sim.results.output import read_summary

        ran = read_summary(measured).scenario
        if ran and ran != scen.name:
            raise UserError(
                f"{measured} is a run of scenario '{ran}', not of {scenario} ('{scen.name}')"
            )
    steps, source = load_steps(measured)
    if steps.empty:
        raise UserError(f"{measured}: the run has no completed steps")
    prof, _ = profile_for(scen, profile)
    scen, _ = resolve_host_factor(scen, prof)  # none given: the profile's default, as sim run
    hw = scen.hardware
    cost = scenario_cost_model(scen, prof)
    df = cost_steps(steps, cost, bool(getattr(scen.server, "cold_start", False)))
    summary = summarize(df, hw.host_time_factor, source)
    summary["scenario"] = scen.name
    summary["profile"] = prof.name
    if predicted is not None:
        summary["schedule"] = compare_schedules(read_steps(predicted), steps)
    # the directory is written whole: a kill leaves the previous check as it was, and a
    # rerun leaves nothing of it (a plot of an earlier run included)
    with staged_dir(out_dir, CHECK_FILE) as tmp:
        write_check(df, summary, tmp)
        if plot:
            plot_steps(df, tmp, f"{scen.name}: measured vs predicted step time")
    print_summary(summary, f"{scen.name}: live steps costed by the model")
    if plot:
        wrote = [out_dir / n for n in ("steps_check.csv", CHECK_FILE, "steps_check.png")]
        click.echo("wrote " + ", ".join(map(str, wrote)))
