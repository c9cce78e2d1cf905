"""float32 linears at 1-64 token rows (the microbenchmark table's method and columns,
calibrate/runner.run_grid, metered) on the grid's five projection shapes, into
--out/microbench.csv: where the one-row GEMV regime ends and the SIMT GEMM regime begins
(cost/kernels.py FP32_GEMV_MAX_ROWS; the calibration grid measured m = 1 and 16 only). Fitted
by tools/refit_fp32_linear.py. Not part of `sim`.

    python tools/device/fp32_rows_bench.py --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHAPES = ((4096, 14336), (14336, 4096), (4096, 4096), (896, 4864), (8192, 7168))
ROWS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from llm_energy_sim.calibrate.grid import Point
    from llm_energy_sim.calibrate.runner import run_grid
    from llm_energy_sim.meter.monitor import EnergyMonitor

    points = [Point("linear", "float32", m=m, n_in=i, n_out=o) for (i, o) in SHAPES for m in ROWS]
    n = run_grid(points, args.out / "microbench.csv", EnergyMonitor([0]), progress=False)
    print("measured", n, "points", flush=True)


if __name__ == "__main__":
    main()
