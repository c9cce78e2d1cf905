"""Diagnostic: the GPU power of HF generate's host-bound decode steps on left-padded static
batches against unpadded and single-sequence ones (issue 17: the live static matrix cases drew
175-244 W where the model gives 154-187 W at matching step times; the sequential cases match).

One process, models built as the live engines do (hf/build.build_model), each through the
engine's warm-up, then metered calls (NVML energy counter, calibrate/shapemiss.metered_block)
of NEW_TOKENS new tokens with a per-step clock:

* `padded-A` (the live case's first batch: pays the JIT compiles of a fresh machine),
  `padded-A-again` (every shape cached), `padded-B` (new lengths, same alignment classes: a
  cuDNN plan per step), `unpadded` / `unpadded-again` (equal lengths, no mask), `single` /
  `single-again` (batch 1).

A host-speed pass (calibrate/hostspeed.py) before the first model and after the last. Writes
calls.csv (case, run, batch, longest, new_tokens, wall_s, energy_j, mean_power_w, prefill_s),
steps.csv (case, run, step, seconds) and hostspeed.csv to --out, row by row. Not part of `sim`.

    python tools/device/padded_power_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bnb_probe import _append  # the same row writer (tools/device/bnb_probe.py)
from static_probe import MATRIX_PROMPTS  # the live static cases' prompt lengths

# (model:dtype, first-batch lengths): the live static cases (measurements/live/h200-matrix)
CASES = {
    "qwen2.5-14b:bfloat16": MATRIX_PROMPTS,
    "mistral-7b:float16": MATRIX_PROMPTS[:8],
    "llama-3.1-8b:int8": MATRIX_PROMPTS,
}
NEW_TOKENS = 48
SHIFT = 48
UNPADDED = 777
SINGLE = 601


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.calibrate.hostspeed import measure_host_speed
    from llm_energy_sim.calibrate.shapemiss import metered_block
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import WARM_UP_NEW, build_model, warm_up_prompt
    from llm_energy_sim.meter.monitor import EnergyMonitor

    monitor = EnergyMonitor([0])
    measure_host_speed(args.out / "hostspeed.csv", monitor, tag="before")
    for case in args.cases.split(","):
        name, dtype = case.split(":")
        card = load_model_card(name)
        model = build_model(card, dtype, "cuda")
        a = CASES[case]
        ids, mask = greedy.left_pad([warm_up_prompt(card)] * len(a), "cuda")
        greedy.generate(model, ids, WARM_UP_NEW, attention_mask=mask)  # the engine's warm-up
        torch.cuda.synchronize()
        runs = [
            ("padded-A", a),
            ("padded-A-again", a),
            ("padded-B", [n + SHIFT for n in a]),
            ("unpadded", [UNPADDED] * len(a)),
            ("unpadded-again", [UNPADDED] * len(a)),
            ("single", [SINGLE]),
            ("single-again", [SINGLE]),
        ]
        for run, lengths in runs:
            gen = torch.Generator(device="cpu").manual_seed(sum(lengths))
            prompts = [
                torch.randint(1000, card.vocab_size, (n,), generator=gen).tolist() for n in lengths
            ]
            x, m = greedy.left_pad(prompts, "cuda")
            clock = step_clock()

            def call(x=x, m=m, clock=clock, model=model):
                greedy.generate(model, x, NEW_TOKENS, stopping_criteria=clock, attention_mask=m)

            t0 = time.perf_counter()
            _, meas = metered_block(monitor, torch.cuda.synchronize, call)
            stamps = [t0, *clock.stamps]
            _append(
                args.out / "calls.csv",
                {
                    "case": case,
                    "run": run,
                    "batch": len(lengths),
                    "longest": max(lengths),
                    "new_tokens": NEW_TOKENS,
                    "wall_s": meas.time_s,
                    "energy_j": meas.total_j,
                    "mean_power_w": meas.mean_power_w,
                    "prefill_s": stamps[1] - stamps[0],
                },
            )
            for i in range(1, len(stamps)):
                _append(
                    args.out / "steps.csv",
                    {"case": case, "run": run, "step": i - 1, "seconds": stamps[i] - stamps[i - 1]},
                )
        del model
        torch.cuda.empty_cache()
        print("done", case, flush=True)
    measure_host_speed(args.out / "hostspeed.csv", monitor, tag="after")


if __name__ == "__main__":
    main()
