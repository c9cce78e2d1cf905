"""transformers CB's packed attention (calibrate/grid.py packed_head_points: attn_packed at the
Qwen2.5 cards' head layouts) on one GPU, metered, into --out/microbench.csv (the
microbenchmark table's columns; rerun skips measured points). Fitted into the shipped profile
by tools/refit_packed_heads.py. Not part of `sim`.

    python tools/device/packed_heads_bench.py --out DIR [--dtypes bfloat16,float16,float32]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtypes", default="bfloat16,float16,float32")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from llm_energy_sim.calibrate.grid import packed_head_points
    from llm_energy_sim.calibrate.runner import run_grid
    from llm_energy_sim.meter.monitor import EnergyMonitor

    n = run_grid(
        packed_head_points(tuple(args.dtypes.split(","))),
        args.out / "microbench.csv",
        EnergyMonitor([0]),
        progress=False,
    )
    print("measured", n, "points", flush=True)


if __name__ == "__main__":
    main()
