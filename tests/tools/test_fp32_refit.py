"""float32 linears in three regimes (cost/kernels.py FP32_*): the rule that picks the fit, the
shipped fits as tools/refit_fp32_linear.py makes them from the committed tables, and the
physics they keep (no bandwidth above the table's own HBM streaming rate, no compute rate
above the float32 peak measured, base power not below the GPU's active idle)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_energy_sim.calibrate.fit import predict_kernel, streaming_bandwidth
from llm_energy_sim.config.dtypes import FP32_GEMV, FP32_SMALL, NF4_GEMV
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.kernels import linear_fit_dtype

ROOT = Path(__file__).resolve().parents[2]
H200 = ROOT / "measurements/calibration/h200/microbench.csv"
ROWS = ROOT / "measurements/calibration/h200-fp32rows/microbench.csv.gz"


def _fp32_rows() -> pd.DataFrame:
    d = pd.concat([pd.read_csv(H200), pd.read_csv(ROWS)])
    d = d[(d["kclass"] == "linear") & (d["dtype"] == "float32")]
    return d[pd.to_numeric(d["seconds"], errors="coerce") > 0].astype({"seconds": float})


def test_the_rule_picks_gemv_small_and_gemm_by_rows():
    assert [linear_fit_dtype(m, "float32") for m in (1, 2, 8, 9, 16, 4096)] == [
        FP32_GEMV,
        FP32_SMALL,
        FP32_SMALL,
        "float32",
        "float32",
        "float32",
    ]
    assert linear_fit_dtype(1, "int4") == NF4_GEMV and linear_fit_dtype(1, "bfloat16") == "bfloat16"


def test_shipped_profiles_are_what_the_refit_gives():
    run = subprocess.run(
        [sys.executable, "tools/refit_fp32_linear.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_each_regime_prices_its_own_rows_and_the_split_beats_one_roofline():
    prof, _ = load_profile("h200")
    d = _fp32_rows()
    plimit = prof.gpu.power_limit_w
    one = prof.kernel("linear", "float32")  # the 12+ regime, as one roofline for all rows
    for m in sorted(d["m"].unique()):
        r = d[d["m"] == m]
        fit = prof.kernel("linear", linear_fit_dtype(int(m), "float32"))
        t, _ = predict_kernel(fit, r["flops"], r["bytes"], plimit)
        t1, _ = predict_kernel(one, r["flops"], r["bytes"], plimit)
        err = np.median(np.abs(t / r["seconds"] - 1))
        err_one = np.median(np.abs(t1 / r["seconds"] - 1))
        assert err < 0.25, (m, err)
        if m <= 8:  # the rows the split is for: 25-78% off with the one roofline
            assert err < err_one, (m, err, err_one)


def test_fits_keep_the_physics_of_the_tables():
    raw = pd.concat([pd.read_csv(H200), pd.read_csv(ROWS)])
    prof, _ = load_profile("h200")
    d = _fp32_rows()
    peak = float((d["flops"] / d["seconds"]).max())  # the fastest float32 linear measured
    cap = streaming_bandwidth(raw)
    for key in ("float32", FP32_GEMV, FP32_SMALL):
        fit = prof.kernel("linear", key)
        assert fit.bandwidth <= cap * (1 + 1e-9), key
        assert fit.peak_flops <= peak * 1.02, key
        assert fit.p_base_w >= prof.idle.active_idle_w, key
    assert prof.kernel("linear", FP32_GEMV).bandwidth == pytest.approx(cap, rel=0.02)


def test_a_profile_without_the_small_regime_falls_back_to_float32():
    h100, _ = load_profile("h100-sxm")
    assert FP32_SMALL not in h100.kernels["linear"]
    assert h100.kernel("linear", FP32_SMALL) is h100.kernel("linear", "float32")
    assert h100.kernel("linear", FP32_GEMV) is not h100.kernel("linear", "float32")
