"""Diagnostic: the steady decode step of HF generate on left-padded static batches (issue 17).
The live static cases' decode steps ran 21-71 ms (at host factor 1) longer than the model's
step without plan-cache misses, and the padded attention builds no plan per key length
(measurements/calibration/h200-staticprobe), so that time is a per-step cost not measured.

One process, as the live static engine runs (live/static_engine.py): per case the model built
by hf/build.build_model, the engine's warm-up, then a left-padded batch at the matrix's prompt
lengths three times with a per-step clock (NEW_TOKENS new tokens): `first` (pays any kernel
compiles), `again` (every shape seen), `profiled` (again, under torch.profiler: op tables by
self CPU and self CUDA time), and `unpadded` (one length, no zero in the mask). Host-speed
passes in this process before and after each case (hostspeed.csv). Writes steps.csv (case,
run, batch, longest, step, seconds; step 0 the prefill) and profile-<case>.txt to --out.
Not part of `sim`.

    python tools/device/static_steady_probe.py --out DIR [--cases NAME:DTYPE:BATCH,...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bnb_probe import _append  # the same row writer (tools/device/bnb_probe.py)
from static_probe import _batch as run_batch  # the batch with its per-step clock

# prompt lengths of the live static cases' batches (measurements/live/h200-matrix/<case>/
# requests.parquet, prompt_tokens in request order)
MATRIX_PROMPTS = [881, 710, 609, 416, 446, 232, 260, 213, 340, 851, 720, 931, 603, 685, 977, 784]
CASES = (
    "qwen2.5-7b:bfloat16:8",
    "qwen2.5-7b:float16:8",
    "llama-3.1-8b:bfloat16:8",
    "llama-3.1-8b:float16:8",
    "qwen2.5-1.5b:bfloat16:4",
    "qwen2.5-7b:bfloat16:16",
    "mistral-7b:bfloat16:16",
)
NEW_TOKENS = 24


def _batch(model, card, lengths, emit, run: str, profiled: Path | None = None) -> None:
    """static_probe's batch at NEW_TOKENS new tokens (the profile's title: a warm batch)."""
    run_batch(model, card, lengths, emit, run, profiled, NEW_TOKENS, "warm padded batch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    from llm_energy_sim.cli.replay import measure_host_pass
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import WARM_UP_NEW, build_model, warm_up_prompt

    host_table = args.out / "hostspeed.csv"
    for case in args.cases.split(","):
        name, dtype, batch = case.split(":")
        lengths = MATRIX_PROMPTS[: int(batch)]
        measure_host_pass(host_table, "cuda", True, "before")
        card = load_model_card(name)
        model = build_model(card, dtype, "cuda")

        def emit(run, b, longest, step, s, case=case):
            row = {"case": case, "run": run, "batch": b, "longest": longest, "step": step}
            _append(args.out / "steps.csv", {**row, "seconds": s})

        ids, mask = greedy.left_pad([warm_up_prompt(card)] * len(lengths), "cuda")
        t = time.perf_counter()
        greedy.generate(model, ids, WARM_UP_NEW, attention_mask=mask)  # the engine's warm-up
        torch.cuda.synchronize()
        emit("warm-up", len(lengths), ids.shape[1], -1, time.perf_counter() - t)
        _batch(model, card, lengths, emit, "first")
        _batch(model, card, lengths, emit, "again")
        tag = case.replace(":", "-")
        _batch(model, card, lengths, emit, "profiled", args.out / f"profile-{tag}.txt")
        _batch(model, card, [max(lengths)] * len(lengths), emit, "unpadded")
        del model
        torch.cuda.empty_cache()
        measure_host_pass(host_table, "cuda", True, "after")
        print("done", case, flush=True)


if __name__ == "__main__":
    main()
