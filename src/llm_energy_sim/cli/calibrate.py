"""`sim calibrate`: measure this GPU (idle states, microbenchmarks, HF generate), fit a profile.

Option parsing only: the stages are llm_energy_sim.calibrate.stages.STAGES, the run is
llm_energy_sim.calibrate.session.
"""

from __future__ import annotations

from pathlib import Path

import click

from llm_energy_sim.calibrate.stages import STAGE_NAMES
from llm_energy_sim.cli.options import POSITIVE


@click.command("calibrate")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("calibration"),
    show_default=True,
    help="raw tables and the fitted profile go here (rerun to resume); with --fit-only, the "
    "refitted profile only",
)
@click.option("--dtypes", default="float32,bfloat16,float16,int8,int4,fp8", show_default=True)
@click.option("--models", help="override the whole-model check models (comma separated cards)")
@click.option("--quick", is_flag=True, help="a small grid (minutes)")
@click.option(
    "--budget-minutes", type=POSITIVE, help="stop measuring after this long (resume later)"
)
@click.option(
    "--stages",
    default=",".join(STAGE_NAMES),
    show_default=True,
    help="which measurements to run, in this order whatever the order given "
    "(interconnect: only on a node with >= 2 GPUs)",
)
@click.option(
    "--fit-only",
    "fit_only",
    type=click.Path(path_type=Path),
    help="refit the raw tables in this directory (CPU is fine); the profile goes to --out",
)
@click.option(
    "--tag",
    default="",
    help="label of a repeated pass of the host/check runs (measured again, not skipped)",
)
@click.option("--name", default="h100-sxm", show_default=True, help="name of the fitted profile")
@click.option(
    "--with",
    "with_dirs",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="with --fit-only: also fit tphost.csv / allreduce.csv / shapemiss.csv from this raw dir (another node)",
)
def calibrate_cmd(
    out_dir, dtypes, models, quick, budget_minutes, stages, fit_only, tag, name, with_dirs
) -> None:
    """Measure the GPU and fit a calibration profile for `sim run`."""
    from llm_energy_sim.calibrate import session
    from llm_energy_sim.calibrate.stages import select
    from llm_energy_sim.cli.options import check_out_dir
    from llm_energy_sim.config.errors import UserError
    from llm_energy_sim.config.names import is_name

    if not is_name(name):
        raise UserError(
            f"--name {name!r}: a profile name, not a path (letters, digits and ._+=@,-; "
            "it becomes NAME.json in --out)"
        )
    check_out_dir(out_dir)
    if fit_only:
        if not Path(fit_only).is_dir():
            raise UserError(f"--fit-only {fit_only}: no such directory of raw tables")
        click.echo(f"wrote {session.refit(Path(fit_only), name, out_dir, tuple(with_dirs))}")
        return
    session.measure(
        out_dir,
        select(stages),
        tuple(dtypes.split(",")),
        quick=quick,
        models=tuple(models.split(",")) if models else None,
        tag=tag,
        budget_minutes=budget_minutes,
        name=name,
        echo=click.echo,
    )
