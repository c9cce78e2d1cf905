"""One `sim calibrate` run: the monitor, the picked stages in STAGES order, provenance, the fit.

Order (calibrate/stages.py): the stages that must precede a CUDA context (idle) first; then
the check for a CUDA GPU and provenance.json (GPU, driver, library versions, host, the run's
stages and budget, appended per run); then the other stages; then, when a microbenchmark table
exists, the profile fitted from every raw table in the directory.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from llm_energy_sim.calibrate.stages import Context, Stage
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.meter.monitor import EnergyMonitor

BASE_PROFILE = "h100-sxm-bootstrap"  # the fit's starting point for what no table measures


def versions() -> dict:
    """Python and the measuring libraries' versions (None where not installed)."""
    out = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "bitsandbytes", "pynvml"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # not installed, or no __version__
            out[mod] = None
    try:
        import torch

        out["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return out


def require_gpu() -> None:
    """UserError unless torch sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        raise UserError(
            "sim calibrate needs the [gpu] extra (torch, transformers, bitsandbytes, nvidia-ml-py)"
        ) from None
    if not torch.cuda.is_available():
        raise UserError(
            "no CUDA GPU visible: sim calibrate measures a real GPU (run it on a GPU node)"
        )


def record_provenance(ctx: Context, stages: list[Stage], budget_minutes: float | None) -> None:
    """Update out_dir/provenance.json: this GPU and software, and one entry per run."""
    path = ctx.path("provenance.json")
    prov = json.loads(path.read_text()) if path.exists() else {}
    prov.update(
        {
            **ctx.monitor.info(),
            **versions(),
            "host": platform.node(),
            "measured_utc": prov.get("measured_utc")
            or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "grid": {"dtypes": ",".join(ctx.dtypes), "quick": ctx.quick},
        }
    )
    prov.setdefault("runs", []).append(
        {
            "stages": ",".join(s.name for s in stages),
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "budget_minutes": budget_minutes,
        }
    )
    from llm_energy_sim.config.files import write_text_atomic

    write_text_atomic(path, json.dumps(prov, indent=2) + "\n")


def run_stage(stage: Stage, ctx: Context) -> None:
    """Run one stage unless its done() says a rerun has nothing to do."""
    if stage.done(ctx.out_dir):
        ctx.echo(f"{stage.name}: {', '.join(stage.writes)} already measured, kept (delete to redo)")
        return
    stage.run(ctx)


def measure(
    out_dir: Path,
    stages: list[Stage],
    dtypes: tuple[str, ...],
    quick: bool = False,
    models: tuple[str, ...] | None = None,
    tag: str = "",
    budget_minutes: float | None = None,
    name: str = "h100-sxm",
    echo: Callable[[str], None] = print,
) -> None:
    """Measure the picked stages on GPU 0 into out_dir (rerun to resume), then fit the
    profile `name` there. Without NVML or a CUDA GPU, a one-line UserError."""
    monitor = EnergyMonitor([0])
    out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget_minutes * 60 if budget_minutes else None
    ctx = Context(out_dir, monitor, dtypes, quick, models, tag, deadline, echo)
    for stage in stages:
        if stage.before_cuda:
            run_stage(stage, ctx)
    require_gpu()
    record_provenance(ctx, stages, budget_minutes)
    for stage in stages:
        if not stage.before_cuda:
            run_stage(stage, ctx)
    if ctx.path("microbench.csv").exists() or ctx.path("graph.csv").exists():
        echo(f"fitted profile: {refit(out_dir, name, out_dir)}")


def refit(raw_dir: Path, name: str, out_dir: Path, with_dirs: tuple[Path, ...] = ()) -> Path:
    """Fit the profile `name` from the raw tables in raw_dir (and tphost / allreduce /
    shapemiss tables of with_dirs, other nodes); writes and returns out_dir/NAME.json. The raw
    tables' folder and the shipped profiles are never written: a refit goes elsewhere.

    The CUDA-graph classes come from the first graph.csv of raw_dir and with_dirs
    (calibrate/graphfit.py). A raw_dir with a graph.csv and no microbench.csv (the graph
    stage alone) adds them to the profile `name` as shipped (a name or JSON path), else to
    the bootstrap."""
    from llm_energy_sim.calibrate.fit import fit_profile
    from llm_energy_sim.calibrate.graphfit import graph_table, with_graph_fits
    from llm_energy_sim.calibrate.rawread import check_tables
    from llm_energy_sim.config.paths import PROFILES_DIR
    from llm_energy_sim.config.profile import load_profile, save_profile

    check_tables(raw_dir, *with_dirs)  # a corrupted table: one line, before any fit
    graph_dir = next((d for d in (raw_dir, *with_dirs) if graph_table(d)), None)
    has_grid = (raw_dir / "microbench.csv").exists()
    if not has_grid and graph_dir is None:
        raise UserError(f"{raw_dir}: no microbench.csv (or graph.csv) to fit")
    out = out_dir / f"{name}.json"
    if out.resolve().parent == PROFILES_DIR.resolve():
        raise UserError(f"--out {out_dir}: the shipped profiles are not overwritten; give another")
    base, _ = load_profile(BASE_PROFILE)
    if has_grid:
        try:
            prof = fit_profile(raw_dir, name, base, tuple(with_dirs))
        except (KeyError, IndexError, ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
            # the tables read and passed their checks, yet hold too little to fit
            msg = " ".join(str(exc).split())[:200]
            raise UserError(
                f"{raw_dir}: the raw tables cannot be fitted ({type(exc).__name__}: {msg})"
            ) from None
    else:
        try:
            prof = load_profile(name)[0].model_copy(update={"name": name})
        except UserError:
            prof = base.model_copy(update={"name": name})
    if graph_dir is not None:
        prof = with_graph_fits(prof, graph_dir)
    save_profile(prof, out)
    return out
