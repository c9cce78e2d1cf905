"""Error table and overlay plot of a prediction against a measurement: `sim compare`."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from llm_energy_sim.analysis.compare import compare_dirs, plot_overlay, print_table
from llm_energy_sim.config.errors import UserError

COMPARE_FILE = "compare.json"  # marks a directory `sim compare` may replace


def default_out(scenario: str | None, measured: Path) -> Path:
    """results/compare-<scenario> (the measured directory's name when its summary has none);
    UserError when the summary's scenario is not a name (it would write elsewhere)."""
    from llm_energy_sim.config.names import is_name

    name = scenario or Path(measured).resolve().name
    if not is_name(name):
        raise UserError(f"{measured}: the summary's scenario {name!r} is not a name; give --out")
    return Path("results") / f"compare-{name}"


@click.command("compare")
@click.argument("predicted", type=click.Path(path_type=Path))
@click.argument("measured", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="directory to write (default results/compare-<scenario>; not in PREDICTED or MEASURED)",
)
@click.option("--plot/--no-plot", default=True, show_default=True, help="write compare.png")
def compare_cmd(predicted: Path, measured: Path, out_dir: Path | None, plot: bool) -> None:
    """Error table of PREDICTED (sim run) against MEASURED (sim replay), and an overlay plot.

    The comparison goes to a directory of its own, written whole (a rerun replaces it)."""
    from llm_energy_sim.cli.options import check_out_dir
    from llm_energy_sim.results.staging import check_replaceable, staged_dir

    table, per_req, meta = compare_dirs(predicted, measured)
    out_dir = out_dir or default_out(meta["scenario"], measured)
    out = out_dir.resolve()
    for run_dir in (predicted, measured):
        if run_dir.resolve() in (out, *out.parents):
            raise UserError(
                f"--out {out_dir} is in the compared results directory {run_dir}: "
                "give the comparison a directory of its own"
            )
    check_out_dir(out_dir)
    check_replaceable(out_dir, COMPARE_FILE)  # before the plots, so nothing is made in vain
    records = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for r in table.to_dict("records")
    ]
    with staged_dir(out_dir, COMPARE_FILE) as tmp:
        table.to_csv(tmp / "compare.csv", index=False)
        per_req.to_csv(tmp / "compare_requests.csv", index=False)
        (tmp / COMPARE_FILE).write_text(json.dumps({**meta, "metrics": records}, indent=2) + "\n")
        if plot:
            plot_overlay(predicted, measured, tmp, f"{meta['scenario']}: predicted vs measured")
    print_table(table, meta)
    wrote = [out_dir / "compare.csv", out_dir / COMPARE_FILE]
    if plot:
        wrote.append(out_dir / "compare.png")
    click.echo("wrote " + ", ".join(map(str, wrote)))
