"""The sampler's cost on the GPU (issue 16): vLLM 0.11's sampling chain timed inside CUDA-graph
replays, as the graph stage times every class (calibrate/graphbench.py sampler_points: the
copy cap, three sustained power windows, top-p over 1-1024 rows at three vocabularies, random
and greedy at one), into graph.csv; then the same chains run eagerly, back to back, into
eager.csv (rows, vocab, op, calls, eager_s per call: vLLM launches its sampler eagerly, and
the graph time is its GPU part). Not part of `sim`.

    python tools/device/sampler_bench.py --out DIR [--quick] [--resume measurements/calibration/h200-sampler]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

EAGER_CALLS = 20


def eager_rows(points, out: Path) -> None:
    """Eager wall time per call of each sampler point (CUDA-synchronised, after 3 warm calls)."""
    import time

    import torch

    from llm_energy_sim.calibrate.graphbench import make_point

    with (out / "eager.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("op", "rows", "vocab", "calls", "eager_s"))
        for p in points:
            make, _ = make_point(p)
            run = make()
            for _ in range(3):
                run()
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(EAGER_CALLS):
                run()
            torch.cuda.synchronize()
            w.writerow((p.op, p.m, p.n_in, EAGER_CALLS, (time.perf_counter() - t) / EAGER_CALLS))
            fh.flush()
            del run
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--resume",
        type=Path,
        help="a committed table directory: its graph.csv "
        "is copied in first (its points are skipped) and eager.csv kept",
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import json

    from llm_energy_sim.calibrate.graphbench import (
        GRAPH_CSV,
        GRAPH_ENV,
        environment,
        run_plan,
        sampler_points,
    )
    from llm_energy_sim.meter.monitor import EnergyMonitor

    eager_done = False
    if args.resume is not None:
        import shutil

        shutil.copy(args.resume / GRAPH_CSV, args.out / GRAPH_CSV)
        eager_done = (args.resume / "eager.csv").exists()
        env_name = f"{GRAPH_ENV.removesuffix('.json')}-resume.json"
    else:
        env_name = GRAPH_ENV
    (args.out / env_name).write_text(json.dumps(environment(), indent=2) + "\n")
    points = sampler_points(args.quick)
    counts = run_plan(points, args.out / GRAPH_CSV, EnergyMonitor([0]))
    print("graph", counts, flush=True)
    if not eager_done:
        eager_rows([p for p in points if p.kind == "sampler" and not p.metered], args.out)
        print("eager done", flush=True)


if __name__ == "__main__":
    main()
