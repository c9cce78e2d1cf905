"""The `sim` command line: a group whose subcommands live one per module and are imported
only when run (so `sim --help` imports none of them)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.paths import MODELS_ENV

#: name -> (module, attribute, one-line help shown by `sim --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("llm_energy_sim.cli.run", "run_cmd", "Simulate a scenario and write its results."),
    "replay": (
        "llm_energy_sim.cli.replay",
        "replay_cmd",
        "Replay a scenario's trace against a live engine, metered.",
    ),
    "compare": (
        "llm_energy_sim.cli.compare",
        "compare_cmd",
        "Error table of a prediction against a measurement.",
    ),
    "steps": (
        "llm_energy_sim.cli.steps",
        "steps_cmd",
        "Cost a live run's own steps with the model.",
    ),
    "sweep": (
        "llm_energy_sim.cli.sweep",
        "sweep_cmd",
        "Run a scenario over a grid of --set values.",
    ),
    "plan": (
        "llm_energy_sim.cli.plan",
        "plan_cmd",
        "Capacity planning: saturation, fleet optimum.",
    ),
    "calibrate": (
        "llm_energy_sim.cli.calibrate",
        "calibrate_cmd",
        "Measure the GPU and fit a calibration profile.",
    ),
    "report": (
        "llm_energy_sim.cli.report",
        "report_cmd",
        "Fit tables of a profile against its raw tables.",
    ),
    "models": ("llm_energy_sim.cli.catalog", "models_cmd", "List the model cards found."),
    "profiles": ("llm_energy_sim.cli.catalog", "profiles_cmd", "List the shipped profiles."),
    "scenarios": ("llm_energy_sim.cli.catalog", "scenarios_cmd", "List the shipped scenarios."),
    "validate": (
        "llm_energy_sim.cli.validate",
        "validate_cmd",
        "External checks: ML.ENERGY v3 measurements of vLLM.",
    ),
}


class LazyGroup(click.Group):
    """Subcommands imported on first use; a UserError or a bad option of a subcommand becomes
    one line on stderr and exit code 2 (no traceback)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, _, text) in COMMANDS.items()])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {' '.join(str(exc).splitlines())}", err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:  # a bad option or argument: one line too, exit 2
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            msg = " ".join(exc.format_message().split())
            click.echo(f"error: {where}: {msg} (see {where} --help)", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=LazyGroup)
@click.version_option(package_name="llm-energy-sim")
@click.option(
    "--models-dir",
    "models_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help=f"a folder of your own model cards, searched first (repeatable; also ${MODELS_ENV})",
)
def main(models_dirs: tuple[Path, ...]) -> None:
    """Predict the energy, latency and hardware of LLM serving scenarios."""
    if models_dirs:
        for d in models_dirs:
            if not d.is_dir():
                raise UserError(f"--models-dir {d}: no such directory")
        extra = [str(d) for d in models_dirs]
        rest = [os.environ[MODELS_ENV]] if os.environ.get(MODELS_ENV) else []
        os.environ[MODELS_ENV] = os.pathsep.join(extra + rest)


if __name__ == "__main__":
    main()
