"""A batched prefill is one attention call per layer: its fixed cost t0 is paid once per
layer, not once per sequence (the defect that made batch-16 prefills 3-13x too slow)."""

from __future__ import annotations

import pytest

from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import CostModel, StepWork
from llm_energy_sim.cost.kernels import attn_prefill_kernel, batched, linear_kernel


@pytest.mark.parametrize("engine", ["hf_eager", "tgi"])
def test_attention_t0_once_per_layer_in_a_batched_prefill(engine):
    prof, _ = load_profile("h100-sxm")
    card = load_model_card("llama-3.1-8b")
    cm = CostModel(card, "bfloat16", prof, engine=engine)
    fit = cm._fit("attn_prefill", "bfloat16")  # tgi: the graph-regime varlen class
    nh, nkv, d = card.num_attention_heads, card.num_key_value_heads, card.d_head
    L = card.num_hidden_layers
    seqs = ((128, 0),) * 16
    one = attn_prefill_kernel(128, 0, nh, nkv, d, cm.dt)
    roof = max(16 * one.flops / fit.peak_flops, 16 * one.bytes / fit.bandwidth)
    # the step's attention share, at the clocks the kernels were timed at (a CUDA-graph
    # engine's step may then be stretched at the power limit: CostModel.power_limited)
    t_attn, _ = cm._attention(StepWork(prefill=seqs))
    assert t_attn == pytest.approx(L * (roof + fit.t0_s), rel=1e-12)
    # against the old per-sequence pricing: 15 t0 per layer fewer
    per_seq = L * 16 * (max(one.flops / fit.peak_flops, one.bytes / fit.bandwidth) + fit.t0_s)
    assert t_attn < per_seq


def test_batched_sums_work_and_pays_one_launch():
    prof, _ = load_profile("h100-sxm")
    card = load_model_card("llama-3.1-8b")
    cm = CostModel(card, "bfloat16", prof)
    g = batched(attn_prefill_kernel(n, p, 32, 8, 128, cm.dt) for n, p in ((64, 0), (32, 100)))
    a, b = (
        attn_prefill_kernel(64, 0, 32, 8, 128, cm.dt),
        attn_prefill_kernel(32, 100, 32, 8, 128, cm.dt),
    )
    assert (g.flops, g.bytes, g.count) == (a.flops + b.flops, a.bytes + b.bytes, 1)
    with pytest.raises(ValueError):
        batched([a, linear_kernel(4, 64, 64, cm.dt)])
    with pytest.raises(ValueError):
        batched([])
