"""transformers continuous batching (the `transformers_cb` engine): step time and energy.

The simulator's transformers_cb kind costs a step as max(GPU kernels, host) with its own host
overhead (per step, per layer, per sequence); this measures the engine itself so that host
term is fitted, not assumed. Same method as calibrate/hostbench.py, on the same Qwen2.5
shapes (none is a validation or whole-model check model): per (shape, batch) `batch`
requests of `prompt` random tokens are added at once to the engine's manager (FIFO,
8192-token budget, 256-token blocks, EOS off) and waited for, repeated for >= 1 s with 1 new
token (prefill) and >= 2.5 s with new_tokens + 1 (prefill + new_tokens decode steps). Decode
per step = (long - short) / new_tokens for time and energy; the per-token timestamps the
engine records give the median and spread of single steps. Rows go to a table with
hostbench's columns, so llm_energy_sim.calibrate.fit reads both.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from llm_energy_sim.calibrate.hostbench import Bench, run_plan, run_row, timed
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.meter.monitor import EnergyMonitor

METHOD = "cb-v1"
CB_CONFIG = {"block_size": 256, "max_batch_tokens": 8192, "scheduler_type": "fifo"}
# the HF eager host-fit shapes (calibrate/hostbench.py), batch 1 to 32
CB_FIT_SHAPES = (("qwen2.5-1.5b", 8), ("qwen2.5-3b", 36), ("qwen2.5-7b", 16), ("qwen2.5-1.5b", 28))
CB_FIT_PLAN = [(m, L, "bfloat16", (1, 8, 32), "") for m, L in CB_FIT_SHAPES]


def row_key(name: str, layers: int, dtype: str, batch: int, prompt: int, new: int, tag: str) -> str:
    return f"cb|{name}|{layers}L|{dtype}|{batch}|{prompt}|{new}|{METHOD}{'|' + tag if tag else ''}"


# the CUDA-graph variant (engine transformers_cb_graphs): two of the shapes, the same batches
CB_GRAPHS_PLAN = [(m, L, "bfloat16", (1, 8, 32), "graphs") for m, L in CB_FIT_SHAPES[::2]]


def start_cb_manager(model, device: str, cuda_graphs: bool = False):
    """The benchmark's manager (CB_CONFIG; steps as CUDA graph replays if cuda_graphs),
    started, once its batch processor exists. Under tensor parallelism every rank calls this
    with its shard (the set-up is collective)."""
    from transformers import ContinuousBatchingConfig

    from llm_energy_sim.hf.build import start_manager

    # on a GPU the cache is sized from free memory, as in the live runs; on CPU (tests) a
    # small fixed cache, since sizing from host memory allocates gigabytes
    config = ContinuousBatchingConfig(
        **CB_CONFIG,
        use_cuda_graph=cuda_graphs,
        **({} if device.startswith("cuda") else {"num_blocks": 32}),
    )
    return start_manager(model, config, timeout_s=300)


class CbBatches:
    """A started manager; `run(prompts, n_new)` adds them at once and waits for all."""

    def __init__(self, model, device: str, cuda_graphs: bool = False) -> None:
        self.manager = start_cb_manager(model, device, cuda_graphs)
        self.n = 0
        self.stamps: list[list[float]] = []

    def run(self, prompts: list[list[int]], n_new: int) -> None:
        ids = []
        for p in prompts:
            self.n += 1
            rid = f"cb{self.n}"
            self.manager.add_request(
                p, request_id=rid, max_new_tokens=n_new, record_timestamps=True, eos_token_id=-1
            )
            ids.append(rid)
        left = set(ids)
        while left:
            out = self.manager.get_result(timeout=120)
            if out is None:
                raise RuntimeError("transformers continuous batching gave no result in 120 s")
            if out.request_id in left and out.is_finished():
                left.discard(out.request_id)
                if out.error:
                    raise RuntimeError(f"request failed: {out.error}")
                if n_new > 1:
                    self.stamps.append(list(out.timestamps or []))

    def stop(self) -> None:
        self.manager.stop(block=True, timeout=60, hard_stop=True)


def bench_batch(
    eng: CbBatches,
    card: ModelCard,
    dtype: str,
    batch: int,
    prompt: int,
    new_tokens: int,
    min_s: tuple[float, float],
    sync,
    monitor: EnergyMonitor,
    t_build: float,
    method: str,
) -> dict:
    """One raw row: `batch` random prompts at once through a started manager, short (1 new
    token) and long (new_tokens + 1) runs each repeated for min_s, the single-step spread from
    the engine's per-token timestamps (shared by the one-GPU and the TP benchmark)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(batch)
    prompts = torch.randint(1000, card.vocab_size, (batch, prompt), generator=gen).tolist()
    pre = timed(monitor, lambda: eng.run(prompts, 1), sync, min_s[0])
    eng.stamps = []
    full = timed(monitor, lambda: eng.run(prompts, new_tokens + 1), sync, min_s[1])
    steps = np.concatenate([np.diff(s[1:]) for s in eng.stamps if len(s) > 2])
    return run_row(
        card, dtype, batch, prompt, new_tokens, pre, full, steps, t_build, monitor, method
    )


def measure_cb_model(
    card: ModelCard,
    dtype: str,
    batches: tuple[int, ...],
    prompt: int,
    new_tokens: int,
    monitor: EnergyMonitor,
    device: str = "cuda",
    min_s: tuple[float, float] = (1.0, 2.5),
    cuda_graphs: bool = False,
) -> list[dict]:
    """One model build and engine, measured at each batch size; a raw row per batch size.
    min_s: the least time the short (prefill) and long runs are repeated for."""
    import torch

    from llm_energy_sim.hf.build import build_uncached

    torch.manual_seed(0)
    t_build = time.perf_counter()
    model = build_uncached(card, dtype, device, 0, "sdpa")
    t_build = time.perf_counter() - t_build
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    eng = CbBatches(model, device, cuda_graphs)
    rows = []
    try:
        for batch in batches:
            bench = (card, dtype, batch, prompt, new_tokens)
            rows.append(bench_batch(eng, *bench, min_s, sync, monitor, t_build, METHOD))
    finally:
        eng.stop()
        model = None  # free the GPU memory before the next build
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def run_cb(
    plan: list[tuple[str, int | None, str, tuple[int, ...], str]],
    out_csv: Path,
    monitor: EnergyMonitor,
    prompt: int = 256,
    new_tokens: int = 32,
    device: str = "cuda",
    budget_s: float | None = None,
    progress: bool = True,
    cuda_graphs: bool = False,
) -> int:
    """plan: (card, layers or None, dtype, batch sizes, tag); rows appended as measured, a
    rerun skips keys already in out_csv; a failing configuration is recorded and skipped
    (hostbench.run_plan's loop). cuda_graphs: the manager replays CUDA graphs."""
    measure = functools.partial(measure_cb_model, cuda_graphs=cuda_graphs)
    bench = Bench(measure, row_key, prompt, new_tokens, monitor, device)
    return run_plan(plan, out_csv, bench, "transformers CB runs", budget_s, progress)
