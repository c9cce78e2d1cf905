"""Diagnostic: where a bitsandbytes (LLM.int8, NF4) HF generate step spends its time on the GPU
machine, against the same model in bf16 (issue 17: the matrix's bitsandbytes cases ran 2-2.7x
slower than predicted, after the host factor).

One process, full-size models (random weights, built and quantised as the live engines do:
hf/build.build_model), HF generate through hf/greedy.generate with a per-step clock:

* `same`: three calls of one prompt shape (512 tokens, batch 1): cold and warm step times;
* `shapes`: prompts of 600, 700 and 800 tokens (shapes not seen before): first-call costs;
* `batch4`: four 512-token prompts at once (the static engine's case);
* `profile`: one call under torch.profiler, its op table by self CPU and by self CUDA time.

A host-speed pass (calibrate/hostspeed.py, the one `sim replay --hostspeed` runs) before the
first model and after the last. Writes steps.csv (case, model, layers, dtype, run, call, batch,
prompt, step, seconds: step 0 is the prefill, timed from the call's start), builds.csv,
hostspeed.csv and profile-<model>-<dtype>.txt to --out, row by row. Not part of `sim`.

    python tools/device/bnb_probe.py --out DIR [--cases qwen2.5-7b:int4,...]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

DEFAULT_CASES = (
    "qwen2.5-7b:int4,qwen2.5-7b:int4:16,qwen2.5-7b:int8,qwen2.5-7b:bfloat16,mistral-7b:int4"
)
NEW_TOKENS = 17


def _append(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _calls(model, card, run: str, prompts: list[int], batch: int, repeat: int, emit) -> None:
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.hf import greedy

    gen = torch.Generator(device="cpu").manual_seed(1)
    for call, length in enumerate(p for p in prompts for _ in range(repeat)):
        x = torch.randint(1000, card.vocab_size, (batch, length), generator=gen).cuda()
        clock = step_clock()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        greedy.generate(model, x, NEW_TOKENS, stopping_criteria=clock)
        torch.cuda.synchronize()
        stamps = [t0, *clock.stamps]
        for i in range(1, len(stamps)):
            emit(run, call, batch, length, i - 1, stamps[i] - stamps[i - 1])


def _profile(model, card, path: Path) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from llm_energy_sim.hf import greedy

    x = torch.randint(1000, card.vocab_size, (1, 512)).cuda()
    greedy.generate(model, x, 3)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        greedy.generate(model, x, 6)
        torch.cuda.synchronize()
    ka = prof.key_averages()
    with path.open("w") as f:
        f.write("one generate(prompt 512, 6 new tokens, batch 1)\n\n== by self CPU time ==\n")
        f.write(ka.table(sort_by="self_cpu_time_total", row_limit=30))
        f.write("\n\n== by self CUDA time ==\n")
        f.write(ka.table(sort_by="self_cuda_time_total", row_limit=30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cases", default=DEFAULT_CASES)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    from llm_energy_sim.calibrate.hostspeed import measure_host_speed
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf.build import build_model
    from llm_energy_sim.meter.monitor import EnergyMonitor

    monitor = EnergyMonitor([0])
    measure_host_speed(args.out / "hostspeed.csv", monitor, tag="before")
    for case in args.cases.split(","):
        name, dtype, *layers = case.split(":")
        card = load_model_card(name)
        if layers:
            card = card.model_copy(update={"num_hidden_layers": int(layers[0])})
        t = time.perf_counter()
        model = build_model(card, dtype, "cuda")
        torch.cuda.synchronize()
        _append(
            args.out / "builds.csv",
            {
                "case": case,
                "build_s": time.perf_counter() - t,
                "gpu_mem_gib": torch.cuda.memory_allocated() / 2**30,
            },
        )

        def emit(run, call, batch, prompt, step, s, case=case, card=card, dtype=dtype):
            _append(
                args.out / "steps.csv",
                {
                    "case": case,
                    "model": card.name,
                    "layers": card.num_hidden_layers,
                    "dtype": dtype,
                    "run": run,
                    "call": call,
                    "batch": batch,
                    "prompt": prompt,
                    "step": step,
                    "seconds": s,
                },
            )

        _calls(model, card, "same", [512], 1, 3, emit)
        if layers:  # the calibration's cut-down shape: the repeat is all it is for
            continue
        _calls(model, card, "shapes", [600, 700, 800], 1, 1, emit)
        _calls(model, card, "batch4", [512], 4, 2, emit)
        if not case.startswith("mistral"):
            _profile(model, card, args.out / f"profile-{name}-{dtype}.txt")
        print("done", case, flush=True)
    measure_host_speed(args.out / "hostspeed.csv", monitor, tag="after")


if __name__ == "__main__":
    main()
