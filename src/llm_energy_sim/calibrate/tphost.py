"""Host overhead of HF generate under transformers' tensor parallelism (DTensor, tp_plan="auto").

Under tp_plan every sharded linear dispatches through DTensor and adds its collectives from
Python, so the per-step host time of HF eager grows per layer far beyond single-GPU eager;
the simulator's `hf_eager` engine at tp > 1 uses the profile entry `hf_eager_tp` fitted
from this table. Launch one process per GPU:

    torchrun --nproc_per_node N -m llm_energy_sim.calibrate.tphost --out DIR [--misses]

(--shapes CARD:LAYERS,..., --dtype, --prompt, --new-tokens, --model-root replace the defaults
below for a cut-down run, e.g. a tiny card on CPU.)

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

from llm_energy_sim.calibrate.hostbench import FIELDS
from llm_energy_sim.calibrate.rawtable import append_row, done_keys
from llm_energy_sim.meter.monitor import EnergyMonitor

METHOD = "tp-v1"
TP_FIT_SHAPES = (("qwen2.5-7b", 4), ("qwen2.5-7b", 16))
PROMPT, NEW_TOKENS = 256, 32
REPEATS = (8, 3)  # generate(1) and generate(NEW_TOKENS + 1) calls, after one warm-up each


def _key(name: str, layers: int, dtype: str, tp: int, prompt: int, new: int) -> str:
    return f"tp{tp}|{name}|{layers}L|{dtype}|1|{prompt}|{new}|{METHOD}"


def timed(fn, sync, n: int, monitor: EnergyMonitor) -> tuple[float, float | None]:
    """Mean wall time and energy (all metered GPUs; None timing only) per call over n calls
    after a warm-up."""
    fn()
    sync()
    with monitor.window("timed") as w:
        for _ in range(n):
            fn()
        sync()
    m = w.measurement
    return m.time_s / n, (m.total_j / n if m.total_j is not None else None)


def start_tp_bench():
    """Join the torchrun job (one process per GPU, gloo on CPU); (device, TP degree, sync,
    monitor): rank 0 meters every GPU of the node, the others (and CPU runs) time only."""
    import torch

    from llm_energy_sim.hf.distributed import init_distributed, local_device, rank, world_size

    init_distributed()
    device = local_device()
    cuda = device.startswith("cuda")
    monitor = EnergyMonitor.timing_only()
    if rank() == 0 and cuda:
        monitor = EnergyMonitor(list(range(torch.cuda.device_count())))
    return device, world_size(), (torch.cuda.synchronize if cuda else (lambda: None)), monitor


def each_tp_shape(shapes, dtype: str, model_root: Path, device: str, card_loader, todo_of, run):
    """The per-shape loop both TP host benchmarks share, in lockstep on every rank: the card cut
    to the shape's layers; what is left to measure (todo_of(card) on rank 0, which knows the
    table, broadcast to all; falsy: skip the shape); the shard loaded (model_root/NAME-NL-DTYPE);
    run(card, todo, model, build_s) -> rows written; the shard freed before the next build.
    Every rank leaves together, also when every shape was already measured. Returns the sum."""
    import torch
    import torch.distributed as dist

    from llm_energy_sim.config.modelcard import load_model_card
    from llm_energy_sim.hf.distributed import load_tp_model, rank

    n = 0
    for name, layers in shapes:
        card = (card_loader or load_model_card)(name)
        card = card.model_copy(update={"num_hidden_layers": layers})
        todo = [todo_of(card) if rank() == 0 else None]
        dist.broadcast_object_list(todo, src=0)
        if not todo[0]:
            continue
        t_build = time.perf_counter()
        model = load_tp_model(card, dtype, 0, model_root / f"{card.name}-{layers}L-{dtype}", device)
        n += run(card, todo[0], model, time.perf_counter() - t_build)
        model = None  # free the shard before the next build
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        dist.barrier()
    dist.barrier()
    dist.destroy_process_group()
    return n


def measure(
    out_csv: Path,
    shapes=TP_FIT_SHAPES,
    dtype: str = "bfloat16",
    prompt: int = PROMPT,
    new_tokens: int = NEW_TOKENS,
    repeats: tuple[int, int] = REPEATS,
    model_root: Path = Path("/tmp/tphost-models"),
    card_loader=None,
    misses_csv: Path | None = None,
) -> int:
    """Run under torchrun; returns the rows rank 0 wrote. misses_csv: also measure attention
    shape misses under TP (calibrate/shapemiss.py's method and columns, engine hf_eager_tp)."""
    from llm_energy_sim.hf.distributed import greedy_generate, rank

    device, tp, sync, monitor = start_tp_bench()
    done = done_keys(out_csv) if rank() == 0 else set()

    def todo_of(card) -> bool:
        key = _key(card.name, card.num_hidden_layers, dtype, tp, prompt, new_tokens)
        return key not in done

    def run(card, _todo, model, _build_s) -> int:
        layers, n = card.num_hidden_layers, 0
        ids = list(range(1000, 1000 + prompt))
        short = partial(greedy_generate, model, ids, 1, device)
        long = partial(greedy_generate, model, ids, new_tokens + 1, device)
        pre_s, pre_j = timed(short, sync, repeats[0], monitor)
        full_s, full_j = timed(long, sync, repeats[1], monitor)
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
                **monitor.state(),
            }
            key = _key(card.name, layers, dtype, tp, prompt, new_tokens)
            append_row(
                out_csv,
                {"key": key, "tag": f"tp{tp}", **{k: row.get(k, "") for k in FIELDS}, "tp": tp},
            )
            n += 1
        if misses_csv is not None:
            row = _fresh_vs_cached(
                model, card, dtype, tp, prompt, new_tokens, device, sync, monitor
            )
            if rank() == 0:
                append_row(misses_csv, row)
        return n

    return each_tp_shape(shapes, dtype, model_root, device, card_loader, todo_of, run)


_FRESH = [0]  # models measured so far in this process


def _fresh_vs_cached(model, card, dtype, tp, prompt, new_tokens, device, sync, monitor) -> dict:
    """Decode steps at shapes already run (the prompt measured above) against prompt lengths
    no call used before; every rank runs the same calls. One row (rank 0's use)."""
    import numpy as np

    from llm_energy_sim.calibrate.shapemiss import FIELDS as MISS_FIELDS
    from llm_energy_sim.calibrate.shapemiss import metered_block, miss_row
    from llm_energy_sim.hf.build import FirstTokenStamp
    from llm_energy_sim.hf.distributed import greedy_generate

    def steps(lengths: list[int]) -> list[float]:
        out: list[float] = []
        for n in lengths:
            stamp = FirstTokenStamp()
            greedy_generate(model, list(range(1000, 1000 + n)), new_tokens + 1, device, stamp)
            sync()
            out.extend(np.diff(stamp.times))
        return out

    cached = metered_block(monitor, sync, lambda: steps([prompt]))
    # lengths no earlier call of this process used: shapes of the same width share plans
    # across layer counts, so each model gets its own lengths
    _FRESH[0] += 1
    fresh_lengths = [prompt + 7 + 53 * i + 211 * _FRESH[0] for i in range(3)]
    fresh = metered_block(monitor, sync, lambda: steps(fresh_lengths))
    bench = dict(card=card, dtype=dtype, batch=1, prompt=prompt, new_tokens=new_tokens)
    row = miss_row(
        "hf_eager_tp",
        **bench,
        cached=cached,
        fresh=fresh,
        monitor=monitor,
        method=f"{METHOD}-miss",
    )
    key = f"tp{tp}|hf_eager_tp|{card.name}|{card.num_hidden_layers}L|{dtype}|{METHOD}"
    return {"key": key, **{k: row.get(k, "") for k in MISS_FIELDS}, "error": ""}


def _shapes(text: str) -> tuple[tuple[str, int], ...]:
    """--shapes 'qwen2.5-7b:4,qwen2.5-7b:16' -> (('qwen2.5-7b', 4), ('qwen2.5-7b', 16))."""
    out = []
    for part in text.split(","):
        name, _, layers = part.strip().rpartition(":")
        if not name or not layers.isdigit() or int(layers) < 1:
            raise argparse.ArgumentTypeError(f"'{part}': expected CARD:LAYERS, e.g. qwen2.5-7b:4")
        out.append((name, int(layers)))
    return tuple(out)


def _ints(text: str) -> tuple[int, ...]:
    """--batches '1,8,32' -> (1, 8, 32), each >= 1."""
    try:
        out = tuple(int(x) for x in text.split(","))
    except ValueError:
        out = ()
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': expected whole numbers >= 1, e.g. 1,8,32")
    return out


def run_cli(
    doc: str, measure_fn, table: str, argv: list[str] | None, batches: bool = False
) -> None:
    """The command line of a torchrun host benchmark (this one, calibrate/tpcbhost.py):
    --out DIR gets `table`, and with --misses also shapemiss.csv. --shapes, --dtype, --prompt,
    --new-tokens, --model-root (and with `batches`, --batches) replace measure_fn's defaults
    (the GPU run's); they exist for cut-down runs, e.g. a tiny card on CPU (tools/device/
    tp4_session.sh DEVICE=cpu). A bad value: argparse's one-line usage error, exit code 2."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--misses", action="store_true", help="also attention shape misses -> OUT/shapemiss.csv"
    )
    ap.add_argument("--shapes", type=_shapes, help="CARD:LAYERS,... (default: the host-fit shapes)")
    ap.add_argument("--dtype", help="default bfloat16")
    ap.add_argument("--prompt", type=_ints, help="prompt tokens (one number)")
    ap.add_argument("--new-tokens", type=_ints, help="decode tokens (one number)")
    ap.add_argument("--model-root", type=Path, help="where the shards are saved")
    if batches:
        ap.add_argument("--batches", type=_ints, help="batch sizes, e.g. 1,8,32")
    args = ap.parse_args(argv)
    for name in ("prompt", "new_tokens"):
        if getattr(args, name) is not None and len(getattr(args, name)) != 1:
            ap.error(f"--{name.replace('_', '-')}: one number")
    given = {
        "shapes": args.shapes,
        "dtype": args.dtype,
        "prompt": args.prompt[0] if args.prompt else None,
        "new_tokens": args.new_tokens[0] if args.new_tokens else None,
        "model_root": args.model_root,
        "batches": getattr(args, "batches", None),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    measure_fn(
        args.out / table,
        misses_csv=args.out / "shapemiss.csv" if args.misses else None,
        **{k: v for k, v in given.items() if v is not None},
    )


def main(argv: list[str] | None = None) -> None:
    run_cli(__doc__, measure, "tphost.csv", argv)


if __name__ == "__main__":
    main()
