"""`sim calibrate`: measure this GPU (idle states, microbenchmarks, HF generate), fit a profile."""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from llm_energy_sim.config.errors import UserError

STAGES = (
    "idle",
    "grid",
    "host",
    "cbhost",
    "shapemiss",
    "coldstart",
    "hostspeed",
    "check",
    "repeat",
    "interconnect",
)


def _versions() -> dict:
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


def _require_gpu() -> None:
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


def _interconnect(out_dir: Path) -> None:
    """NCCL all-reduce over 2, 4, ... GPUs: one process per GPU, spawned from here; every
    GPU metered. Skipped (said so) on a single-GPU node or when the table is already there."""
    import torch

    n = torch.cuda.device_count()
    csv_path = out_dir / "allreduce.csv"
    if n < 2:
        click.echo(f"interconnect: skipped, this node has {n} GPU (needs >= 2)")
        return
    if csv_path.exists():
        click.echo(f"interconnect: {csv_path} exists, kept (delete it to re-measure)")
        return
    from llm_energy_sim.calibrate.interconnect import measure_allreduce

    click.echo(f"interconnect: NCCL all-reduce on {n} GPUs, groups of 2..{n} ...")
    measure_allreduce(csv_path)


def _hostspeed(out_dir: Path, meter, tag: str) -> None:
    """Measure the host-fit run and print this machine's host_time_factor per shipped profile."""
    import pandas as pd

    from llm_energy_sim.calibrate.hostspeed import host_time_factor, measure_host_speed
    from llm_energy_sim.config.profile import load_profile, shipped_profile_names

    measure_host_speed(out_dir / "hostspeed.csv", meter, tag)
    runs = pd.read_csv(out_dir / "hostspeed.csv")
    for name in shipped_profile_names():
        f = host_time_factor(runs, load_profile(name)[0])
        if len(f):
            last = f.iloc[-1]
            click.echo(
                f"hostspeed: decode {1e3 * last.measured_s:.1f} ms/token here, "
                f"{1e3 * last.predicted_s:.1f} predicted by {name}: "
                f"hardware.host_time_factor = {last.host_time_factor:.2f}"
            )


@click.command("calibrate")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("calibration"),
    show_default=True,
    help="raw tables and the fitted profile go here (rerun to resume)",
)
@click.option("--dtypes", default="float32,bfloat16,float16,int8,int4,fp8", show_default=True)
@click.option("--models", help="override the whole-model check models (comma separated cards)")
@click.option("--quick", is_flag=True, help="a small grid (minutes)")
@click.option("--budget-minutes", type=float, help="stop measuring after this long (resume later)")
@click.option(
    "--stages",
    default=",".join(STAGES),
    show_default=True,
    help="which measurements to run (interconnect: only on a node with >= 2 GPUs)",
)
@click.option(
    "--fit-only",
    "fit_only",
    type=click.Path(path_type=Path),
    help="refit the raw tables in this directory (CPU is fine)",
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
    from llm_energy_sim.config.profile import load_profile, save_profile

    if fit_only:
        from llm_energy_sim.calibrate.fit import fit_profile

        if not (Path(fit_only) / "microbench.csv").exists():
            raise UserError(f"{fit_only}: no microbench.csv to fit")
        base, _ = load_profile("h100-sxm-bootstrap")
        prof = fit_profile(Path(fit_only), name, base, tuple(with_dirs))
        save_profile(prof, Path(fit_only) / f"{name}.json")
        click.echo(f"wrote {Path(fit_only) / f'{name}.json'}")
        return
    bad = [s for s in stages.split(",") if s not in STAGES]
    if bad:
        raise UserError(f"--stages: unknown {', '.join(bad)} (allowed: {', '.join(STAGES)})")
    from llm_energy_sim.meter.nvml import GpuMeter

    meter = GpuMeter([0])  # one-line exit 2 without NVML
    out_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget_minutes * 60 if budget_minutes else None

    def left() -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0.0)

    if "idle" in stages and not (out_dir / "idle.csv").exists():
        from llm_energy_sim.calibrate.idlebench import measure_idle

        click.echo(
            "idle states (deep idle before a CUDA context, active idle, decay, duty cycles) ..."
        )
        measure_idle(out_dir / "idle.csv")
    _require_gpu()
    from llm_energy_sim.calibrate.grid import build_grid
    from llm_energy_sim.calibrate.hostbench import (
        CHECK_DTYPES,
        CHECK_MODELS,
        HOST_FIT_PLAN,
        REPEAT_PLAN,
        run_models,
    )
    from llm_energy_sim.calibrate.runner import run_grid

    prov_path = out_dir / "provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    prov.update(
        {
            **meter.info(),
            **_versions(),
            "host": platform.node(),
            "measured_utc": prov.get("measured_utc")
            or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "grid": {"dtypes": dtypes, "quick": quick},
        }
    )
    prov.setdefault("runs", []).append(
        {
            "stages": stages,
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "budget_minutes": budget_minutes,
        }
    )
    prov_path.write_text(json.dumps(prov, indent=2) + "\n")
    if "grid" in stages:
        pts = build_grid(tuple(dtypes.split(",")), quick=quick)
        run_grid(pts, out_dir / "microbench.csv", meter=meter, budget_s=left())
    wanted = set(dtypes.split(","))
    if "host" in stages:
        plan = [(*e[:4], tag) for e in HOST_FIT_PLAN if e[2] in wanted]
        # a repeated pass runs in reverse order, so drift within one call averages out
        run_models(plan[::-1] if tag else plan, out_dir / "host.csv", meter, budget_s=left())
    if "cbhost" in stages:
        from llm_energy_sim.calibrate.cbbench import CB_FIT_PLAN, run_cb

        plan = [e for e in CB_FIT_PLAN if e[2] in wanted]
        run_cb(plan, out_dir / "cbhost.csv", meter, budget_s=left())
    if "shapemiss" in stages:
        from llm_energy_sim.calibrate.shapemiss import run_shapemiss, sdpa_first_calls

        if not (out_dir / "sdpa_first_calls.csv").exists():
            sdpa_first_calls(out_dir / "sdpa_first_calls.csv")
        run_shapemiss(out_dir / "shapemiss.csv", meter, tuple(wanted))
    if "coldstart" in stages:
        from llm_energy_sim.calibrate.coldstart import run_coldstart

        run_coldstart(
            out_dir / "coldstart.csv", tuple(d for d in ("bfloat16", "float16") if d in wanted)
        )
    if "hostspeed" in stages:
        _hostspeed(out_dir, meter, tag)
    if "check" in stages:
        names = models.split(",") if models else CHECK_MODELS
        plan = [(m, None, d, (1,), tag) for m in names for d in CHECK_DTYPES if d in wanted]
        run_models(plan[::-1] if tag else plan, out_dir / "wholemodel.csv", meter, budget_s=left())
    if "repeat" in stages:
        run_models(REPEAT_PLAN, out_dir / "wholemodel.csv", meter, budget_s=left())
    if "interconnect" in stages:
        _interconnect(out_dir)
    if (out_dir / "microbench.csv").exists():
        from llm_energy_sim.calibrate.fit import fit_profile

        base, _ = load_profile("h100-sxm-bootstrap")
        save_profile(fit_profile(out_dir, name, base), out_dir / f"{name}.json")
        click.echo(f"fitted profile: {out_dir / f'{name}.json'}")
