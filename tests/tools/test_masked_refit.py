"""The shipped h200 profile's masked-attention classes are the fit of their committed raw table
(tools/refit_masked_attention.py), obey the measured physics, and price padded static batches."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llm_energy_sim.calibrate.graphfit import measured_caps, ok_rows
from llm_energy_sim.calibrate.grid import MASKED_CLASSES
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from tools.refit_masked_attention import RAW, refit

GRAPH_RAW = RAW.parent / "h200-graphs" / "graph.csv"


def test_shipped_masked_classes_are_the_refit_of_the_raw_table():
    shipped, _ = load_profile("h200")
    fitted = refit()["kernels"]
    for kc in MASKED_CLASSES:
        assert set(shipped.kernels[kc]) == {"bfloat16", "float16", "float32"}
        for dt, fit in shipped.kernels[kc].items():
            for field in ("peak_flops", "bandwidth", "t0_s", "p_base_w", "w_compute", "w_memory"):
                assert math.isclose(getattr(fit, field), fitted[kc][dt][field], rel_tol=1e-6)
            assert "h200-masked/microbench.csv.gz" in fit.source


def test_masked_fits_stay_under_the_measured_copy_bandwidth_and_gemm_peak():
    caps = measured_caps(ok_rows(pd.read_csv(GRAPH_RAW)))
    shipped, _ = load_profile("h200")
    for kc in MASKED_CLASSES:
        for dt, fit in shipped.kernels[kc].items():
            assert fit.bandwidth <= caps.bw_cap()
            assert fit.peak_flops <= caps.flops_cap(dt)
            assert fit.fit_error.time_median_ape < 10.0  # held-out points, percent


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_padded_decode_step_is_priced_with_the_masked_class(dtype):
    profile, _ = load_profile("h200")
    card = load_model_card("qwen2.5-14b")
    work = StepWork(n_decode=16, decode_ctx_sum=16 * 1000)
    masked = CostModel(card, dtype, profile, "hf_eager", masked_attention=True)
    assert masked._fit("attn_decode", dtype) is profile.kernel("attn_decode_masked", dtype)
    plain = CostModel(card, dtype, profile, "hf_eager")
    assert masked.step_cost(work).gpu_s > plain.step_cost(work).gpu_s
