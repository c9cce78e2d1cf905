"""Diagnostic: how an HF eager decode step's host work and kernels add up, and the Qwen GQA
shapes of transformers CB's graph-mode attention at 256 queries (issues 17 and 16).

Part A, HF generate decode anatomy. The cost model prices an eager decode step as
max(GPU, host) (cost/costmodel.py step_cost). The matrix's float32 static cases are off in
both directions: Qwen2.5-7B at batch 16 (kernels and host about equal) ran 46 ms steps where
the model gives 34 ms, Qwen2.5-1.5B at batch 4 (host-bound) 20.5 ms against 26.5 ms. Per case
(one process, the model built as the live engines build it, hf/build.build_model, and warmed
up as they do), three generate() calls over the same left-padded prompts (hf/greedy.left_pad),
NEW_TOKENS new tokens each:

* `fresh`: first time at these key lengths (bf16/fp16 pay cuDNN plan builds);
* `steady`: the same again, the per-step clock (stopping criterion) and, around every model
  forward, the host's perf_counter at entry and return (the return comes before the GPU is
  done: the host issue time of the forward);
* `profiled`: the same under torch.profiler: per step, the union of kernel intervals (GPU
  busy), the sum of kernel times, and the GPU idle time inside the step, by step window (one
  forward's start to the next's, in the profiler's clock), and kernel time by name group.

Writes steps.csv (case, run, step, wall_s, forward_host_s, gpu_busy_s, kernel_sum_s,
kernels, syncs) and hostspeed.csv (calibrate/hostspeed.py passes before and after all cases).

Part B, graph-mode attention shapes (calibrate/graphbench.py's own points and measurement):
transformers CB's paged|sdpa K/V copies and masked SDPA at 256 queries (a 256-request decode
batch) and more KV for the (28, 4) and (12, 2) head shapes, and the (32, 8) shape the fit is
made of beside them. Rows in graph-extra.csv (graphbench columns). Not part of `sim`.

    python tools/device/overlap_probe.py --out DIR [--only A|B]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.device.bnb_probe import _append  # noqa: E402  (one CSV row, header first)

# prompt lengths of the live matrix's static cases (measurements/live/h200-matrix/<case>/
# requests.parquet, prompt_tokens in request order)
MATRIX_PROMPTS = [881, 710, 609, 416, 446, 232, 260, 213, 340, 851, 720, 931, 603, 685, 977, 784]
CASES = (
    ("qwen2.5-1.5b", "float32", MATRIX_PROMPTS[:4]),
    ("qwen2.5-1.5b", "float32", [881]),
    ("qwen2.5-7b", "float32", MATRIX_PROMPTS),
    ("qwen2.5-7b", "float32", [977]),
    ("mistral-7b", "float16", MATRIX_PROMPTS[:8]),
    ("llama-3.1-8b", "bfloat16", MATRIX_PROMPTS[:8]),
    ("llama-3.1-8b", "bfloat16", [881]),
    ("qwen2.5-14b", "bfloat16", MATRIX_PROMPTS),
)
NEW_TOKENS = 24
# graph-mode attention points: (q_total, kv_total, heads, kv_heads), kv = 16384 j + q as the
# engine pads them (calibrate/graphbench.py PACKED)
GRAPH_EXTRA = tuple(
    (q, 16384 * j + q, h, kvh)
    for h, kvh in ((28, 4), (12, 2), (32, 8))
    for q in (256,)
    for j in (1, 2, 3, 4, 6)
) + tuple(
    (q, 16384 * j + q, h, kvh) for h, kvh in ((28, 4), (12, 2)) for q in (64, 128) for j in (2, 3)
)


def _groups(name: str) -> str:
    n = name.lower()
    if "gemm" in n or "gemv" in n or "sm90" in n or "cutlass" in n or "matmul" in n:
        return "gemm"
    if "attention" in n or "fmha" in n or "flash" in n or "softmax" in n:
        return "attention"
    if "copy" in n or "cat" in n or "index" in n:
        return "copy"
    return "other"


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def _decode_case(model, card, lengths: list[int], case: str, out: Path, device: str) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.hf import greedy

    gen = torch.Generator(device="cpu").manual_seed(len(lengths) * 1000 + max(lengths))
    prompts = [torch.randint(1000, card.vocab_size, (n,), generator=gen).tolist() for n in lengths]
    ids, mask = greedy.left_pad(prompts, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    spans: list[tuple[float, float]] = []
    inner = model.forward

    def timed_forward(*a, **kw):
        t0 = time.perf_counter()
        with record_function("probe_forward"):
            y = inner(*a, **kw)
        spans.append((t0, time.perf_counter()))
        return y

    model.forward = timed_forward
    try:
        for run in ("fresh", "steady", "profiled"):
            spans.clear()
            clock = step_clock()
            sync()
            if run == "profiled":
                with profile(activities=acts) as prof:
                    t0 = time.perf_counter()
                    greedy.generate(
                        model, ids, NEW_TOKENS, stopping_criteria=clock, attention_mask=mask
                    )
                    sync()
            else:
                t0 = time.perf_counter()
                greedy.generate(
                    model, ids, NEW_TOKENS, stopping_criteria=clock, attention_mask=mask
                )
                sync()
            stamps = [t0, *clock.stamps]
            gpu = _gpu_per_step(prof) if run == "profiled" else {}
            for i in range(1, len(stamps)):
                fwd = spans[i - 1] if i - 1 < len(spans) else (float("nan"),) * 2
                g = gpu.get(i - 1, {})
                _append(
                    out / "steps.csv",
                    {
                        "case": case,
                        "run": run,
                        "batch": len(lengths),
                        "longest": max(lengths),
                        "step": i - 1,
                        "wall_s": stamps[i] - stamps[i - 1],
                        "forward_host_s": fwd[1] - fwd[0],
                        "gpu_busy_s": g.get("busy", float("nan")),
                        "kernel_sum_s": g.get("sum", float("nan")),
                        "kernels": g.get("n", 0),
                        "syncs": g.get("syncs", 0),
                        "gemm_s": g.get("gemm", 0.0),
                        "attention_s": g.get("attention", 0.0),
                        "copy_s": g.get("copy", 0.0),
                        "other_s": g.get("other", 0.0),
                    },
                )
    finally:
        model.forward = inner


def _gpu_per_step(prof) -> dict[int, dict]:
    """Per forward (step index): kernel busy union, kernel sum, kernel count, host syncs and
    kernel time by name group, the kernels assigned by start time to [forward i start,
    forward i+1 start) in the profiler's clock (generate reads every step's token back, so a
    step's kernels end before the next forward starts)."""
    from torch.autograd import DeviceType

    events = prof.events()
    fwd = sorted(e.time_range.start for e in events if e.name == "probe_forward")
    kernels = [
        e
        for e in events
        if e.device_type == DeviceType.CUDA
        and "memcpy" not in e.name.lower()
        and "memset" not in e.name.lower()
    ]
    syncs = [
        e.time_range.start
        for e in events
        if e.name in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "aten::_local_scalar_dense")
    ]
    out: dict[int, dict] = {}
    bounds = [*fwd, float("inf")]
    for i in range(len(fwd)):
        lo, hi = bounds[i], bounds[i + 1]
        ks = [k for k in kernels if lo <= k.time_range.start < hi]
        row = {
            "busy": _union([(k.time_range.start, k.time_range.end) for k in ks]) * 1e-6,
            "sum": sum(k.time_range.end - k.time_range.start for k in ks) * 1e-6,
            "n": len(ks),
            "syncs": sum(1 for s in syncs if lo <= s < hi),
        }
        for k in ks:
            g = _groups(k.name)
            row[g] = row.get(g, 0.0) + (k.time_range.end - k.time_range.start) * 1e-6
        out[i] = row
    return out


def part_a(out: Path, device: str = "cuda", cases=CASES) -> None:
    import torch

    from llm_energy_sim.calibrate.hostspeed import measure_host_speed
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import WARM_UP_NEW, build_model, warm_up_prompt
    from llm_energy_sim.meter.monitor import EnergyMonitor

    monitor = EnergyMonitor([0] if device == "cuda" else [])
    measure_host_speed(out / "hostspeed.csv", monitor, tag="before", device=device)
    built = None
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for name, dtype, lengths in cases:
        case = f"{name}:{dtype}:b{len(lengths)}"
        t = time.perf_counter()
        try:
            if built is None or built[0] != (name, dtype):
                built = None
                torch.cuda.empty_cache()
                card = load_model_card(name)
                built = ((name, dtype), card, build_model(card, dtype, device))
            _, card, model = built
            warm = greedy.left_pad([warm_up_prompt(card)] * len(lengths), device)
            greedy.generate(model, warm[0], WARM_UP_NEW, attention_mask=warm[1])
            sync()
            _decode_case(model, card, lengths, case, out, device)
            print(f"done {case} in {time.perf_counter() - t:.1f} s", flush=True)
        except Exception as exc:  # record and go on
            print(f"failed {case}: {type(exc).__name__}: {exc}", flush=True)
            built = None
            torch.cuda.empty_cache()
    built = None
    torch.cuda.empty_cache()
    measure_host_speed(out / "hostspeed.csv", monitor, tag="after", device=device)


def part_b(out: Path, budget_s: float) -> None:
    from llm_energy_sim.calibrate.graphbench import _attn, run_plan
    from llm_energy_sim.meter.monitor import EnergyMonitor

    points = []
    for q, kv, h, kvh in GRAPH_EXTRA:
        points.append(_attn("attn_kv_copy", "kv_copy", "bfloat16", 1, q, kv, h, kvh))
        points.append(_attn("attn_masked_sdpa", "masked_sdpa", "bfloat16", 1, q, kv, h, kvh))
        points.append(_attn("attn_packed", "paged_sdpa", "bfloat16", 1, q, kv, h, kvh))
    print(run_plan(points, out / "graph-extra.csv", EnergyMonitor([0]), budget_s), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", choices=("A", "B"))
    ap.add_argument("--graph-budget-s", type=float, default=150.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "B"):
        part_b(args.out, args.graph_budget_s)
    if args.only in (None, "A"):
        part_a(args.out)


if __name__ == "__main__":
    main()
