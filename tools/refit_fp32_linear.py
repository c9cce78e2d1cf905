"""Refit the shipped profiles' float32 linears as the kernels they run: the one-row GEMV
('float32_gemv'), the small-tile GEMM of 2-8 rows ('float32_small', where the GPU's rows were
measured) and the tiled SIMT GEMM of 12 and more rows ('float32'), with `sim calibrate`'s own
kernel fit (calibrate/fit.fit_kernels: the regimes of kernel_regimes, the GEMV's bandwidth held
to the HBM streaming rate the same table measured) on the GPU's eager microbenchmark table
(cost/kernels.py FP32_GEMV_MAX_ROWS says why). Every other field of the profiles is kept.

    python tools/refit_fp32_linear.py            # rewrite the shipped h200 and h100-sxm
    python tools/refit_fp32_linear.py --check    # exit 1 if either is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from llm_energy_sim.calibrate.fit import fit_kernels, streaming_bandwidth
from llm_energy_sim.config.dtypes import FP32_GEMV, FP32_SMALL
from llm_energy_sim.config.paths import PROFILES_DIR

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    "h200": ROOT / "measurements/calibration/h200/microbench.csv",
    "h100-sxm": ROOT / "measurements/calibration/h100-v2/microbench.csv",
}
#: float32 linear rows measured later on the same GPU kind (1-64 rows: the small-row regime)
EXTRA = {"h200": (ROOT / "measurements/calibration/h200-fp32rows/microbench.csv.gz",)}
SPLIT = "; float32 linears split by kernel"


def refit(name: str) -> dict:
    """The shipped profile NAME with its float32 linear fits refitted (JSON)."""
    data = json.loads((PROFILES_DIR / f"{name}.json").read_text())
    raw = pd.concat([pd.read_csv(t) for t in (TABLES[name], *EXTRA.get(name, ()))])
    rows = raw[((raw["kclass"] == "linear") & (raw["dtype"] == "float32"))]
    rows = pd.concat([rows, raw[raw["kclass"] == "elementwise"]])  # the streaming rate
    base = data["kernels"]["linear"]["float32"]["source"].split(SPLIT, 1)[0]
    fits = fit_kernels(rows, float(data["gpu"]["power_limit_w"]), base)["linear"]
    cap = streaming_bandwidth(rows)
    extra = "".join(f"; raw also: {t.parent.name}/{t.name}" for t in EXTRA.get(name, ()))
    what = {
        FP32_GEMV: "the one-row GEMV rows, bandwidth held to the table's streaming rate "
        f"{cap / 1e12:.2f} TB/s where above",
        FP32_SMALL: "the rows of 2-8 (small-tile SIMT GEMM)",
        "float32": "the rows of 12 and more (tiled SIMT GEMM)",
    }
    for key in ("float32", FP32_GEMV, FP32_SMALL):
        if key not in fits:  # no small-row rows measured on this GPU: Profile.kernel falls back
            continue
        fit = fits[key]
        why = f"{SPLIT} (tools/refit_fp32_linear.py): {what[key]}{extra}"
        data["kernels"]["linear"][key] = json.loads(
            fit.model_copy(update={"source": base + why}).model_dump_json()
        )
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    stale_any = False
    for name in TABLES:
        path = PROFILES_DIR / f"{name}.json"
        text = json.dumps(refit(name), indent=2) + "\n"
        stale = path.read_text() != text
        if stale and not args.check:
            path.write_text(text)
        if stale:
            print(("stale: " if args.check else "rewrote: ") + name)
        stale_any |= stale
    return 1 if (args.check and stale_any) else 0


if __name__ == "__main__":
    sys.exit(main())
