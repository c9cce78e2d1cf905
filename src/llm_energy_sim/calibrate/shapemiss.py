"""Attention shape misses: the host time of a step whose attention shape the process has not run.

On Hopper, torch's scaled_dot_product_attention dispatches bf16/fp16 to cuDNN, which builds
and caches an execution plan per input shape; the first call at a new (batch, query, key)
shape took 42-80 ms (median 59 ms) on an H100 against 0.05-0.12 ms once cached
(measurements/calibration/h100-v2/sdpa_first_calls.csv). Serving meets new shapes all the time (every decode step of HF generate has a
new KV length until that length was seen; transformers CB packs all sequences into one
attention whose KV length is their sum), while the host benchmarks repeat identical calls and
so measure cached steps only. This stage measures the difference per engine and dtype, on a
host-fit shape (none of the validation models):

* cached: the same request(s) run three times; the third run's decode steps.
* fresh: requests whose prompt lengths no earlier call used, so every decode step (and the
  prefill) meets new attention shapes.

miss_s = median fresh step - median cached step; the energy of both runs gives the power the
GPU draws meanwhile. Rows are appended as measured (one per engine, dtype); rerun skips them.
"""

from __future__ import annotations

import itertools
import time
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
from llm_energy_sim.meter.monitor import EnergyMonitor, Measurement

METHOD = "miss-v2"  # v2: fresh lengths unique in the process (v1 reused them per build)
FIELDS = (
    "engine",
    *RUN_FIELDS,
    "cached_step_s",
    "fresh_step_s",
    "cached_first_s",
    "fresh_first_s",
    "miss_s",
    "cached_power_w",
    "fresh_power_w",
    "fresh_steps",
    "method",
    *STATE_FIELDS,
)
SHAPE = ("qwen2.5-1.5b", 8)  # a host-fit shape (calibrate/hostbench.py)
# more host-fit shapes (more heads, more layers), bf16/fp16 only: the miss grows with the
# model (the first H100 pass: 37 ms at 8 layers, 45 ms at 16, ~95 ms on Llama-3.1-8B's 32 in
# the step probe), so three layer counts separate a per-step and a per-layer part
WIDE_SHAPES = (("qwen2.5-7b", 16), ("qwen2.5-3b", 36))
WIDE_DTYPES = ("bfloat16", "float16")
GENERATE_DTYPES = ("bfloat16", "float16", "float32", "int8", "int4")
CB_DTYPES = ("bfloat16", "float16", "float32")
PROMPT, NEW_TOKENS, CB_BATCH = 300, 24, 4
# fresh prompt lengths, one process-wide sequence: cuDNN caches a plan per shape and dtype, not
# per model, so a length reused by a later build (another dtype with the same activation dtype,
# e.g. LLM.int8 after float16) would find its plans cached and measure no miss
_FRESH_LENGTHS = itertools.count(PROMPT + 7, 53)


def row_key(engine: str, name: str, layers: int, dtype: str, batch: int) -> str:
    return f"{engine}|{name}|{layers}L|{dtype}|{batch}|{PROMPT}|{NEW_TOKENS}|{METHOD}"


def metered_block(monitor: EnergyMonitor, sync, fn):
    """fn's result and the Measurement (wall time, energy of all metered GPUs) of running it,
    the device synchronised at both ends."""
    sync()
    with monitor.window("block") as w:
        result = fn()
        sync()
    return result, w.measurement


def _generate_runs(model, vocab: int, device: str, prompts: list[int], sync):
    """HF generate, one request per prompt length; returns (first-token s, decode steps s)."""
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.hf import greedy

    firsts, steps = [], []
    for length in prompts:
        x = torch.randint(1000, vocab, (1, length), device=device)
        clock = step_clock()
        sync()
        t0 = time.perf_counter()
        greedy.generate(model, x, NEW_TOKENS + 1, stopping_criteria=clock)
        firsts.append(clock.stamps[0] - t0)
        steps.extend(np.diff(clock.stamps))
    return firsts, steps


def cb_runs(batches, vocab: int, prompt_sets: list[list[int]]):
    """transformers CB: each set's requests added at once; (first-token s, decode steps s)."""
    import torch

    firsts, steps = [], []
    for lengths in prompt_sets:
        prompts = [torch.randint(1000, vocab, (n,)).tolist() for n in lengths]
        batches.stamps = []
        t0 = time.perf_counter()
        batches.run(prompts, NEW_TOKENS + 1)
        for s in batches.stamps:
            firsts.append(s[0] - t0)
            steps.extend(np.diff(s))
    return firsts, steps


def measure_engine(
    engine: str,
    card: ModelCard,
    dtype: str,
    monitor: EnergyMonitor,
    device: str = "cuda",
    cb_batch: int = CB_BATCH,
) -> dict:
    """One model build; cached and fresh runs of one engine (hf_eager or transformers_cb)."""
    import torch

    from llm_energy_sim.hf.build import build_uncached
    from llm_energy_sim.hf.quantize import BUILD_DTYPE, quantize_linears

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    model = build_uncached(card, BUILD_DTYPE[dtype], device, 0, "sdpa")
    if dtype in ("int8", "int4"):
        quantize_linears(model, dtype)
    try:
        if engine == "hf_eager":
            batch = 1
            same = [PROMPT] * 3
            fresh = [next(_FRESH_LENGTHS) for _ in range(3)]

            def run(ps):
                return _generate_runs(model, card.vocab_size, device, ps, sync)
        else:
            from llm_energy_sim.calibrate.cbbench import CbBatches

            batch = cb_batch
            cb = CbBatches(model, device)
            same = [[PROMPT + i for i in range(batch)]] * 3
            fresh = [[next(_FRESH_LENGTHS) for _ in range(batch)] for _ in range(3)]

            def run(ps):
                return cb_runs(cb, card.vocab_size, ps)

        try:
            run(same[:2])  # warm: the third identical run meets only cached shapes
            (c_first, c_steps), m_c = metered_block(monitor, sync, lambda: run(same[2:]))
            (f_first, f_steps), m_f = metered_block(monitor, sync, lambda: run(fresh))
        finally:
            if engine != "hf_eager":
                cb.stop()
    finally:
        model = None
        if cuda:
            torch.cuda.empty_cache()
    run = dict(engine=engine, card=card, dtype=dtype, batch=batch, prompt=PROMPT)
    return miss_row(
        **run,
        new_tokens=NEW_TOKENS,
        cached=(c_steps, m_c),
        fresh=(f_steps, m_f),
        monitor=monitor,
        method=METHOD,
        firsts=(c_first, f_first),
    )


def miss_row(
    engine: str,
    card: ModelCard,
    dtype: str,
    batch: int,
    prompt: int,
    new_tokens: int,
    cached: tuple[list[float], Measurement],
    fresh: tuple[list[float], Measurement],
    monitor: EnergyMonitor,
    method: str,
    firsts: tuple | None = None,
) -> dict:
    """One shapemiss.csv row from the cached and fresh runs, each (step times, the run's
    Measurement): medians, the miss, mean power per metered GPU; the one-GPU and both TP
    benchmarks write it."""
    (c_steps, m_c), (f_steps, m_f) = cached, fresh
    c_med, f_med = float(np.median(c_steps)), float(np.median(f_steps))
    return {
        "engine": engine,
        **run_columns(card, dtype, batch, prompt, new_tokens),
        "cached_step_s": c_med,
        "fresh_step_s": f_med,
        "cached_first_s": "" if firsts is None else float(np.median(firsts[0])),
        "fresh_first_s": "" if firsts is None else float(np.median(firsts[1])),
        "miss_s": f_med - c_med,
        "cached_power_w": blank(m_c.mean_power_w),
        "fresh_power_w": blank(m_f.mean_power_w),
        "fresh_steps": len(f_steps),
        "method": method,
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **monitor.state(),
    }


def run_shapemiss(
    out_csv: Path,
    monitor: EnergyMonitor,
    dtypes: tuple[str, ...] = GENERATE_DTYPES,
    card: ModelCard | None = None,
    device: str = "cuda",
    progress: bool = True,
) -> int:
    """Measure every (engine, dtype) not yet in out_csv; a failure is recorded, the run goes on."""
    from tqdm import tqdm

    cards = [card] if card is not None else [_card(*SHAPE)]
    plan = [(cards[0], "hf_eager", d) for d in GENERATE_DTYPES if d in dtypes]
    plan += [(cards[0], "transformers_cb", d) for d in CB_DTYPES if d in dtypes]
    if card is None:
        for wide in (_card(*w) for w in WIDE_SHAPES):
            plan += [(wide, e, d) for e in ("hf_eager", "transformers_cb") for d in WIDE_DTYPES]
    done, n = done_keys(out_csv), 0
    for card, engine, dtype in tqdm(plan, desc="attention shape misses", disable=not progress):
        batch = 1 if engine == "hf_eager" else CB_BATCH
        key = row_key(engine, card.name, card.num_hidden_layers, dtype, batch)
        if key in done:
            continue
        try:
            row = measure_engine(engine, card, dtype, monitor, device)
            row["error"] = ""
        except Exception as exc:  # e.g. a dtype the engine cannot run: recorded, go on
            row = {"engine": engine, "model": card.name, "dtype": dtype, "batch": batch}
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        append_row(out_csv, {"key": key, **{k: row.get(k, "") for k in FIELDS}})
        n += 1
    return n


def _card(name: str, layers: int) -> ModelCard:
    from llm_energy_sim.config.modelcard import load_model_card

    return load_model_card(name).model_copy(update={"num_hidden_layers": layers})


SDPA_FIELDS = ("heads", "q", "kv", "mask", "dtype", "first_s", "again_s", "utc")


def sdpa_first_calls(out_csv: Path, device: str = "cuda") -> None:
    """scaled_dot_product_attention alone: first call at a new shape vs the same call again,
    over heads, query and key lengths and mask kinds (what the engines pass: none in HF
    prefill/decode, a float mask in transformers CB); shows what a miss depends on."""
    import torch
    import torch.nn.functional as F

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows, salt = [], 0
    for dtype in (torch.bfloat16, torch.float16):
        for heads in (12, 32):
            for q in (1, 16, 512):
                for kv in (512, 1024, 4096):
                    for mask in ("none", "float"):
                        salt += 1
                        k_len = kv + salt  # never a shape used before in this process
                        qt = torch.randn(1, heads, q, 128, device=device, dtype=dtype)
                        kt = torch.randn(1, heads, k_len, 128, device=device, dtype=dtype)
                        m = None
                        if mask == "float":
                            m = torch.zeros(1, 1, q, k_len, device=device, dtype=dtype)
                        times = []
                        for _ in range(3):
                            sync()
                            t = time.perf_counter()
                            F.scaled_dot_product_attention(qt, kt, kt, attn_mask=m)
                            sync()
                            times.append(time.perf_counter() - t)
                        rows.append(
                            {
                                "heads": heads,
                                "q": q,
                                "kv": k_len,
                                "mask": mask,
                                "dtype": str(dtype).removeprefix("torch."),
                                "first_s": times[0],
                                "again_s": min(times[1:]),
                                "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            }
                        )
    for r in rows:
        append_row(out_csv, r)
