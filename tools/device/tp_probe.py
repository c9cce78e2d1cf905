"""Diagnostic: the decode step of the live TP validation model, cached vs new attention shapes.

Under torchrun, every rank in lockstep (transformers tp_plan="auto", HF generate), on the
validation shape itself (Llama-3.1-70B width, 8 layers, bf16) -- a check, not a fit:

* A: prompt 300, 48 new tokens (every step a new shape);
* B: prompt 320, 48 new tokens (KV lengths 321-348 were A's: hits if the plan cache key is
  the shape alone, as on one GPU; then new);
* A again: every shape cached.

Rank 0 writes tp_overlap.csv (request, step, kv, seconds) to --out.

    torchrun --nproc_per_node 4 tools/device/tp_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="llama-3.1-70b-8layers")
    ap.add_argument("--model-root", type=Path, default=Path("/tmp/tp-probe-models"))
    a = ap.parse_args()
    import torch
    import torch.distributed as dist

    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf.build import FirstTokenStamp
    from llm_energy_sim.hf.distributed import (
        greedy_generate,
        init_distributed,
        load_tp_model,
        local_device,
        rank,
    )

    init_distributed()
    device = local_device()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    card = load_model_card(a.model)
    model = load_tp_model(card, "bfloat16", 0, a.model_root / card.name, device)

    def steps(prompt: int, new: int) -> np.ndarray:
        stamp = FirstTokenStamp()
        greedy_generate(model, list(range(1000, 1000 + prompt)), new + 1, device, stamp)
        sync()
        return np.diff(stamp.times)

    steps(100, 4)  # library set-up out of the way
    rows = []
    for name, prompt in (("A", 300), ("B", 320), ("A-again", 300)):
        for i, dt in enumerate(steps(prompt, 48)):
            rows.append((name, i, prompt + 2 + i, dt))
    if rank() == 0:
        a.out.mkdir(parents=True, exist_ok=True)
        with open(a.out / "tp_overlap.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request", "step", "kv", "seconds"])
            w.writerows(rows)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
