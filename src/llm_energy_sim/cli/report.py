"""TODO docstring."""

from __future__ import annotations

from pathlib import Path

import click

from llm_energy_sim.calibrate.report import main


@click.command("report")
@click.argument("raw_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("profile")
@click.option(
    "--passes",
    "spread_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="other raw dirs of the same GPU kind whose wholemodel.csv repeats the check",
)
@click.option(
    "--csv",
    "csv_name",
    default="calibration_wholemodel_check.csv",
    show_default=True,
    help="name of the check table written under docs/",
)
def report_cmd(raw_dir: Path, profile: str, spread_dirs: tuple[Path, ...], csv_name: str) -> None:
    """Print the calibration tables of PROFILE against RAW_DIR  (written under docs/)."""
    main(raw_dir, profile, spread_dirs=spread_dirs, csv_name=csv_name)
