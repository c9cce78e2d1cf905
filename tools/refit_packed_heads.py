"""Fit the shipped profiles' packed-attention class (attn_packed: transformers CB's paged|sdpa
layer, eager) pooled and per head layout, with the kernel fit every class uses
(calibrate/fit.py fit_kernels and its kernel_regimes), from their attn_packed rows: h200 from
measurements/calibration/h200/microbench.csv (32/8 x 128 and 14/2 x 64 heads, sim calibrate)
and h200-packedheads/microbench.csv.gz (12/2, 28/4 and 40/8 x 128:
tools/device/grid_bench.py --grid packed_heads, calibrate/grid.py packed_head_points); h100-sxm from
h100-v2/microbench.csv (32/8 and 14/2). Every other field of the profiles is kept.

    python tools/refit_packed_heads.py            # rewrite the shipped profile
    python tools/refit_packed_heads.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from llm_energy_sim.calibrate.fit import fit_kernels
from llm_energy_sim.config.profile import load_profile

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.profile_refit import run_each  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAL = ROOT / "measurements/calibration"
TABLES = {
    "h200": (CAL / "h200/microbench.csv", CAL / "h200-packedheads/microbench.csv.gz"),
    "h100-sxm": (CAL / "h100-v2/microbench.csv",),
}
CLASS = "attn_packed"


def packed_rows(name: str = "h200") -> pd.DataFrame:
    """The attn_packed rows of every table of profile NAME (TABLES) that exists."""
    parts = [pd.read_csv(t) for t in TABLES[name] if t.exists()]
    rows = pd.concat(parts, ignore_index=True)
    return rows[rows["kclass"] == CLASS].reset_index(drop=True)


def refit(name: str = "h200") -> dict:
    prof, path = load_profile(name)
    where = ", ".join(f"{t.parent.name}/{t.name}" for t in TABLES[name] if t.exists())
    fits = fit_kernels(
        packed_rows(name),
        prof.gpu.power_limit_w,
        f"packed-attention microbenchmarks on {prof.gpu.name}; raw: {where}",
    )
    data = json.loads(Path(path).read_text())
    data["kernels"][CLASS] = {dt: json.loads(f.model_dump_json()) for dt, f in fits[CLASS].items()}
    return data


def main() -> int:
    return run_each(refit, __doc__.splitlines()[0], TABLES)


if __name__ == "__main__":
    sys.exit(main())
