"""transformers CB's packed attention (attn_packed) is fitted pooled and per head layout
(calibrate/fit.kernel_regimes), and the cost model prices each model with its layout's fit,
the pooled one where its layout was not measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_energy_sim.calibrate.fit import PACKED_MIN_POINTS, fit_kernels
from llm_energy_sim.config.dtypes import dtype_info
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.cost.kernels import attn_packed_kernel, head_shape_key

RAW = Path(__file__).resolve().parents[2] / "measurements/calibration/h200/microbench.csv"


@pytest.fixture(scope="module")
def packed_rows() -> pd.DataFrame:
    raw = pd.read_csv(RAW)
    return raw[raw.kclass == "attn_packed"].reset_index(drop=True)


def test_each_layout_with_enough_rows_gets_its_own_fit_with_the_pooled_base(packed_rows):
    fits = fit_kernels(packed_rows, 700.0, "test")["attn_packed"]
    for dt, part in packed_rows.groupby("dtype"):
        pooled = fits[dt]
        assert pooled.fit_error.n_points == len(part)  # every layout's rows
        for (h, kvh), rows in part.groupby(["heads", "kv_heads"]):
            key = head_shape_key(dt, int(h), int(kvh))
            if len(rows) < PACKED_MIN_POINTS:
                assert key not in fits
                continue
            own = fits[key]
            assert own.fit_error.n_points == len(rows)
            assert own.p_base_w == pooled.p_base_w  # never a base below the pooled one's
            # its own rows are closer to their layout's fit than to the pooled one
            assert own.fit_error.time_median_ape < pooled.fit_error.time_median_ape


def test_one_layout_alone_is_not_split(packed_rows):
    one = packed_rows[packed_rows.heads == 32]
    fits = fit_kernels(one, 700.0, "test")["attn_packed"]
    assert set(fits) == set(one.dtype)


def test_cost_model_prices_the_layout_fit_and_falls_back_to_pooled(packed_rows):
    prof, _ = load_profile("h200")
    fits = fit_kernels(packed_rows, 700.0, "test")["attn_packed"]
    prof = prof.model_copy(update={"kernels": {**prof.kernels, "attn_packed": fits}})
    work = StepWork(n_decode=16, decode_ctx_sum=16 * 1024)
    for card_name, measured in (("llama-3.1-8b", True), ("qwen2.5-7b", False)):
        card = load_model_card(card_name)
        cm = CostModel(card, "bfloat16", prof, "transformers_cb")
        nh, nkv = card.num_attention_heads, card.num_key_value_heads
        g = attn_packed_kernel(16, 16 * 1024, nh, nkv, card.d_head, dtype_info("bfloat16"))
        assert g.dtype == head_shape_key("bfloat16", nh, nkv)
        want = fits[g.dtype] if measured else fits["bfloat16"]
        assert cm._fit("attn_packed", g.dtype) is want
        assert cm.step_cost(work).gpu_s > 0
    # the layout's fit is what moves the price: same bytes, another rate
    assert not np.isclose(
        fits[head_shape_key("bfloat16", 32, 8)].bandwidth, fits["bfloat16"].bandwidth
    )
