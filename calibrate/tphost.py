"""Host overhead of HF generate under transformers' tensor parallelism (DTensor, tp_plan="auto").

Under tp_plan every sharded linear dispatches through DTensor and adds its collectives from
Python, so the per-step host time of HF eager grows per layer far beyond single-GPU eager;
the simulator's `hf_eager` engine at tp > 1 uses the profile entry `hf_eager_tp` fitted
from this table. Launch one process per GPU:

    torchrun --nproc_per_node N -m calibrate.tphost --out DIR

Shapes are cut-down Qwen2.5-7B copies at two layer counts (not the 70B validation shape), so
per-step and per-layer terms separate. Every rank runs the same generate() calls a fixed
number of times (ranks must stay in lockstep, so no time-based loop); rank 0 meters every
GPU of the node through NVML and appends hostbench-format rows to DIR/tphost.csv. On CPU it
runs with gloo (timing only), which is how the tests cover it.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from calibrate.hostbench import FIELDS
from calibrate.rawtable import append_row, done_keys

METHOD = "tp-v1"
TP_FIT_SHAPES = (("qwen2.5-7b", 4), ("qwen2.5-7b", 16))
PROMPT, NEW_TOKENS = 256, 32
REPEATS = (8, 3)  # generate(1) and generate(NEW_TOKENS + 1) calls, after one warm-up each


def _key(name: str, layers: int, dtype: str, tp: int, prompt: int, new: int) -> str:
    return f"tp{tp}|{name}|{layers}L|{dtype}|1|{prompt}|{new}|{METHOD}"


def _timed(fn, sync, n: int, meter) -> tuple[float, float | None]:
    """Mean wall time and energy (all metered GPUs) per call over n calls after a warm-up."""
    fn()
    sync()
    e0 = meter.energy_j() if meter else None
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    s = (time.perf_counter() - t0) / n
    return s, (float((meter.energy_j() - e0).sum()) / n if meter else None)


def measure(
    out_csv: Path,
    shapes=TP_FIT_SHAPES,
    dtype: str = "bfloat16",
    prompt: int = PROMPT,
    new_tokens: int = NEW_TOKENS,
    repeats: tuple[int, int] = REPEATS,
    model_root: Path = Path("/tmp/tphost-models"),
    card_loader=None,
) -> int:
    """Run under torchrun; returns the rows rank 0 wrote."""
    import torch
    import torch.distributed as dist

    from calibrate.live.tp_engine import (
        greedy_generate,
        init_distributed,
        load_tp_model,
        local_device,
        rank,
        world_size,
    )
    from sim.modelcard import load_model_card

    init_distributed()
    device, tp = local_device(), world_size()
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    meter = None
    if rank() == 0 and cuda:
        from calibrate.meter import GpuMeter

        meter = GpuMeter(list(range(torch.cuda.device_count())))
    done = done_keys(out_csv) if rank() == 0 else set()
    n = 0
    for name, layers in shapes:
        card = (card_loader or load_model_card)(name)
        card = card.model_copy(update={"num_hidden_layers": layers})
        key = _key(card.name, layers, dtype, tp, prompt, new_tokens)
        skip = [key in done]
        dist.broadcast_object_list(skip, src=0)
        if skip[0]:
            continue
        model = load_tp_model(card, dtype, 0, model_root / f"{card.name}-{layers}L-{dtype}", device)
        ids = list(range(1000, 1000 + prompt))
        short = partial(greedy_generate, model, ids, 1, device)
        long = partial(greedy_generate, model, ids, new_tokens + 1, device)
        pre_s, pre_j = _timed(short, sync, repeats[0], meter)
        full_s, full_j = _timed(long, sync, repeats[1], meter)
        if rank() == 0:
            row = {
                "model": card.name,
                "layers": layers,
                "dtype": dtype,
                "batch": 1,
                "prompt": prompt,
                "new_tokens": new_tokens,
                "prefill_s": pre_s,
                "prefill_j": "" if pre_j is None else pre_j,
                "decode_s_per_token": (full_s - pre_s) / new_tokens,
                "decode_j_per_token": "" if pre_j is None else (full_j - pre_j) / new_tokens,
                "repeats_prefill": repeats[0],
                "repeats_generate": repeats[1],
                "method": METHOD,
                "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **(meter.state() if meter else {}),
            }
            append_row(
                out_csv,
                {"key": key, "tag": f"tp{tp}", **{k: row.get(k, "") for k in FIELDS}, "tp": tp},
            )
            n += 1
        model = short = long = None  # free the shard before the next build
        if cuda:
            torch.cuda.empty_cache()
        dist.barrier()
    dist.barrier()  # every rank leaves together, also when every shape was already measured
    dist.destroy_process_group()
    return n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    measure(args.out / "tphost.csv")


if __name__ == "__main__":
    main()
