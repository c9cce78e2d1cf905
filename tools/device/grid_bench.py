"""A named set of microbenchmark points (calibrate/grid.py) on one GPU, metered, into
--out/microbench.csv (the microbenchmark table's columns; rerun skips measured points). Not
part of `sim`. The sets:
  masked        attention under a left-padding mask as transformers runs a padded HF generate
                batch (masked_points), fitted by tools/refit_masked_attention.py
  packed_heads  transformers CB's packed attention at the Qwen2.5 cards' head layouts
                (packed_head_points), fitted by tools/refit_packed_heads.py

    python tools/device/grid_bench.py --grid masked|packed_heads --out DIR [--dtypes ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

GRIDS = ("masked", "packed_heads")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", choices=GRIDS, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtypes", default="bfloat16,float16,float32")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from llm_energy_sim.calibrate.grid import masked_points, packed_head_points
    from llm_energy_sim.calibrate.runner import run_grid
    from llm_energy_sim.meter.monitor import EnergyMonitor

    points = {"masked": masked_points, "packed_heads": packed_head_points}[args.grid]
    n = run_grid(
        points(tuple(args.dtypes.split(","))),
        args.out / "microbench.csv",
        EnergyMonitor([0]),
        progress=False,
    )
    print("measured", n, "points", flush=True)


if __name__ == "__main__":
    main()
