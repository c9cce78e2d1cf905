"""Whole-model HF generate() runs: prefill and per-token decode latency and energy.

Used twice: on shapes of the Qwen2.5 family (several layer counts, batch 1 and 8) to fit the
HF eager host overhead (per step, per layer, per sequence) and the host-wait power; and on
other models (Qwen2.5-0.5B/14B, Mistral-7B, Llama-3.1-8B) as a held-out whole-model check.
Random weights (never zeros); bitsandbytes int8/int4 by swapping the Linear layers of a
16-bit model for LLM.int8 / NF4 layers, quantised on the GPU.

Method (v2). Per run: warm-up generate; then `generate(max_new_tokens=1)` repeated for >= 1 s
(prefill: time and energy per call, NVML counter over the window), and
`generate(max_new_tokens=N+1)` repeated for >= 2.5 s. Decode per token = (generate(N+1) -
generate(1)) / N for time and energy. A stopping criterion timestamps every step (after the
step's token reached the host, which generate waits for anyway), so the raw rows also carry
the median and spread of single decode steps, and the process CPU time and the VM's steal
time per step: HF eager decode is host-bound, so a slow or descheduled CPU shows up there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from llm_energy_sim.calibrate.rawtable import (
    RUN_FIELDS,
    STATE_FIELDS,
    append_row,
    blank,
    done_keys,
    run_columns,
)
from llm_energy_sim.config.modelcard import ModelCard
from llm_energy_sim.hf import greedy
from llm_energy_sim.hf.quantize import BUILD_DTYPE, quantize_linears
from llm_energy_sim.meter.monitor import EnergyMonitor

METHOD = "v2"


def step_clock():
    """A transformers stopping criterion that never stops and timestamps every step (its
    `.stamps`); built here so transformers is imported only when measuring."""
    import torch
    from transformers import StoppingCriteria

    class StepClock(StoppingCriteria):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def __call__(self, input_ids, scores, **kwargs):
            int(input_ids[0, -1])  # the step's token is on the host: the step is over
            self.stamps.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StepClock()


def _steal_jiffies() -> int | None:
    """CPU time stolen from this VM by its hypervisor (all CPUs, /proc/stat), if readable."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return None


def timed(
    monitor: EnergyMonitor, fn: Callable[[], None], sync: Callable[[], None], min_s: float
) -> dict:
    """Repeat fn (at least twice) for >= min_s in one window after a warm-up call: wall, CPU
    and stolen time, and energy (all metered GPUs; None timing only), per call."""
    fn()
    sync()
    s0, c0 = _steal_jiffies(), time.process_time()
    n = 0
    with monitor.window("timed") as w:
        t0 = time.perf_counter()
        while n < 2 or time.perf_counter() - t0 < min_s:
            fn()
            sync()
            n += 1
    m = w.measurement
    s1 = _steal_jiffies()
    return {
        "s": m.time_s / n,
        "j": m.total_j / n if m.total_j is not None else None,
        "n": n,
        "cpu_s": (time.process_time() - c0) / n,
        "steal_s": (s1 - s0) / 100.0 / n if s0 is not None and s1 is not None else None,
    }


def measure_model(
    card: ModelCard,
    dtype: str,
    batches: tuple[int, ...],
    prompt: int,
    new_tokens: int,
    monitor: EnergyMonitor,
    device: str = "cuda",
) -> list[dict]:
    """One model build, measured at each batch size; a raw row per batch size."""
    import torch

    from llm_energy_sim.hf.build import build_uncached

    torch.manual_seed(0)
    t_build = time.perf_counter()
    model = build_uncached(card, BUILD_DTYPE[dtype], device, 0, "sdpa")
    if dtype in ("int8", "int4"):
        quantize_linears(model, dtype)
    t_build = time.perf_counter() - t_build
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for batch in batches:
        gen = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randint(1000, card.vocab_size, (batch, prompt), generator=gen).to(device)
        pre = timed(monitor, lambda x=x: greedy.generate(model, x, 1), sync, 1.0)
        clock = step_clock()
        full = timed(
            monitor,
            lambda x=x, c=clock: greedy.generate(model, x, new_tokens + 1, stopping_criteria=c),
            sync,
            2.5,
        )
        steps = _decode_steps(clock.stamps, new_tokens + 1)
        rows.append(
            run_row(
                card, dtype, batch, prompt, new_tokens, pre, full, steps, t_build, monitor, METHOD
            )
        )
    model = None  # free the GPU memory before the next build
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def run_row(
    card: ModelCard,
    dtype: str,
    batch: int,
    prompt: int,
    new_tokens: int,
    pre: dict,
    full: dict,
    steps: np.ndarray,
    t_build: float,
    monitor: EnergyMonitor,
    method: str,
) -> dict:
    """One raw row from a short (prefill) and a long (prefill + new_tokens) timed run: decode
    per token is their difference; also single-step spread, CPU and stolen time per token."""
    row = {
        **run_columns(card, dtype, batch, prompt, new_tokens),
        "prefill_s": pre["s"],
        "prefill_j": blank(pre["j"]),
        "decode_s_per_token": (full["s"] - pre["s"]) / new_tokens,
        "decode_j_per_token": blank(
            None if pre["j"] is None else (full["j"] - pre["j"]) / new_tokens
        ),
        "step_median_s": float(np.median(steps)),
        "step_p10_s": float(np.percentile(steps, 10)),
        "step_p90_s": float(np.percentile(steps, 90)),
        "cpu_s_per_token": (full["cpu_s"] - pre["cpu_s"]) / new_tokens,
        "steal_s_per_token": blank(
            None
            if full["steal_s"] is None
            else max(full["steal_s"] - pre["steal_s"], 0.0) / new_tokens
        ),
        "repeats_prefill": pre["n"],
        "repeats_generate": full["n"],
        "build_s": t_build,
        "method": method,
    }
    row.update(monitor.state())
    row["utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return row


def _decode_steps(stamps: list[float], per_call: int) -> np.ndarray:
    """Durations of the decode steps: differences of successive stamps within each call."""
    a = np.asarray(stamps, float)
    calls = a[: len(a) // per_call * per_call].reshape(-1, per_call)
    return np.diff(calls, axis=1).ravel()


def row_key(name: str, layers: int, dtype: str, batch: int, prompt: int, new: int, tag: str) -> str:
    return f"{name}|{layers}L|{dtype}|{batch}|{prompt}|{new}|{METHOD}{'|' + tag if tag else ''}"


def run_models(
    plan: list[tuple[str, int | None, str, tuple[int, ...], str]],
    out_csv: Path,
    monitor: EnergyMonitor,
    prompt: int = 512,
    new_tokens: int = 32,
    device: str = "cuda",
    budget_s: float | None = None,
    progress: bool = True,
) -> int:
    """plan: (card, layers or None for the card's, dtype, batch sizes, tag) entries; rows are
    appended as measured and a rerun skips the keys already in out_csv (resumable)."""

    def free_gpu() -> None:
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    bench = Bench(measure_model, row_key, prompt, new_tokens, monitor, device)
    return run_plan(plan, out_csv, bench, "HF generate runs", budget_s, progress, free_gpu)


@dataclass(frozen=True)
class Bench:
    """What run_plan measures with: measure(card, dtype, batches, prompt, new_tokens, monitor,
    device) -> a raw row per batch size, and the row key of each (name, layers, dtype, batch,
    prompt, new_tokens, tag)."""

    measure: Callable[..., list[dict]]
    row_key: Callable[[str, int, str, int, int, int, str], str]
    prompt: int
    new_tokens: int
    monitor: EnergyMonitor
    device: str


def run_plan(
    plan: list[tuple[str, int | None, str, tuple[int, ...], str]],
    out_csv: Path,
    bench: Bench,
    desc: str,
    budget_s: float | None,
    progress: bool,
    on_error: Callable[[], None] = lambda: None,
) -> int:
    """The resumable measurement loop of hostbench and cbbench: plan entries are (card, layers
    or None for the card's, dtype, batch sizes, tag); the batch sizes whose keys are not yet in
    out_csv are measured in one call and appended with FIELDS' columns; no new entry starts
    after budget_s; a failing configuration is recorded as error rows (on_error runs first) and
    the run goes on. Returns the rows appended."""
    from tqdm import tqdm

    from llm_energy_sim.config.modelcard import load_model_card

    done = done_keys(out_csv)
    start, n = time.monotonic(), 0
    prompt, new_tokens = bench.prompt, bench.new_tokens
    for name, layers, dtype, batches, tag in tqdm(
        plan, desc=desc, unit="model", disable=not progress
    ):
        card = load_model_card(name)
        if layers:
            card = card.model_copy(update={"num_hidden_layers": layers})
        keys = {
            b: bench.row_key(name, card.num_hidden_layers, dtype, b, prompt, new_tokens, tag)
            for b in batches
        }
        todo = tuple(b for b in batches if keys[b] not in done)
        if not todo:
            continue
        if budget_s is not None and time.monotonic() - start > budget_s:
            break
        try:
            rows = bench.measure(card, dtype, todo, prompt, new_tokens, bench.monitor, bench.device)
            for r in rows:
                r["error"] = ""
        except Exception as exc:  # e.g. out of memory: recorded, the run goes on
            err = f"{type(exc).__name__}: {exc}"[:300]
            rows = [{"model": name, "dtype": dtype, "batch": b, "error": err} for b in todo]
            on_error()
        for r in rows:
            key = keys[int(r["batch"])]
            append_row(out_csv, {"key": key, "tag": tag, **{k: r.get(k, "") for k in FIELDS}})
            n += 1
    return n


FIELDS = [
    *RUN_FIELDS,
    "prefill_s",
    "prefill_j",
    "decode_s_per_token",
    "decode_j_per_token",
    "step_median_s",
    "step_p10_s",
    "step_p90_s",
    "cpu_s_per_token",
    "steal_s_per_token",
    "repeats_prefill",
    "repeats_generate",
    "build_s",
    "method",
    *STATE_FIELDS,
]

# Host-overhead fit: Qwen2.5 shapes (none of them in the whole-model check), four layer counts
# (cut-down copies of the cards) so per-step and per-layer costs separate; batch 1 and 8.
HOST_FIT_SHAPES = (
    ("qwen2.5-1.5b", 8),
    ("qwen2.5-3b", 36),
    ("qwen2.5-7b", 16),
    ("qwen2.5-1.5b", 28),
)
HOST_FIT_PLAN = [(m, L, "bfloat16", (1, 8), "") for m, L in HOST_FIT_SHAPES] + [
    (m, L, d, (1,), "") for d in ("float32", "int8", "int4") for m, L in HOST_FIT_SHAPES
]
CHECK_MODELS = ("qwen2.5-0.5b", "mistral-7b", "llama-3.1-8b", "qwen2.5-14b")
CHECK_DTYPES = ("float32", "bfloat16", "float16", "int8", "int4")
CHECK_PLAN = [(m, None, d, (1,), "") for m in CHECK_MODELS for d in CHECK_DTYPES]
# the same runs again at the end of a calibration: how much host time drifts within one call
REPEAT_PLAN = [
    ("llama-3.1-8b", None, "bfloat16", (1,), "repeat"),
    ("qwen2.5-1.5b", 28, "bfloat16", (1,), "repeat"),
]
