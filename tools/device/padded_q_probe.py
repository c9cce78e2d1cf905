"""Probe (issue 16): how transformers CB's CUDA-graph prefill steps grow with the padded query
count. Live light-load runs (measurements/live/h200-graphs*, val-fixed300ms) replay prefill
steps at 39-47 ms up to 512 padded query tokens and at 61-73 ms from 576 on, a jump of about
14 ms (0.45-0.5 ms a layer in Llama-3.1-8B and Qwen2.5-7B) that the cost model, interpolating
graph fits measured at q = 64, 128, 512 and 2048, does not have. Not part of `sim`.

Inside CUDA-graph replays (calibrate/graphbench.py run_plan, the graph stage's timing):

1. paged|sdpa's masked SDPA alone at q = 64..2048 in steps of 64 over kv = 16384 + q (the
   engine pads the KV read to a multiple of 16384) for the head layouts 32/8, 28/4, 40/8 and
   12/2; at kv = 32768 + q and 49152 + q for 32/8 in steps of 128;
2. the whole paged|sdpa layer (gather, repeat_kv, masked SDPA) for 32/8 at q = 64..1536;
3. the unfused projections transformers CB runs (q/o 4096x4096, k/v 4096x1024, gate/up
   4096x14336, down 14336x4096) at m = 64..1536 in steps of 64;
4. the kernels torch launches for the masked SDPA at a few q (torch.profiler: name, grid,
   block), to name the mechanism.

    python tools/device/padded_q_probe.py --out DIR

Writes DIR/graph.csv (graph stage rows), DIR/kernels.csv and DIR/graph_env.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

Q_STEP = 64
LAYOUTS = ((32, 8), (28, 4), (40, 8), (12, 2))
CB_SHAPES = ((4096, 4096), (4096, 1024), (4096, 14336), (14336, 4096))
PROFILED_Q = (448, 512, 576, 640, 1024, 2048)


def points():
    from llm_energy_sim.calibrate.graphbench import GPoint, _attn

    pts = []
    for h, kvh in LAYOUTS:
        for q in range(Q_STEP, 2049, Q_STEP):
            pts.append(
                _attn("attn_masked_sdpa", "masked_sdpa", "bfloat16", 1, q, 16384 + q, h, kvh)
            )
    for j in (2, 3):
        for q in range(128, 2049, 128):
            pts.append(
                _attn("attn_masked_sdpa", "masked_sdpa", "bfloat16", 1, q, 16384 * j + q, 32, 8)
            )
    for q in range(Q_STEP, 1537, Q_STEP):
        pts.append(_attn("attn_packed", "paged_sdpa", "bfloat16", 1, q, 16384 + q, 32, 8))
    for n_in, n_out in CB_SHAPES:
        for m in range(Q_STEP, 1537, Q_STEP):
            pts.append(GPoint("linear", "mm", "bfloat16", m=m, n_in=n_in, n_out=n_out))
    return pts


def kernel_rows(out: Path) -> None:
    """The CUDA kernels of one masked SDPA call per (layout, q): name, grid, block, duration."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from llm_energy_sim.calibrate.graphbench import _attn, make_point

    with (out / "kernels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("heads", "kv_heads", "q", "kv", "kernel", "grid", "block", "us"))
        for h, kvh in LAYOUTS[:2]:
            for q in PROFILED_Q:
                p = _attn("attn_masked_sdpa", "masked_sdpa", "bfloat16", 1, q, 16384 + q, h, kvh)
                make, _ = make_point(p)
                run = make()
                for _ in range(3):
                    run()
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    run()
                    torch.cuda.synchronize()
                trace = out / f"trace-{h}-{kvh}-{q}.json"
                prof.export_chrome_trace(str(trace))
                events = json.loads(trace.read_text()).get("traceEvents", [])
                trace.unlink()
                for e in events:
                    if e.get("cat") != "kernel":
                        continue
                    a = e.get("args", {})
                    w.writerow(
                        (h, kvh, q, 16384 + q, e.get("name", "")[:200], a.get("grid"),
                         a.get("block"), e.get("dur"))
                    )  # fmt: skip
                fh.flush()
                del run
                torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from llm_energy_sim.calibrate.graphbench import GRAPH_CSV, GRAPH_ENV, environment, run_plan
    from llm_energy_sim.meter.monitor import EnergyMonitor

    env = environment()
    import torch

    env["sdp_backends"] = {
        "flash": torch.backends.cuda.flash_sdp_enabled(),
        "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
        "math": torch.backends.cuda.math_sdp_enabled(),
        "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
    }
    (args.out / GRAPH_ENV).write_text(json.dumps(env, indent=2) + "\n")
    kernel_rows(args.out)
    print("kernels done", flush=True)
    counts = run_plan(points(), args.out / GRAPH_CSV, EnergyMonitor([0]), budget_s=420)
    print("graph", counts, flush=True)


if __name__ == "__main__":
    main()
