"""The paged|sdpa K/V copies are fitted per head shape as well as pooled (calibrate/graphfit.py
HEAD_SHAPE_CLASSES; cost/kernels.head_shape_key): the shipped h200 fits come from the
committed graph rows, keep to the measured copy rate, and are what the cost model prices a
model's copies with, the pooled fit where its head shape was not measured."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llm_energy_sim.calibrate.graphfit import fit_graph_kernels, measured_caps, ok_rows
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.kernels import attn_packed_graph_kernels, head_shape_key

CAL = Path(__file__).resolve().parents[2] / "measurements/calibration"
GRAPHS = CAL / "h200-graphs/graph.csv"
EXTRA = CAL / "h200-overlap/graph-extra.csv.gz"


def test_each_measured_head_shape_gets_its_own_fit_within_the_copy_rate():
    raw, extra = pd.read_csv(GRAPHS), pd.read_csv(EXTRA)
    fits = fit_graph_kernels(raw, 700.0, "test", extra)["attn_kv_copy_graph"]
    both = ok_rows(pd.concat([raw, extra]))
    cap = measured_caps(both).bw_cap()
    for shape in ("32/8", "28/4", "12/2"):
        kf = fits[f"bfloat16@{shape}"]
        assert 0 < kf.bandwidth <= cap and kf.fit_error.time_median_ape < 3.0
        assert kf.p_base_w == fits["bfloat16"].p_base_w
    # the head layouts do run at different rates: Llama's 32/8 faster per byte than Qwen's
    assert fits["bfloat16@32/8"].bandwidth > 1.1 * fits["bfloat16@28/4"].bandwidth
    # and each fit reproduces its own points where the pooled one is 4-16% off
    d = ok_rows(pd.concat([raw, extra]))
    d = d[(d["kind"] == "attn_kv_copy") & (d["metered"].fillna(0) == 0)]
    for (h, kvh), part in d.groupby(["heads", "kv_heads"]):
        own, pooled = fits[f"bfloat16@{int(h)}/{int(kvh)}"], fits["bfloat16"]

        def err(kf, part=part):
            pred = part["bytes"] / kf.bandwidth + part["count"] * kf.t0_s
            return (pred / part["seconds"] - 1).abs().median()

        assert err(own) < 0.02 < err(pooled)
    # without the extra rows, the 28/4 and 12/2 shapes have too few points of their own
    alone = fit_graph_kernels(raw, 700.0, "test")["attn_kv_copy_graph"]
    assert "bfloat16@28/4" not in alone and "bfloat16@32/8" in alone


def test_the_cost_model_prices_copies_by_head_shape_and_falls_back_to_the_pooled_fit():
    prof, _ = load_profile("h200")
    bf16 = dtype_info("bfloat16")
    copies, _ = attn_packed_graph_kernels(128, 49280, 28, 4, 128, bf16)
    assert copies.dtype == head_shape_key("bfloat16", 28, 4) == "bfloat16@28/4"
    assert (
        prof.kernel("attn_kv_copy_graph", copies.dtype)
        is prof.kernels["attn_kv_copy_graph"]["bfloat16@28/4"]
    )
    # 40/8 (Qwen2.5-14B) was not measured: the pooled fit
    pooled = prof.kernel("attn_kv_copy_graph", head_shape_key("bfloat16", 40, 8))
    assert pooled is prof.kernels["attn_kv_copy_graph"]["bfloat16"]
    # a class fitted without head-shape keys gives its dtype's fit for one
    assert prof.kernel("linear_graph", "bfloat16@28/4") is prof.kernels["linear_graph"]["bfloat16"]
