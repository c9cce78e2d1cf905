"""Probe (issues 16 and 17): kernel time per projection shape of every shipped model, and
transformers CB's attention layer at the key counts of large decode batches. Not part of `sim`.

Why: live CUDA-graph runs of Qwen2.5-7B (measurements/live/h200-graphs-c, -d) run their steps
5-11% longer than the cost model, where Llama-3.1-8B, Mistral-7B and Qwen2.5-14B run 0-5% longer;
their prefill steps 6-10% longer (the others -3..+1%). The linear fits were measured at Llama
shapes only; the masked SDPA and the K/V copies at up to 51k keys, where a 256-sequence decode
step reads about 98k.

Inside CUDA-graph replays (calibrate/graphbench.py run_plan, the graph stage's timing):

1. paged|sdpa's whole layer (gather, repeat_kv, masked SDPA) and its masked SDPA alone at
   q = 64, 128, 256 over kv = 65536, 98304, 131072 keys (+ q) for the head layouts 28/4, 32/8,
   40/8 and 12/2;
2. every projection shape of every shipped model card in bfloat16, unfused (q, k/v, o, gate/up,
   down: transformers' modules) and fused (qkv, gate_up: vLLM's and TGI's), with the LM head,
   at m = 1 .. 8192 rows; Llama-3.1-70B also at its tensor-parallel-4 shards.

    python tools/device/shape_probe.py --out DIR [--budget-s 420]   # after
    . tools/device/carried_wheels.sh (pydantic; tools/device/probe.sh does it)

Writes DIR/graph.csv (graph stage rows) and DIR/graph_env.json; resumable (rows already in
graph.csv are skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LAYOUTS = ((28, 4), (32, 8), (40, 8), (12, 2))
ATTN_Q = (64, 128, 256)
ATTN_KV = (65536, 98304, 131072)
ROWS = (1, 8, 32, 64, 128, 192, 256, 384, 512, 1024, 2048, 4096, 8192)
# Qwen2.5-7B first: the model whose steps the probe is for
MODELS = (
    "qwen2.5-7b",
    "qwen2.5-1.5b",
    "qwen2.5-14b",
    "llama-3.1-8b",
    "mistral-7b",
    "qwen2.5-3b",
    "qwen2.5-0.5b",
    "llama-3.1-70b",
)


def model_shapes(name: str, tp: int = 1) -> list[tuple[int, int]]:
    """(n_in, n_out) of one layer's projections (unfused and fused) and the LM head."""
    from llm_energy_sim.config.modelcard import load_model_card

    c = load_model_card(name)
    h, i = c.hidden_size, c.intermediate_size // tp
    q, kv = c.q_dim // tp, c.kv_dim // tp
    shapes = [(h, q), (h, kv), (q, h), (h, i), (i, h), (h, q + 2 * kv), (h, 2 * i)]
    if tp == 1:
        shapes.append((h, c.vocab_size))
    return shapes


def points():
    from llm_energy_sim.calibrate.graphbench import GPoint, _attn

    pts = []
    for h, kvh in LAYOUTS:
        for kv in ATTN_KV:
            for q in ATTN_Q:
                pts.append(_attn("attn_packed", "paged_sdpa", "bfloat16", 1, q, kv + q, h, kvh))
                pts.append(
                    _attn("attn_masked_sdpa", "masked_sdpa", "bfloat16", 1, q, kv + q, h, kvh)
                )
    seen: set[tuple[int, int]] = set()
    shapes = [s for m in MODELS for s in model_shapes(m)] + model_shapes("llama-3.1-70b", 4)
    for n_in, n_out in shapes:
        if (n_in, n_out) in seen:
            continue
        seen.add((n_in, n_out))
        for m in ROWS:
            pts.append(GPoint("linear", "mm", "bfloat16", m=m, n_in=n_in, n_out=n_out))
    return pts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=420.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from llm_energy_sim.calibrate.graphbench import GRAPH_CSV, GRAPH_ENV, environment, run_plan
    from llm_energy_sim.meter.monitor import EnergyMonitor

    (args.out / GRAPH_ENV).write_text(json.dumps(environment(), indent=2) + "\n")
    pts = points()
    print("points", len(pts), flush=True)
    counts = run_plan(pts, args.out / GRAPH_CSV, EnergyMonitor([0]), budget_s=args.budget_s)
    print("graph", counts, flush=True)


if __name__ == "__main__":
    main()
