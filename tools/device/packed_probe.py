"""Probe: why transformers CB's decode steps with CUDA graphs run 1.14-1.21x the modelled time
at large KV (docs/accuracy.md) when the paged|sdpa layer measured alone does not. One layer
timed inside CUDA graph replays (calibrate/graphbench.py capture/_events_ms) in four set-ups:
  bench   the graph stage's: a cache of kv rows, a random-permutation read index, a contiguous mask;
  cache   the engine's cache size (NUM_PAGES rows) read by whole 256-token blocks in shuffled
          block order (input_outputs.py read_index), contiguous mask;
  mask    the bench's cache, the mask a slice [:q, :kv] of the engine's (1, 1, 8192,
          NUM_PAGES + 8192) buffer (input_outputs.py), as the engine passes it;
  engine  both, plus the index_copy_ of the step's new K/V rows into the cache (cache.py update).
Writes one CSV row per (set-up, shape) to argv[1] (the run of 2026-12-02T13:42Z wrote its
seconds 1000x too small; measurements/calibration/h200-graphs/probe/README.md says so). Run on the GPU: python3 tools/device/packed_probe.py OUT.csv
"""

from __future__ import annotations

import csv
import statistics
import sys

import torch

from llm_energy_sim.calibrate.graphbench import _events_ms, capture

NUM_PAGES = 3057 * 256  # the Llama-3.1-8B live runs' cache (summary.json server_limits)
MAX_Q = 8192
SHAPES = ((128, 65536 + 128, 32, 8), (64, 16384 + 64, 32, 8), (64, 49152 + 64, 32, 8),
          (64, 16384 + 64, 28, 4))  # fmt: skip
D = 128
BF = torch.bfloat16


def layer(setup: str, q: int, kv: int, h: int, kvh: int):
    dev = "cuda"
    rows = NUM_PAGES if setup in ("cache", "engine") else kv
    ck, cv = (torch.randn(rows, kvh, D, device=dev, dtype=BF) for _ in range(2))
    if setup in ("cache", "engine"):
        blocks = torch.randperm(rows // 256, device=dev)[: -(-kv // 256)]
        index = (blocks[:, None] * 256 + torch.arange(256, device=dev)).reshape(-1)[:kv]
    else:
        index = torch.randperm(kv, device=dev)
    if setup in ("mask", "engine"):
        buf = torch.zeros((1, 1, MAX_Q, NUM_PAGES + MAX_Q), device=dev, dtype=BF)
        mask = buf[..., :q, :kv]
    else:
        mask = torch.zeros((1, 1, q, kv), device=dev, dtype=BF)
    qt = torch.randn(1, h, q, D, device=dev, dtype=BF)
    new_k, new_v = (torch.randn(q, kvh, D, device=dev, dtype=BF) for _ in range(2))
    write = torch.arange(q, device=dev) + (rows - q)
    rep = h // kvh

    def expand(x):
        x = x.index_select(0, index).transpose(0, 1).unsqueeze(0)
        return x[:, :, None].expand(1, kvh, rep, kv, D).reshape(1, h, kv, D).contiguous()

    def run():
        if setup == "engine":
            ck.index_copy_(0, write, new_k)
            cv.index_copy_(0, write, new_v)
        torch.nn.functional.scaled_dot_product_attention(
            qt, expand(ck), expand(cv), attn_mask=mask, is_causal=False
        )

    return run


def main(out: str) -> None:
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["setup", "q", "kv", "heads", "kv_heads", "seconds", "spread"])
        for q, kv, h, kvh in SHAPES:
            for setup in ("bench", "cache", "mask", "engine"):
                fn = layer(setup, q, kv, h, kvh)
                g = capture([fn], 8)
                _events_ms(g, 2)
                t = _events_ms(g, 7)
                med = statistics.median(t) / 8  # _events_ms gives seconds
                w.writerow([setup, q, kv, h, kvh, med, (max(t) - min(t)) / statistics.median(t)])
                f.flush()
                print(setup, q, kv, h, kvh, f"{med * 1e3:.3f} ms", flush=True)
                del g, fn
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1])
