"""Options and option handling shared by several `sim` commands."""

from __future__ import annotations

from pathlib import Path

import click

from llm_energy_sim.config.errors import UserError


def host_speed_option(help_text: str):
    """`--host-speed TABLE|DIR` (repeatable), the option of every command that takes the
    serving machine's measured host speed into hardware.host_time_factor."""
    return click.option(
        "--host-speed",
        "host_tables",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="TABLE|DIR",
        help=help_text,
    )


def overrides(requests: int | None, sets: tuple[str, ...]) -> dict:
    from llm_energy_sim.config.scenario import parse_override

    ov = dict(parse_override(s) for s in sets)
    if requests is not None:
        ov["workload.requests"] = requests
    return ov


def load_with_host_speed(scenario: Path, ov: dict, host_tables, profile: str | None):
    """The scenario with its overrides; with host tables, hardware.host_time_factor set from
    them (against the profile the run uses). Returns (scenario, the host runs used or None)."""
    from llm_energy_sim.config.scenario import load_scenario

    scen = load_scenario(scenario, ov)
    if not host_tables:
        return scen, None
    if "hardware.host_time_factor" in ov:
        raise UserError("give either --host-speed or --set hardware.host_time_factor, not both")
    from llm_energy_sim.calibrate.hostspeed import factor_from_tables
    from llm_energy_sim.simulation import profile_for

    prof, _ = profile_for(scen, profile)
    ov = dict(ov)
    ov["hardware.host_time_factor"], host_runs = factor_from_tables(list(host_tables), prof)
    return load_scenario(scenario, ov), host_runs
