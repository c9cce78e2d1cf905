"""Diagnostic: the slow early decode steps of HF generate on left-padded static batches (issue
17: the matrix's static cases, first batch steps 1-3 at 0.73-1.07 s against 75-200 ms later).

One process per model, as the live static engine runs (live/static_engine.py): the model built
by hf/build.build_model, the engine's warm-up (a full batch of WARM_UP_PROMPT-token prompts,
WARM_UP_NEW new tokens), then left-padded batches (hf/greedy.left_pad) with a per-step clock,
17 new tokens each:

* `first-profiled`: the first batch of the live case's trace (its prompt lengths), under
  torch.profiler (op table by self CPU and by self CUDA time, and the slowest steps' spans);
* `first-again`: the same lengths again;
* `second`: the live case's second batch's lengths (llama) or new lengths;
* `unpadded`: a batch of equal lengths (no zeros in the mask), new length.

Writes steps.csv (case, run, call, batch, longest, step, seconds; step 0 the prefill, from the
call's start) and profile-<case>.txt to --out. Not part of `sim`.

    python tools/device/static_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bnb_probe import _append  # the same row writer (tools/device/bnb_probe.py)

# prompt lengths of the live static cases' batches (measurements/live/h200-matrix/<case>/
# requests.parquet, prompt_tokens in request order)
MATRIX_PROMPTS = [881, 710, 609, 416, 446, 232, 260, 213, 340, 851, 720, 931, 603, 685, 977, 784]
CASES = {
    "llama-3.1-8b:bfloat16": (MATRIX_PROMPTS[:8], MATRIX_PROMPTS[8:]),
    "qwen2.5-7b:int8": (MATRIX_PROMPTS[:4], [700, 540, 350, 820]),
}
NEW_TOKENS = 17


def _batch(
    model,
    card,
    lengths: list[int],
    emit,
    run: str,
    profiled: Path | None = None,
    new_tokens: int = NEW_TOKENS,
    title: str = "first padded batch",
):
    """One left-padded batch of `lengths` random prompts through greedy.generate with a
    per-step clock, emit(run, batch, longest, step, seconds) per step (step 0 the prefill);
    `profiled`: under torch.profiler, its op tables written there."""
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.hf import greedy

    gen = torch.Generator(device="cpu").manual_seed(len(lengths) * 1000 + max(lengths))
    prompts = [torch.randint(1000, card.vocab_size, (n,), generator=gen).tolist() for n in lengths]
    ids, mask = greedy.left_pad(prompts, "cuda")
    clock = step_clock()

    def call():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        greedy.generate(model, ids, new_tokens, stopping_criteria=clock, attention_mask=mask)
        torch.cuda.synchronize()
        return t0

    if profiled is None:
        t0 = call()
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = call()
        ka = prof.key_averages()
        with profiled.open("w") as f:
            f.write(f"{title}, lengths {lengths}, {new_tokens} new tokens\n\n")
            f.write("== by self CPU time ==\n")
            f.write(ka.table(sort_by="self_cpu_time_total", row_limit=40))
            f.write("\n\n== by CPU total ==\n")
            f.write(ka.table(sort_by="cpu_time_total", row_limit=40))
            f.write("\n\n== by self CUDA time ==\n")
            f.write(ka.table(sort_by="self_cuda_time_total", row_limit=25))
    stamps = [t0, *clock.stamps]
    for i in range(1, len(stamps)):
        emit(run, len(lengths), max(lengths), i - 1, stamps[i] - stamps[i - 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import WARM_UP_NEW, build_model, warm_up_prompt

    for case, (first, second) in CASES.items():
        name, dtype = case.split(":")
        card = load_model_card(name)
        model = build_model(card, dtype, "cuda")

        def emit(run, batch, longest, step, s, case=case):
            _append(
                args.out / "steps.csv",
                {
                    "case": case,
                    "run": run,
                    "batch": batch,
                    "longest": longest,
                    "step": step,
                    "seconds": s,
                },
            )

        ids, mask = greedy.left_pad([warm_up_prompt(card)] * len(first), "cuda")
        t = time.perf_counter()
        greedy.generate(model, ids, WARM_UP_NEW, attention_mask=mask)  # the engine's warm-up
        torch.cuda.synchronize()
        emit("warm-up", len(first), ids.shape[1], -1, time.perf_counter() - t)
        _batch(
            model,
            card,
            first,
            emit,
            "first-profiled",
            args.out / f"profile-{case.replace(':', '-')}.txt",
        )
        _batch(model, card, first, emit, "first-again")
        _batch(model, card, second, emit, "second")
        _batch(model, card, [777] * len(first), emit, "unpadded")
        print("done", case, flush=True)


if __name__ == "__main__":
    main()
