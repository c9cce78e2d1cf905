"""Diagnostic: why does the live engine step ~3x slower under `sim replay` than when driven directly?

Times every phase of transformers' continuous-batching step (schedule, tensor preparation,
forward launch, device-to-host wait, state update) under several conditions, in one process
on one model (Llama-3.1-8B shape, bf16, random weights):

* `replay-meter`: `sim replay` of the fixed-500 ms validation trace (first N requests), as
  in docs/validation.md: asyncio client, result handlers, NVML energy poller every 20 ms.
* `replay-nometer`: the same with `--no-meter` (no NVML polling in the process).
* `replay-nogc`: as `replay-meter` with Python's cyclic GC frozen and disabled.
* `direct-poll` / `direct-nopoll`: the engine driven as calibrate/cbbench.py does (8 requests
  of 256 tokens added at once, 32 new tokens), with and without the NVML poller running.
* `generate-poll` / `generate-nopoll`: HF generate(), 1 request of 512 tokens, 64 new.

Writes steps.csv (one row per timed call: condition, phase, start, seconds, batch, q tokens,
kv read) and tokens.csv (generate token times) to --out. Not part of `sim`: it patches
transformers' classes to time them.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

ROWS: list[tuple] = []
CONDITION = [""]


def _wrap(cls, name: str, phase: str, extra=None) -> None:
    orig = getattr(cls, name)

    def timed(self, *a, **k):
        t = time.perf_counter()
        r = orig(self, *a, **k)
        ROWS.append((CONDITION[0], phase, t, time.perf_counter() - t, *(extra(r) if extra else ())))
        return r

    setattr(cls, name, timed)


def _schedule_extra(r):
    reqs, _fast, q, kv = r
    return (len(reqs) if reqs else 0, q, kv)


def instrument() -> None:
    from transformers.generation.continuous_batching import (
        continuous_api,
        input_outputs,
        model_runner,
        scheduler,
    )

    bp, io = continuous_api.ContinuousBatchProcessor, input_outputs.ContinuousBatchingIOs
    _wrap(bp, "prepare_next_batch", "prepare")
    _wrap(scheduler.FIFOScheduler, "schedule_batch", "schedule", _schedule_extra)
    _wrap(io, "prepare_batch_tensors", "tensors")
    _wrap(model_runner.ModelRunner, "compute_batch", "forward_launch")
    _wrap(io, "retrieve_device_outputs", "d2h_wait")
    _wrap(bp, "update_batch", "update")


DEVICE = ["cuda"]
EXTRA_SETS: list[str] = []


def run_replay(cond: str, scenario: str, n: int, out: Path, meter: bool) -> None:
    from llm_energy_sim.cli.replay import replay_cmd

    CONDITION[0] = cond
    args = [scenario, "--engine", "transformers", "--requests", str(n), "--quiet"]
    args += ["--device", DEVICE[0], *EXTRA_SETS]
    args += ["--out", str(out / cond)] + ([] if meter else ["--no-meter"])
    replay_cmd.main(args, standalone_mode=False)


def run_direct(cond: str, poll: bool) -> None:
    import torch

    from llm_energy_sim.calibrate.cbbench import CbBatches
    from llm_energy_sim.hf.build import MODEL_CACHE
    from llm_energy_sim.meter.sampler import start_meter

    model = next(iter(MODEL_CACHE.values()))
    eng = CbBatches(model, DEVICE[0])
    poller = start_meter([0]) if poll else None
    try:
        prompts = torch.randint(1000, model.config.vocab_size, (8, 256)).tolist()
        CONDITION[0] = cond + "-warm"
        eng.run(prompts, 4)
        CONDITION[0] = cond
        for _ in range(3):
            eng.run(prompts, 33)
    finally:
        eng.stop()
        if poller is not None:
            poller.stop(time.perf_counter())


def set_cudnn_sdp(on: bool) -> None:
    import torch

    torch.backends.cuda.enable_cudnn_sdp(on)


def run_generate_fresh(cond: str, tokens: list, reps: int = 4) -> None:
    """generate() with a prompt length never used before on every repeat: every decode step
    then meets a KV length, hence an attention shape, that no earlier call had."""
    import torch

    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import MODEL_CACHE, FirstTokenStamp

    model = next(iter(MODEL_CACHE.values()))
    model.set_attn_implementation("sdpa")
    base = 700 + 97 * len(tokens) % 300
    for rep in range(reps):
        x = torch.randint(1000, model.config.vocab_size, (1, base + 131 * rep), device=DEVICE[0])
        stamp = FirstTokenStamp()
        greedy.generate(model, x, 48, streamer=stamp)
        if DEVICE[0] == "cuda":
            torch.cuda.synchronize()
        tokens += [(cond, rep, i, t) for i, t in enumerate(stamp.times)]


def run_sdpa_shapes(out: Path) -> None:
    """SDPA alone: the first call at a shape never seen vs the same call again, for the masks
    the engines pass (none/causal in HF prefill, a float mask in transformers CB), with
    cuDNN attention allowed and disallowed. Writes sdpa_shapes.csv."""
    import torch
    import torch.nn.functional as F

    rows = []
    dev, dt = DEVICE[0], torch.bfloat16
    for cudnn in (True, False):
        set_cudnn_sdp(cudnn)
        for mask_kind in ("none", "float", "bool"):
            for i in range(12):
                q_len, kv = (
                    9,
                    3000
                    + 37 * i
                    + (0 if cudnn else 5)
                    + {"none": 0, "float": 1, "bool": 2}[mask_kind],
                )
                q = torch.randn(1, 32, q_len, 128, device=dev, dtype=dt)
                k = torch.randn(1, 32, kv, 128, device=dev, dtype=dt)
                v = torch.randn_like(k)
                m = None
                if mask_kind == "float":
                    m = torch.zeros(1, 1, q_len, kv, device=dev, dtype=dt)
                elif mask_kind == "bool":
                    m = torch.ones(1, 1, q_len, kv, device=dev, dtype=torch.bool)
                times = []
                for _ in range(3):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    F.scaled_dot_product_attention(q, k, v, attn_mask=m)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t)
                rows.append((cudnn, mask_kind, q_len, kv, *times))
    set_cudnn_sdp(True)
    with open(out / "sdpa_shapes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cudnn_allowed", "mask", "q", "kv", "first_s", "second_s", "third_s"])
        w.writerows(rows)
    try:
        from torch.profiler import ProfilerActivity, profile

        q = torch.randn(1, 32, 9, 128, device=dev, dtype=dt)
        k = torch.randn(1, 32, 2999, 128, device=dev, dtype=dt)
        m = torch.zeros(1, 1, 9, 2999, device=dev, dtype=dt)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            F.scaled_dot_product_attention(q, k, k, attn_mask=m)
            torch.cuda.synchronize()
        (out / "sdpa_kernels.txt").write_text(prof.key_averages().table(row_limit=15))
    except Exception as exc:  # diagnostic only
        (out / "sdpa_kernels.txt").write_text(f"profiler failed: {exc}")


def run_cache_capacity(out: Path, n: int = 1200) -> None:
    """How many attention plans does the cache keep? Create n new SDPA shapes in turn; at
    checkpoints, time a call at a shape created `age` shapes earlier (a hit is ~0.1 ms, a
    miss tens of ms). Writes cache_capacity.csv."""
    import torch
    import torch.nn.functional as F

    dev, dt = DEVICE[0], torch.bfloat16
    q = torch.randn(1, 32, 1, 128, device=dev, dtype=dt)

    def call(kv: int) -> float:
        k = torch.randn(1, 32, kv, 128, device=dev, dtype=dt)
        m = torch.zeros(1, 1, 1, kv, device=dev, dtype=dt)
        torch.cuda.synchronize()
        t = time.perf_counter()
        F.scaled_dot_product_attention(q, k, k, attn_mask=m)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    base, rows = 5000, []
    checkpoints = {50, 150, 400, 800, n}
    for i in range(n):
        rows.append(("create", i, 0, call(base + i)))
        if i + 1 in checkpoints:
            for age in (20, 45, 120, 300, 700, 1150):
                j = i - age
                if j >= 0:
                    rows.append(("revisit", j, age, call(base + j)))
    with open(out / "cache_capacity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["what", "index", "age", "seconds"])
        w.writerows(rows)


def run_overlap(out: Path) -> None:
    """Does a request hit the plans an earlier request of another prompt length built? HF
    generate (Qwen2.5-1.5B shape, 8 layers, bf16): request A (prompt 300, 48 new tokens), then
    B (prompt 320, 48 new): B's decode KV lengths 321-347 were A's too (hits expected), 348-367
    are new (misses). Writes overlap.csv: request, step, kv length, seconds."""
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import build_uncached

    card = load_model_card("qwen2.5-1.5b").model_copy(update={"num_hidden_layers": 8})
    model = build_uncached(card, "bfloat16", DEVICE[0], 0, "sdpa")
    rows = []
    warm = torch.randint(1000, 9000, (1, 100), device=DEVICE[0])
    greedy.generate(model, warm, 4)  # library set-up out of the way
    for name, prompt in (("A", 300), ("B", 320), ("A-again", 300)):
        x = torch.randint(1000, 9000, (1, prompt), device=DEVICE[0])
        clock = step_clock()
        greedy.generate(model, x, 49, stopping_criteria=clock)
        for i, dt in enumerate(np.diff(clock.stamps)):
            rows.append((name, i, prompt + 1 + i, dt))  # step i decodes with this KV length
    with open(out / "overlap.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request", "step", "kv", "seconds"])
        w.writerows(rows)


def run_cached_by_length(out: Path) -> None:
    """The cached HF generate step of Llama-3.1-8B (bf16) at several prompt lengths, in one
    process: the same request three times, the third run's steps (all shapes cached). Was
    26 ms at prompt 512 in one session and 42 ms at prompt 300 in another. cached_steps.csv."""
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import build_uncached

    model = build_uncached(load_model_card("llama-3.1-8b"), "bfloat16", DEVICE[0], 0, "sdpa")
    rows = []
    for prompt in (300, 512, 1000, 300):
        x = torch.randint(1000, 9000, (1, prompt), device=DEVICE[0])
        for rep in range(3):
            clock = step_clock()
            greedy.generate(model, x, 33, stopping_criteria=clock)
            rows += [(prompt, rep, i, dt) for i, dt in enumerate(np.diff(clock.stamps))]
    with open(out / "cached_steps.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "rep", "step", "seconds"])
        w.writerows(rows)


def run_generate(cond: str, poll: bool, tokens: list) -> None:
    import torch

    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import MODEL_CACHE, FirstTokenStamp
    from llm_energy_sim.meter.sampler import start_meter

    model = next(iter(MODEL_CACHE.values()))
    model.set_attn_implementation("sdpa")  # continuous batching switched it to paged|sdpa
    x = torch.randint(1000, model.config.vocab_size, (1, 512), device=DEVICE[0])
    greedy.generate(model, x, 4)
    poller = start_meter([0]) if poll else None
    try:
        for rep in range(3):
            stamp = FirstTokenStamp()
            greedy.generate(model, x, 64, streamer=stamp)
            if DEVICE[0] == "cuda":
                torch.cuda.synchronize()
            tokens += [(cond, rep, i, t) for i, t in enumerate(stamp.times)]
    finally:
        if poller is not None:
            poller.stop(time.perf_counter())


def host_facts(out: Path) -> None:
    import torch

    lines = [
        f"python {platform.python_version()} torch {torch.__version__}",
        f"cpus {os.cpu_count()} torch threads {torch.get_num_threads()}",
        f"loadavg {Path('/proc/loadavg').read_text().strip()}",
    ]
    for cmd in (["lscpu"], ["nvidia-smi", "-q", "-d", "CLOCK,PERFORMANCE"]):
        try:
            lines.append(subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout)
        except Exception as exc:  # diagnostic only
            lines.append(f"{cmd}: {exc}")
    (out / "host.txt").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--scenario", default="scenarios/validation/fixed500ms.yaml")
    ap.add_argument("--plan", default="v1", help="v1: meter/GC/driver; v2: attention shapes")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke run of the probe itself")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="scenario override")
    a = ap.parse_args()
    DEVICE[0] = a.device
    for kv in a.sets:
        EXTRA_SETS.extend(["--set", kv])
    a.out.mkdir(parents=True, exist_ok=True)
    host_facts(a.out)
    instrument()
    tokens: list = []
    plans = {
        "v3": [("cache-capacity", lambda: run_cache_capacity(a.out))],
        "v4": [("overlap", lambda: run_overlap(a.out))],
        "v5": [("cached-by-length", lambda: run_cached_by_length(a.out))],
        "v2": [
            ("sdpa-shapes", lambda: run_sdpa_shapes(a.out)),
            (
                "replay-default",
                lambda: run_replay("replay-default", a.scenario, a.requests, a.out, True),
            ),
            ("generate-fresh", lambda: run_generate_fresh("generate-fresh", tokens)),
            (
                "generate-fresh-nocudnn",
                lambda: (
                    set_cudnn_sdp(False),
                    run_generate_fresh("generate-fresh-nocudnn", tokens),
                ),
            ),
            (
                "replay-nocudnn",
                lambda: run_replay("replay-nocudnn", a.scenario, a.requests, a.out, True),
            ),
        ],
    }
    plan = plans.get(a.plan) or [
        ("replay-meter", lambda: run_replay("replay-meter", a.scenario, a.requests, a.out, True)),
        (
            "replay-nometer",
            lambda: run_replay("replay-nometer", a.scenario, a.requests, a.out, False),
        ),
        ("direct-nopoll", lambda: run_direct("direct-nopoll", False)),
        ("direct-poll", lambda: run_direct("direct-poll", True)),
        ("generate-nopoll", lambda: run_generate("generate-nopoll", False, tokens)),
        ("generate-poll", lambda: run_generate("generate-poll", True, tokens)),
        (
            "replay-nogc",
            lambda: (
                gc.freeze(),
                gc.disable(),
                run_replay("replay-nogc", a.scenario, a.requests, a.out, True),
            ),
        ),
    ]
    for name, fn in plan:
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # keep the other conditions
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)
        print(f"{name}: {time.perf_counter() - t:.1f} s", flush=True)
        with open(a.out / "steps.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["condition", "phase", "t_s", "seconds", "requests", "q_tokens", "kv_read"])
            w.writerows(ROWS)
        with open(a.out / "tokens.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["condition", "rep", "token", "t_s"])
            w.writerows(tokens)


if __name__ == "__main__":
    main()
