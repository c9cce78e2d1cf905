"""Diagnostic: what a GPU-bound transformers CB prefill step spends its time on (kernel by kernel).

The known gap (docs/calibration.md): one 8192-token CB prefill step (32 prompts of 256 tokens,
Qwen2.5-7B cut to 16 layers, bf16) is 20-46% slower than the sum of its kernels' fits. This
runs that step through transformers' continuous batching manager (calibrate/cbbench.py's
driver), warm (the same prompts again, so no attention shape is new), times it, then records
one more under torch.profiler: every GPU kernel's name, calls and total time, and the GPU busy
time against the step's wall time (idle gaps inside the step). Output in OUT:
kernels.csv (name, calls, total_us), summary.json. Not part of `sim`.

    python3 tools/device/prefill_profile.py OUT [model[:layers]] [batch] [prompt]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(out: str, spec: str = "qwen2.5-7b:16", batch: int = 32, prompt: int = 256) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from llm_energy_sim.calibrate.cbbench import CbBatches
    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf.build import build_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name, _, layers = spec.partition(":")
    card = load_model_card(name)
    if layers:
        card = card.model_copy(update={"num_hidden_layers": int(layers)})
    model = build_model(card, "bfloat16", device)
    eng = CbBatches(model, device)
    gen = torch.Generator(device="cpu").manual_seed(batch)
    prompts = torch.randint(1000, card.vocab_size, (batch, prompt), generator=gen).tolist()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    walls = []
    try:
        for i in range(8):  # 3 to warm (plans, allocator), 5 timed
            sync()
            t = time.perf_counter()
            eng.run(prompts, 1)
            sync()
            if i >= 3:
                walls.append(time.perf_counter() - t)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with profile(activities=acts) as prof:
            t = time.perf_counter()
            eng.run(prompts, 1)
            sync()
            prof_wall = time.perf_counter() - t
    finally:
        eng.stop()
    rows, busy_us, first, last = {}, 0.0, None, None
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        r = rows.setdefault(e.name, [0, 0.0])
        r[0] += 1
        r[1] += e.device_time
        busy_us += e.device_time
        start, end = e.time_range.start, e.time_range.end
        first = start if first is None else min(first, start)
        last = end if last is None else max(last, end)
    outd = Path(out)
    outd.mkdir(parents=True, exist_ok=True)
    with open(outd / "kernels.csv", "w") as f:
        f.write("name,calls,total_us\n")
        for k, (n, us) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
            f.write(f'"{k.replace(chr(34), chr(39))}",{n},{us:.1f}\n')
    summary = {
        "model": card.name,
        "layers": card.num_hidden_layers,
        "batch": batch,
        "prompt": prompt,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "wall_s_runs": walls,
        "wall_s_median": sorted(walls)[len(walls) // 2],
        "profiled_wall_s": prof_wall,
        "gpu_busy_s": busy_us / 1e6,
        "gpu_span_s": ((last - first) / 1e6) if first is not None else None,
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": "tools/device/prefill_profile.py: cbbench driver, warm, torch.profiler",
    }
    (outd / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    main(args[0], *(args[1:2]), *(int(a) for a in args[2:4]))
