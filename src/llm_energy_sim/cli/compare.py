"""Error table and overlay plot of a prediction against a measurement: `sim compare`."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from llm_energy_sim.analysis.compare import compare_dirs, plot_overlay, print_table


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
