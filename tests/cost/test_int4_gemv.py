"""bitsandbytes NF4 linears in two regimes: a one-token-row GEMV fit beside the 'int4' roofline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_energy_sim.calibrate.fit import fit_kernels
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.cost.kernels import NF4_GEMV, EngineShape, layer_linears, linear_fit_dtype

RAW_ROOT = Path(__file__).resolve().parents[2] / "measurements" / "calibration"


@pytest.mark.parametrize("raw_dir", ["h100-v2", "h200"])
def test_gemv_fit_of_committed_table_is_within_its_stated_error(raw_dir):
    raw = pd.read_csv(RAW_ROOT / raw_dir / "microbench.csv")
    fits = fit_kernels(raw, 700.0, "test")
    nf4 = raw[(raw.kclass == "linear") & (raw.dtype == "int4")]
    nf4 = nf4[pd.to_numeric(nf4.seconds, errors="coerce") > 0]
    one = nf4[nf4.m == 1]
    gemv, multi = fits["linear"][NF4_GEMV], fits["linear"]["int4"]
    assert gemv.fit_error.n_points == len(one) >= 4
    assert multi.fit_error.n_points == len(nf4) - len(one)  # the roofline sees m >= 16 only
    F, B = one.flops.to_numpy(float), one.bytes.to_numpy(float)
    tc, tm = F / gemv.peak_flops, B / gemv.bandwidth
    t = np.maximum(tc, tm) + gemv.t0_s
    e = gemv.p_base_w * t + gemv.w_compute * tc + gemv.w_memory * tm
    ape_t = np.abs(t / one.seconds.to_numpy(float) - 1) * 100
    ape_e = np.abs(e / one.energy_j.to_numpy(float) - 1) * 100
    fe = gemv.fit_error  # leave-one-out: the fit of all points is at least as close
    assert np.median(ape_t) <= fe.time_median_ape
    assert np.percentile(ape_t, 90) <= fe.time_p90_ape
    assert np.median(ape_e) <= fe.energy_median_ape
    assert np.percentile(ape_e, 90) <= fe.energy_p90_ape
    # the GEMV regime is much faster at one row than the dequantise-then-GEMM roofline says
    t_multi = np.maximum(F / multi.peak_flops, B / multi.bandwidth) + multi.t0_s
    assert np.median(t_multi / t) > 1.5


def test_cost_model_uses_gemv_fit_only_for_one_row_nf4_linears():
    card = load_model_card("llama-3.1-8b")
    shape = EngineShape()
    assert linear_fit_dtype(1, "int4") == NF4_GEMV
    assert linear_fit_dtype(2, "int4") == "int4"
    assert linear_fit_dtype(1, "bfloat16") == "bfloat16"
    assert {g.dtype for g in layer_linears(card, 1, dtype_info("int4"), 1, shape)} == {NF4_GEMV}
    assert {g.dtype for g in layer_linears(card, 2, dtype_info("int4"), 1, shape)} == {"int4"}
    assert {g.dtype for g in layer_linears(card, 1, dtype_info("bfloat16"), 1, shape)} == {
        "bfloat16"
    }

    prof, _ = load_profile("h100-sxm")
    assert NF4_GEMV in prof.kernels["linear"]
    assert prof.kernel("linear", NF4_GEMV) is prof.kernels["linear"][NF4_GEMV]
    # a profile without the entry (fitted before the split) costs one-row NF4 with 'int4'
    old = prof.model_copy(
        update={
            "kernels": {
                **prof.kernels,
                "linear": {k: v for k, v in prof.kernels["linear"].items() if k != NF4_GEMV},
            }
        }
    )
    assert old.kernel("linear", NF4_GEMV) is old.kernels["linear"]["int4"]

    def gpu(p, n):
        cm = CostModel(card, "int4", p)
        return cm.step_cost(StepWork(n_decode=n, decode_ctx_sum=512 * n)).gpu_s

    assert gpu(prof, 1) < gpu(old, 1)  # batch 1 decode: GEMV fit
    assert gpu(prof, 2) == pytest.approx(gpu(old, 2), rel=1e-12)  # batch 2: 'int4' roofline
    with_int4_as_gemv = prof.model_copy(
        update={
            "kernels": {
                **prof.kernels,
                "linear": {**prof.kernels["linear"], NF4_GEMV: prof.kernels["linear"]["int4"]},
            }
        }
    )
    assert gpu(with_int4_as_gemv, 1) == pytest.approx(gpu(old, 1), rel=1e-12)
