"""The measurements of `sim calibrate`, as objects in one list (STAGES, run in its order).

`sim calibrate --stages a,b` picks stages by name (`select`); calibrate/session.py runs the
picked ones in STAGES order with one Context, then fits the profile from the raw tables.
Docs/extending.md ("Add a calibration stage") has the checklist for a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from llm_energy_sim.calibrate.rawread import read_raw
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.meter.monitor import EnergyMonitor


@dataclass(frozen=True)
class Context:
    """What every stage of one `sim calibrate` run shares: the output directory, the energy
    monitor (GPU 0), the options (--dtypes, --quick, --models, --tag), the measuring
    deadline (--budget-minutes, on time.monotonic) and where progress lines go."""

    out_dir: Path
    monitor: EnergyMonitor
    dtypes: tuple[str, ...]
    quick: bool = False
    models: tuple[str, ...] | None = None
    tag: str = ""
    deadline: float | None = None
    echo: Callable[[str], None] = field(default=print)

    def left(self) -> float | None:
        """Seconds of the budget left (None: no budget)."""
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def path(self, table: str) -> Path:
        return self.out_dir / table


class Stage:
    """One measurement of `sim calibrate`. A subclass provides:

    - `name`: its --stages name;
    - `writes`: the raw tables it appends to, relative to the output directory;
    - `before_cuda`: True for a stage that must run before this process creates a CUDA
      context (the deep-idle reading); the session checks for a CUDA GPU and records the
      provenance after those stages;
    - `run(ctx)`: measure, appending each row as soon as it is measured (calibrate/rawtable.py);
    - `done(out_dir)`: True when a rerun has nothing to do, so `run` is skipped. The default
      is False: the stage resumes row by row, skipping keys already in its tables.
    """

    name: ClassVar[str]
    writes: ClassVar[tuple[str, ...]]
    before_cuda: ClassVar[bool] = False

    def done(self, out_dir: Path) -> bool:
        return False

    def run(self, ctx: Context) -> None:
        raise NotImplementedError


class Idle(Stage):
    """Idle power in its states (deep idle before a CUDA context, active idle, decay, duty
    cycles): one sequence, so a partial table is not resumed."""

    name, writes, before_cuda = "idle", ("idle.csv",), True

    def done(self, out_dir: Path) -> bool:
        return (out_dir / "idle.csv").exists()

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.idlebench import measure_idle

        ctx.echo(
            "idle states (deep idle before a CUDA context, active idle, decay, duty cycles) ..."
        )
        measure_idle(ctx.path("idle.csv"), ctx.monitor)


class Grid(Stage):
    """The kernel microbenchmarks (calibrate/grid.py) of the chosen dtypes."""

    name, writes = "grid", ("microbench.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.grid import build_grid
        from llm_energy_sim.calibrate.runner import run_grid

        pts = build_grid(ctx.dtypes, quick=ctx.quick)
        run_grid(pts, ctx.path("microbench.csv"), ctx.monitor, budget_s=ctx.left())


class Graph(Stage):
    """The CUDA-graph regime (calibrate/graphbench.py): every kernel class timed inside graph
    replays, the copy / GEMM caps, sustained power per class and the host cost of a replay,
    for the 16-bit and fp8 dtypes chosen."""

    name, writes = "graph", ("graph.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.graphbench import measure_graph

        ctx.echo("graph: kernels inside CUDA graph replays (calibrate/graphbench.py) ...")
        measure_graph(ctx.out_dir, ctx.monitor, ctx.dtypes, ctx.quick, ctx.left(), ctx.echo)


class Host(Stage):
    """HF generate on the host-fit shapes; a tagged (repeated) pass runs in reverse order,
    so drift within the session averages out."""

    name, writes = "host", ("host.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.hostbench import HOST_FIT_PLAN, run_models

        plan = [(*e[:4], ctx.tag) for e in HOST_FIT_PLAN if e[2] in ctx.dtypes]
        plan = plan[::-1] if ctx.tag else plan
        run_models(plan, ctx.path("host.csv"), ctx.monitor, budget_s=ctx.left())


class CbHost(Stage):
    """transformers continuous batching on the host-fit shapes (calibrate/cbbench.py)."""

    name, writes = "cbhost", ("cbhost.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.cbbench import CB_FIT_PLAN, run_cb

        plan = [e for e in CB_FIT_PLAN if e[2] in ctx.dtypes]
        run_cb(plan, ctx.path("cbhost.csv"), ctx.monitor, budget_s=ctx.left())


class CbHostGraphs(Stage):
    """transformers continuous batching with CUDA graphs (engine transformers_cb_graphs) on
    two of the host-fit shapes: the host cost per step once the forward is a graph replay."""

    name, writes = "cbhost-graphs", ("cbhost_graphs.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.cbbench import CB_GRAPHS_PLAN, run_cb

        plan = [e for e in CB_GRAPHS_PLAN if e[2] in ctx.dtypes]
        run_cb(
            plan, ctx.path("cbhost_graphs.csv"), ctx.monitor, budget_s=ctx.left(), cuda_graphs=True
        )


class ShapeMiss(Stage):
    """Attention shape misses (calibrate/shapemiss.py), after SDPA's first calls alone."""

    name, writes = "shapemiss", ("sdpa_first_calls.csv", "shapemiss.csv")

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.shapemiss import run_shapemiss, sdpa_first_calls

        if not ctx.path("sdpa_first_calls.csv").exists():
            sdpa_first_calls(ctx.path("sdpa_first_calls.csv"))
        run_shapemiss(ctx.path("shapemiss.csv"), ctx.monitor, ctx.dtypes)


class ColdStart(Stage):
    """The first step of a fresh engine process (calibrate/coldstart.py), 16-bit dtypes."""

    name, writes = "coldstart", ("coldstart.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.coldstart import run_coldstart

        dtypes = tuple(d for d in ("bfloat16", "float16") if d in ctx.dtypes)
        run_coldstart(ctx.path("coldstart.csv"), dtypes)


class HostSpeed(Stage):
    """One host-fit run (calibrate/hostspeed.py) and this machine's host_time_factor against
    every shipped profile, printed."""

    name, writes = "hostspeed", ("hostspeed.csv",)

    def run(self, ctx: Context) -> None:

        from llm_energy_sim.calibrate.hostspeed import host_time_factor, measure_host_speed
        from llm_energy_sim.config.profile import load_profile, shipped_profile_names

        measure_host_speed(ctx.path("hostspeed.csv"), ctx.monitor, ctx.tag)
        runs = read_raw(ctx.path("hostspeed.csv"))
        for name in shipped_profile_names():
            f = host_time_factor(runs, load_profile(name)[0])
            if len(f):
                last = f.iloc[-1]
                ctx.echo(
                    f"hostspeed: decode {1e3 * last.measured_s:.1f} ms/token here, "
                    f"{1e3 * last.predicted_s:.1f} predicted by {name}: "
                    f"hardware.host_time_factor = {last.host_time_factor:.2f}"
                )


class Check(Stage):
    """The held-out whole-model check (--models overrides the models); a tagged pass runs in
    reverse order."""

    name, writes = "check", ("wholemodel.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.hostbench import CHECK_DTYPES, CHECK_MODELS, run_models

        names = ctx.models or CHECK_MODELS
        plan = [(m, None, d, (1,), ctx.tag) for m in names for d in CHECK_DTYPES if d in ctx.dtypes]
        plan = plan[::-1] if ctx.tag else plan
        run_models(plan, ctx.path("wholemodel.csv"), ctx.monitor, budget_s=ctx.left())


class Repeat(Stage):
    """Two check runs again at the end of the session: host-time drift within it."""

    name, writes = "repeat", ("wholemodel.csv",)

    def run(self, ctx: Context) -> None:
        from llm_energy_sim.calibrate.hostbench import REPEAT_PLAN, run_models

        run_models(REPEAT_PLAN, ctx.path("wholemodel.csv"), ctx.monitor, budget_s=ctx.left())


class Interconnect(Stage):
    """NCCL all-reduce over 2, 4, ... GPUs (calibrate/interconnect.py): one process per GPU,
    spawned from here, every GPU metered; skipped (said so) on a one-GPU node."""

    name, writes = "interconnect", ("allreduce.csv",)

    def done(self, out_dir: Path) -> bool:
        return (out_dir / "allreduce.csv").exists()

    def run(self, ctx: Context) -> None:
        import torch

        from llm_energy_sim.calibrate.interconnect import measure_allreduce

        n = torch.cuda.device_count()
        if n < 2:
            ctx.echo(f"interconnect: skipped, this node has {n} GPU (needs >= 2)")
            return
        ctx.echo(f"interconnect: NCCL all-reduce on {n} GPUs, groups of 2..{n} ...")
        measure_allreduce(ctx.path("allreduce.csv"))


STAGES: tuple[Stage, ...] = (
    Idle(),
    Grid(),
    Graph(),
    Host(),
    CbHost(),
    CbHostGraphs(),
    ShapeMiss(),
    ColdStart(),
    HostSpeed(),
    Check(),
    Repeat(),
    Interconnect(),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def select(spec: str) -> list[Stage]:
    """The stages named in a comma-separated list, in STAGES order (UserError: an unknown
    name or none)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in STAGE_NAMES]
    if bad or not names:
        what = f"unknown {', '.join(bad)}" if bad else "no stage named"
        raise UserError(f"--stages: {what} (allowed: {', '.join(STAGE_NAMES)})")
    return [s for s in STAGES if s.name in names]
