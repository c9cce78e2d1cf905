"""Host overhead of transformers continuous batching under tensor parallelism (tp_plan="auto").

Under TP every CB step pays DTensor dispatch per sharded linear and, per step, the gloo
broadcast/all-reduce of the scheduler state from rank 0 (transformers' DistributedHelper), on
top of the one-GPU CB host time (calibrate/cbbench.py); the simulator's `transformers_cb`
engine at tp > 1 uses the profile entries `transformers_cb_tp{N}` / `transformers_cb_tp`
fitted from this table. Launch one process per GPU:

    torchrun --nproc_per_node N -m llm_energy_sim.calibrate.tpcbhost --out DIR [--misses]

(--shapes, --dtype, --batches, --prompt, --new-tokens, --model-root: a cut-down run, as
calibrate/tphost.py's.)

Shapes and dtype are calibrate/tphost.py's (Qwen2.5-7B cut to 4 and 16 layers, bf16). Every
rank loads the same shard and starts the same manager (cbbench's configuration); rank 0 is
the TP driver and runs cbbench's method through it (`batch` requests added at once, a short
run with 1 new token and a long one with new_tokens + 1, a fixed number of times each after a
warm-up; decode per step = (long - short) / new_tokens, time and energy, every GPU of the node
metered through NVML), while the other ranks' managers step in lockstep until rank 0 stops
them. Rows with cbbench's columns plus `tp` go to DIR/tpcbhost.csv as measured; a rerun skips
the keys there. --misses: fresh vs cached CB steps (calibrate/shapemiss.py's method and
columns, engine transformers_cb_tp, batch 4) to DIR/shapemiss.csv. On CPU it runs with gloo
(timing only), which is how the tests cover it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from llm_energy_sim.calibrate.hostbench import FIELDS
from llm_energy_sim.calibrate.rawtable import append_row, done_keys
from llm_energy_sim.calibrate.tphost import TP_FIT_SHAPES, run_cli
from llm_energy_sim.meter.monitor import EnergyMonitor

METHOD = "tpcb-v1"
ENGINE = "transformers_cb_tp"
PROMPT, NEW_TOKENS = 256, 32
BATCHES = (1, 8, 32)
# least seconds of the short and long runs (hostbench.timed): 0 = its minimum, two timed runs
# after a warm-up each, so the call count is fixed (printed at the start)
MIN_S = (0.0, 0.0)
# prompt lengths of the fresh miss requests: one new length per request, never reused in this
# process (the cuDNN plan cache key is the shape alone, so a later model must not meet the
# lengths an earlier one ran); 53 apart, and the set sums (CB packs a step's sequences into one
# attention) stay clear of the bench's (batch x prompt + steps) at the default sizes
_FRESH = itertools.count(0)


def row_key(name: str, layers: int, dtype: str, tp: int, batch: int, prompt: int, new: int) -> str:
    return f"tp{tp}|cb|{name}|{layers}L|{dtype}|{batch}|{prompt}|{new}|{METHOD}"


def miss_key(name: str, layers: int, dtype: str, tp: int) -> str:
    from llm_energy_sim.calibrate.shapemiss import CB_BATCH

    return f"tp{tp}|{ENGINE}|{name}|{layers}L|{dtype}|{CB_BATCH}|{METHOD}"


def measure(
    out_csv: Path,
    shapes=TP_FIT_SHAPES,
    dtype: str = "bfloat16",
    batches: tuple[int, ...] = BATCHES,
    prompt: int = PROMPT,
    new_tokens: int = NEW_TOKENS,
    min_s: tuple[float, float] = MIN_S,
    model_root: Path = Path("/tmp/tphost-models"),
    card_loader=None,
    misses_csv: Path | None = None,
    miss_prompt: int | None = None,
) -> int:
    """Run under torchrun; returns the rows rank 0 wrote to out_csv. misses_csv: also the
    attention shape misses of CB under TP (miss_prompt: the cached requests' prompt length,
    default shapemiss.PROMPT)."""
    from llm_energy_sim.calibrate.cbbench import start_cb_manager
    from llm_energy_sim.calibrate.tphost import each_tp_shape, start_tp_bench
    from llm_energy_sim.hf.distributed import follow_manager, rank

    device, tp, _sync, monitor = start_tp_bench()
    done = done_keys(out_csv) if rank() == 0 else set()
    miss_done = done_keys(misses_csv) if rank() == 0 and misses_csv is not None else set()
    if rank() == 0:
        per_model = len(batches) * 2 * 3 + (6 if misses_csv is not None else 0)
        print(
            f"tpcbhost: tp {tp}, {len(shapes)} shapes x ({len(batches)} batch sizes x (short, long)"
            f" x 3 calls{' + 6 miss runs' if misses_csv is not None else ''})"
            f" = {len(shapes) * per_model} planned CB runs (at most; done keys skipped)",
            flush=True,
        )
    run = _Run(dtype, prompt, new_tokens, min_s, monitor, device, out_csv, misses_csv, miss_prompt)

    def todo_of(card):
        """(batch sizes left, misses left) for this shape, or None when nothing is."""
        layers = card.num_hidden_layers
        todo_b = tuple(
            b
            for b in batches
            if row_key(card.name, layers, dtype, tp, b, prompt, new_tokens) not in done
        )
        todo_miss = (
            misses_csv is not None and miss_key(card.name, layers, dtype, tp) not in miss_done
        )
        return (todo_b, todo_miss) if todo_b or todo_miss else None

    def shape(card, todo, model, t_build: float) -> int:
        if rank() == 0:
            return _drive(model, card, tp, *todo, t_build, run)
        follow_manager(start_cb_manager(model, device))
        return 0

    return each_tp_shape(shapes, dtype, model_root, device, card_loader, todo_of, shape)


@dataclass(frozen=True)
class _Run:
    """What every shape of one measure() call shares."""

    dtype: str
    prompt: int
    new_tokens: int
    min_s: tuple[float, float]
    monitor: EnergyMonitor
    device: str
    out_csv: Path
    misses_csv: Path | None
    miss_prompt: int | None


def _drive(model, card, tp: int, batches, misses: bool, t_build: float, run: _Run) -> int:
    """Rank 0: the bench through the TP driver's manager; rows appended as measured."""
    import torch

    from llm_energy_sim.calibrate.cbbench import CbBatches, bench_batch

    dtype, prompt, new_tokens, monitor = run.dtype, run.prompt, run.new_tokens, run.monitor
    sync = torch.cuda.synchronize if run.device.startswith("cuda") else (lambda: None)
    eng = CbBatches(model, run.device)
    n = 0
    try:
        if not eng.manager.is_tp_driver:
            raise RuntimeError("rank 0's continuous batching manager is not the TP driver")
        for batch in batches:
            bench = (card, dtype, batch, prompt, new_tokens)
            row = bench_batch(eng, *bench, run.min_s, sync, monitor, t_build, METHOD)
            row["error"] = ""
            key = row_key(card.name, card.num_hidden_layers, dtype, tp, batch, prompt, new_tokens)
            append_row(
                run.out_csv,
                {"key": key, "tag": f"tp{tp}", **{k: row.get(k, "") for k in FIELDS}, "tp": tp},
            )
            n += 1
        if misses:
            append_row(
                run.misses_csv,
                _fresh_vs_cached(eng, card, dtype, tp, monitor, sync, run.miss_prompt),
            )
    finally:
        manager = eng.manager
        eng.stop()  # the hard stop reaches the other ranks through the TP state all-reduce
        manager.distributed_helper.destroy_cpu_comm_group()
    return n


def _fresh_sets(prompt: int) -> list[list[int]]:
    """Three sets of CB_BATCH prompt lengths no earlier call of this process used."""
    from llm_energy_sim.calibrate.shapemiss import CB_BATCH

    return [[prompt + 7 + 53 * next(_FRESH) for _ in range(CB_BATCH)] for _ in range(3)]


def _fresh_vs_cached(eng, card, dtype, tp, monitor, sync, miss_prompt) -> dict:
    """shapemiss.measure_engine's CB runs through the TP driver: the same CB_BATCH requests
    three times (the third meets only cached shapes) against three sets of fresh lengths."""

    from llm_energy_sim.calibrate.shapemiss import (
        CB_BATCH,
        PROMPT,
        cb_runs,
        metered_block,
        miss_row,
    )
    from llm_energy_sim.calibrate.shapemiss import FIELDS as MISS_FIELDS
    from llm_energy_sim.calibrate.shapemiss import NEW_TOKENS as MISS_NEW

    p = PROMPT if miss_prompt is None else miss_prompt
    same = [[p + i for i in range(CB_BATCH)]] * 3
    fresh = _fresh_sets(p)

    def run(ps):
        return cb_runs(eng, card.vocab_size, ps)

    run(same[:2])
    (c_first, c_steps), m_c = metered_block(monitor, sync, lambda: run(same[2:]))
    (f_first, f_steps), m_f = metered_block(monitor, sync, lambda: run(fresh))
    bench = dict(card=card, dtype=dtype, batch=CB_BATCH, prompt=p, new_tokens=MISS_NEW)
    row = miss_row(
        ENGINE,
        **bench,
        cached=(c_steps, m_c),
        fresh=(f_steps, m_f),
        monitor=monitor,
        method=f"{METHOD}-miss",
        firsts=(c_first, f_first),
    )
    row["error"] = ""
    key = miss_key(card.name, card.num_hidden_layers, dtype, tp)
    return {"key": key, **{k: row.get(k, "") for k in MISS_FIELDS}}


def main(argv: list[str] | None = None) -> None:
    run_cli(__doc__, measure, "tpcbhost.csv", argv, batches=True)


if __name__ == "__main__":
    main()
