"""Diagnostic: are the slow first padded-batch steps of HF generate (0.5-1 s at each new key-length
alignment class, measurements/calibration/h200-staticprobe) a per-process plan build or a
per-machine kernel compilation kept in CUDA's on-disk JIT cache (CUDA_CACHE_PATH)?

Why it matters: in the live matrix (measurements/live/h200-matrix) the first static case of the
first `sim replay` call paid them (Llama-3.1-8B bf16 b8; Qwen2.5-7B LLM.int8 b4, fp16), while
the static cases of a second call four minutes later on the same machine, in a new process,
paid none (Qwen2.5-14B bf16 b16, Mistral-7B fp16 b8, Llama-3.1-8B LLM.int8 b16).

For each case, three child processes in a row, each running the live static engine's sequence
(hf/build.build_model, the engine's warm-up, left-padded batches with a per-step clock):

* `cold`: CUDA_CACHE_PATH an empty directory;
* `warm`: a new process, the same CUDA_CACHE_PATH (what the first process compiled is on disk);
* `nocache`: a new process with CUDA_CACHE_DISABLE=1.

Each child: a host-speed pass (calibrate/hostspeed.py), then the runs `padded-A` (the live
case's first batch), `padded-A-again`, `padded-B` (new lengths, longest shifted by a multiple
of 16: the same alignment classes at every step), `unpadded` (equal lengths, no mask),
`unpadded-again`, and `single` (batch 1 at two new lengths, then the first again). Writes
steps.csv (case, process, run, batch, longest, step, seconds; step 0 the prefill, from the
call's start) and hostspeed.csv to --out. Not part of `sim`.

    python tools/device/jit_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bnb_probe import _append  # the same row writer (tools/device/bnb_probe.py)
from static_probe import MATRIX_PROMPTS  # the live static cases' prompt lengths

# (model:dtype, batch A lengths): the live static cases' first batches
# (measurements/live/h200-matrix/<case>/requests.parquet, prompt_tokens in request order)
CASES = {
    "llama-3.1-8b:bfloat16": MATRIX_PROMPTS[:8],
    "qwen2.5-7b:int8": MATRIX_PROMPTS[:4],
    "mistral-7b:float16": MATRIX_PROMPTS[:8],
}
NEW_TOKENS = 17
SHIFT = 48  # batch B: every length + 48 (a multiple of 16 keeps each step's alignment class)
UNPADDED = 777
SINGLE = (601, 733)


def _generate(model, card, lengths: list[int], seed: int):
    import torch

    from llm_energy_sim.calibrate.hostbench import step_clock
    from llm_energy_sim.hf import greedy

    gen = torch.Generator(device="cpu").manual_seed(seed)
    prompts = [torch.randint(1000, card.vocab_size, (n,), generator=gen).tolist() for n in lengths]
    ids, mask = greedy.left_pad(prompts, "cuda")
    clock = step_clock()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    greedy.generate(model, ids, NEW_TOKENS, stopping_criteria=clock, attention_mask=mask)
    torch.cuda.synchronize()
    stamps = [t0, *clock.stamps]
    return [stamps[i] - stamps[i - 1] for i in range(1, len(stamps))]


def child(case: str, process: str, out: Path) -> None:
    import torch

    from llm_energy_sim.calibrate.hostspeed import measure_host_speed
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf import greedy
    from llm_energy_sim.hf.build import WARM_UP_NEW, build_model, warm_up_prompt
    from llm_energy_sim.meter.monitor import EnergyMonitor

    measure_host_speed(out / "hostspeed.csv", EnergyMonitor([0]), tag=f"{case}|{process}")
    name, dtype = case.split(":")
    card = load_model_card(name)
    model = build_model(card, dtype, "cuda")
    a = CASES[case]

    def emit(run: str, lengths: list[int], times: list[float]) -> None:
        for step, s in enumerate(times):
            _append(
                out / "steps.csv",
                {
                    "case": case,
                    "process": process,
                    "run": run,
                    "batch": len(lengths),
                    "longest": max(lengths),
                    "step": step,
                    "seconds": s,
                },
            )

    ids, mask = greedy.left_pad([warm_up_prompt(card)] * len(a), "cuda")
    t = time.perf_counter()
    greedy.generate(model, ids, WARM_UP_NEW, attention_mask=mask)  # the engine's warm-up
    torch.cuda.synchronize()
    emit("warm-up", [len(ids[0])] * len(a), [time.perf_counter() - t])
    b = [n + SHIFT for n in a]
    runs = [
        ("padded-A", a),
        ("padded-A-again", a),
        ("padded-B", b),
        ("unpadded", [UNPADDED] * len(a)),
        ("unpadded-again", [UNPADDED] * len(a)),
        ("single-1", [SINGLE[0]]),
        ("single-2", [SINGLE[1]]),
        ("single-1-again", [SINGLE[0]]),
    ]
    for run, lengths in runs:
        emit(run, lengths, _generate(model, card, lengths, seed=sum(lengths)))
    print("done", case, process, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--child", nargs=2, metavar=("CASE", "PROCESS"))
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child[0], args.child[1], args.out)
        return
    for case in args.cases.split(","):
        cache = tempfile.mkdtemp(prefix="cudacache-")
        for process in ("cold", "warm", "nocache"):
            env = dict(os.environ, CUDA_CACHE_PATH=cache)
            if process == "nocache":
                env["CUDA_CACHE_DISABLE"] = "1"
            t = time.perf_counter()
            rc = subprocess.call(
                [sys.executable, __file__, "--out", str(args.out), "--child", case, process],
                env=env,
            )
            size = sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file())
            _append(
                args.out / "processes.csv",
                {
                    "case": case,
                    "process": process,
                    "rc": rc,
                    "wall_s": time.perf_counter() - t,
                    "cache_bytes_after": size,
                },
            )


if __name__ == "__main__":
    main()
