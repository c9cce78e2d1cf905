"""Fit the shipped h200 profile's masked-attention classes (attn_decode_masked,
attn_prefill_masked: HF generate's attention on left-padded static batches, transformers'
repeat_kv + SDPA under a boolean mask) from measurements/calibration/h200-masked/microbench.csv.gz
(tools/device/masked_bench.py, calibrate/grid.py masked_points) with the kernel fit every class
uses (calibrate/fit.py fit_kernels). Every other field of the profile is kept.

    python tools/refit_masked_attention.py            # rewrite the shipped profile
    python tools/refit_masked_attention.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

from llm_energy_sim.calibrate.fit import fit_kernels
from llm_energy_sim.calibrate.grid import MASKED_CLASSES, Point
from llm_energy_sim.config.profile import load_profile

if __package__ in (None, ""):  # run as a script: the repository root on the path, for tools.*
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.profile_refit import run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "measurements/calibration/h200-masked"
WHERE = (
    "NVIDIA H200 (driver 580.159.04), measured 2026-12-02T20:13Z (bf16, fp16) and 20:57Z "
    "(float32) by tools/device/masked_bench.py"
)


def with_grid_counts(raw: pd.DataFrame) -> pd.DataFrame:
    """The table with each row's FLOPs and bytes recomputed from its grid point
    (calibrate/grid.py Point.kernel, the formulas the cost model prices with): the float32
    rows were measured while the grid still counted their K/V at 2 x heads + KV heads, which
    the cost model does not (kernels.masked_kv_heads); timings and energies are as measured."""
    fields = [f.name for f in dataclasses.fields(Point)]
    out = raw.copy()
    for i, row in out.iterrows():
        g = Point(
            **{f: row[f] if f in ("kclass", "dtype") else int(row[f]) for f in fields}
        ).kernel()
        out.loc[i, "flops"], out.loc[i, "bytes"] = g.flops, g.bytes
    return out


def refit(name: str = "h200") -> dict:
    prof, path = load_profile(name)
    raw = with_grid_counts(pd.read_csv(RAW / "microbench.csv.gz"))
    fits = fit_kernels(
        raw,
        prof.gpu.power_limit_w,
        f"masked-attention microbenchmarks on {WHERE}; raw: {RAW.name}/microbench.csv.gz",
    )
    data = json.loads(Path(path).read_text())
    for kc in MASKED_CLASSES:
        data["kernels"][kc] = {dt: json.loads(f.model_dump_json()) for dt, f in fits[kc].items()}
    return data


def main() -> int:
    return run(refit, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
