"""Probe (issue 16): what transformers CB's padded KV read costs when its padding rows are the
cache's trash row. With CUDA graphs the engine reads KV padded to a multiple of 16384 rows and
points every padding row of its read index at one zeroed trash row (transformers 5.17
continuous_batching/cache.py read_trash_index, input_outputs.py reset: read_index_storage
filled with it), so at light load most of what `paged|sdpa` gathers, expands and attends over
is one row of zeros. The graph-stage benchmarks read random rows of random data everywhere.
Live light-load graph decode steps drew 372 W where the model, from those benchmarks, gives
413 W at the measured step time. Not part of `sim`.

For one layer of Llama-3.1-8B (32/8 heads) and Qwen2.5-7B (28/4), at q = 64 and 128 queries
(decode steps) and 576 (a prefill step) over a read of 16384 + q rows, with a share `real` of
the rows real (random cache rows of random data) and the rest the zeroed trash row:

* `kv_copy`: the gather of K and V by the read index and repeat_kv's expanded copy;
* `masked_sdpa`: the masked SDPA over the expanded K and V (as gathered: the padding rows zero);
* `layer`: both, as the engine runs them.

Each inside CUDA-graph replays (calibrate/graphbench.py capture and _events_ms; input sets
cycled past L2 as the graph stage does), then a metered window of back-to-back replays (NVML
energy, meter/monitor.py). Writes DIR/pad.csv, one row per point, and DIR/environment.json.

    python tools/device/trash_pad_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LAYOUTS = ((32, 8), (28, 4))
QUERIES = (64, 128, 576)
REAL = (1.0, 0.5, 0.25, 0.0625)
PAD_KV = 16384
D = 128
CACHE_ROWS = 1 << 17  # the cache the real rows are drawn from
TARGET_REPLAY_S = 2e-3
ROTATE_BYTES = 256 << 20
WINDOW_S = 1.0
COLUMNS = ("part", "heads", "kv_heads", "q", "kv", "real", "seconds", "energy_j", "power_w",
           "sm_clock_mhz", "throttle_reasons", "sets", "repeats")  # fmt: skip


def maker(part: str, q: int, kv: int, h: int, kvh: int, real: float):
    """A zero-argument call of one layer's part with the engine's trash-row padding."""
    import torch

    dev, bf = "cuda", torch.bfloat16
    rep = h // kvh
    f = torch.nn.functional.scaled_dot_product_attention
    n_real = max(1, int(round(kv * real)))

    def make():
        cache_k = torch.randn(CACHE_ROWS + 1, kvh, D, device=dev, dtype=bf)
        cache_v = torch.randn(CACHE_ROWS + 1, kvh, D, device=dev, dtype=bf)
        cache_k[CACHE_ROWS].zero_()
        cache_v[CACHE_ROWS].zero_()
        index = torch.full((kv,), CACHE_ROWS, device=dev, dtype=torch.long)
        index[:n_real] = torch.randperm(CACHE_ROWS, device=dev)[:n_real]
        qq = torch.randn(1, h, q, D, device=dev, dtype=bf)
        mask = torch.zeros((1, 1, q, kv), device=dev, dtype=bf)
        mask[..., n_real:] = float("-inf")

        def expand(x):
            x = x.index_select(0, index).transpose(0, 1).unsqueeze(0)
            x = x[:, :, None].expand(1, kvh, rep, kv, D).reshape(1, h, kv, D)
            return x.contiguous()

        if part == "kv_copy":
            return lambda: (expand(cache_k), expand(cache_v))
        if part == "masked_sdpa":
            k, v = expand(cache_k), expand(cache_v)
            return lambda: f(qq, k, v, attn_mask=mask, is_causal=False)
        return lambda: f(qq, expand(cache_k), expand(cache_v), attn_mask=mask, is_causal=False)

    return make


def measure(part, q, kv, h, kvh, real, monitor) -> dict:
    import torch

    from llm_energy_sim.calibrate.graphbench import _events_ms, capture, eager_seconds

    make = maker(part, q, kv, h, kvh, real)
    first = make()
    eager = eager_seconds(first, warm=3)
    k = max(1, min(64, int(TARGET_REPLAY_S / eager)))
    per_set = 2 * 2 * kv * h * D * 2  # the expanded K and V one call writes
    n_sets = max(1, min(k, 4, math.ceil(ROTATE_BYTES / per_set)))
    fns = [first] + [make() for _ in range(n_sets - 1)]
    g = capture(fns, k)
    _events_ms(g, 2)
    med = statistics.median(_events_ms(g, 7))
    n = max(3, math.ceil(WINDOW_S / med))
    key = f"{part}|{h}/{kvh}|{q}|{kv}|{real}"
    with monitor.window(key) as w:
        for _ in range(n):
            g.replay()
        torch.cuda.synchronize()
    m = w.measurement
    state = monitor.state()
    del g, fns, first
    torch.cuda.empty_cache()
    return {
        "seconds": m.time_s / (n * k),
        "energy_j": "" if m.total_j is None else m.total_j / (n * k),
        "power_w": "" if m.mean_power_w is None else m.mean_power_w,
        "sm_clock_mhz": state.get("sm_clock_mhz", ""),
        "throttle_reasons": state.get("throttle_reasons", ""),
        "sets": n_sets,
        "repeats": k,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from llm_energy_sim.calibrate.graphbench import environment
    from llm_energy_sim.meter.monitor import EnergyMonitor

    (args.out / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
    monitor = EnergyMonitor([0])
    path = args.out / "pad.csv"
    with path.open("w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=COLUMNS)
        wr.writeheader()
        for h, kvh in LAYOUTS:
            for q in QUERIES:
                for real in REAL:
                    for part in ("kv_copy", "masked_sdpa", "layer"):
                        row = {"part": part, "heads": h, "kv_heads": kvh, "q": q,
                               "kv": PAD_KV + q, "real": real}  # fmt: skip
                        row.update(measure(part, q, PAD_KV + q, h, kvh, real, monitor))
                        wr.writerow(row)
                        fh.flush()
                        print(row, flush=True)


if __name__ == "__main__":
    main()
