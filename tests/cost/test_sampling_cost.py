"""The sampler's cost: vLLM 0.11's chain (cost/kernels.sampler_kernel), its measured class
(measurements/calibration/h200-sampler, fitted by calibrate/graphfit.py) and its use by the
cost model through workload.sampling."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from llm_energy_sim.calibrate.graphbench import GRAPH_CSV, sampler_points
from llm_energy_sim.calibrate.graphfit import fit_graph_kernels, measured_caps, ok_rows
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import SAMPLER_CLASS, CostModel, StepWork
from llm_energy_sim.cost.kernels import SAMPLER_BYTES, SAMPLER_OPS, sampler_kernel

RAW = Path(__file__).resolve().parents[2] / "measurements/calibration/h200-sampler"
LLAMA = load_model_card("llama-3.1-8b")


def test_sampler_bytes_are_the_chain_of_ops_per_logit():
    # per element: the cast reads the logits' dtype and writes float32, then each op its bytes
    g = sampler_kernel("top_p", 256, 128256, act_bytes=2)
    assert g.kclass == "sampler" and g.dtype == "top_p" and g.flops == 0.0
    assert g.bytes == 256 * 128256 * (SAMPLER_BYTES["top_p"] + 4 + 2)
    assert g.count == SAMPLER_OPS["top_p"]
    # more work per element the more the method does; linear in rows and vocabulary
    per = {m: sampler_kernel(m, 1, 1000, 2).bytes for m in SAMPLER_BYTES}
    assert per["greedy"] < per["random"] < per["top_p"]
    assert sampler_kernel("random", 8, 1000, 2).bytes == 8 * per["random"]
    with pytest.raises(ValueError, match="one of"):
        sampler_kernel("beam", 1, 10, 2)


def test_the_measured_table_holds_every_planned_point_and_its_fit_keeps_to_the_copy_rate():
    raw = pd.read_csv(RAW / GRAPH_CSV)
    assert set(raw["key"]) == {p.key for p in sampler_points()}
    assert raw["error"].isna().all()
    fits = fit_graph_kernels(raw, 700.0, "test")[SAMPLER_CLASS]
    cap = measured_caps(ok_rows(raw)).bw_cap()
    assert set(fits) == set(SAMPLER_BYTES)
    for method, kf in fits.items():
        assert 0 < kf.bandwidth <= cap, method
        assert kf.t0_s > 0 and kf.p_base_w > 0, method
    # the sort makes top-p's effective rate a fraction of the streaming methods'
    assert fits["top_p"].bandwidth < 0.5 * fits["random"].bandwidth
    # and the fit reproduces the measured large-batch time it will mostly be used at
    big = raw[(raw["op"] == "top_p") & (raw["m"] == 512) & (raw["n_in"] == 128256)]
    big = big[big["metered"] == 0].iloc[0]
    kf = fits["top_p"]
    pred = big["bytes"] / kf.bandwidth + big["count"] * kf.t0_s
    assert pred == pytest.approx(big["seconds"], rel=0.1)


def test_the_eager_chain_is_as_slow_as_its_gpu_part_where_it_costs():
    # vLLM launches the sampler eagerly; from 64 rows on the GPU binds, not the launches
    graph = pd.read_csv(RAW / GRAPH_CSV)
    graph = graph[(graph["kind"] == "sampler") & (graph["metered"] == 0)]
    eager = pd.read_csv(RAW / "eager.csv")
    both = eager.merge(graph, left_on=["op", "rows", "vocab"], right_on=["op", "m", "n_in"])
    assert len(both) == len(eager)
    ratio = (both["eager_s"] / both["seconds"])[both["rows"] >= 64]
    assert ratio.between(0.95, 1.15).all() and ratio.median() < 1.05


def _decode_step(sampling: str, batch: int, profile: str = "h200") -> tuple[float, bool]:
    """(GPU time of a decode step, whether the power limit stretched it)."""
    prof, _ = load_profile(profile)
    cm = CostModel(LLAMA, "bfloat16", prof, engine="vllm", sampling=sampling)
    c = cm.step_cost(StepWork(n_decode=batch, decode_ctx_sum=batch * 600))
    return c.gpu_s, c.busy_energy_j > prof.gpu.power_limit_w * c.gpu_s * (1 - 1e-12)


def _decode_step_s(sampling: str, batch: int, profile: str = "h200") -> float:
    return _decode_step(sampling, batch, profile)[0]


def test_top_p_sampling_costs_a_sort_per_step_growing_with_the_batch():
    prof, _ = load_profile("h200")
    kf = prof.kernel(SAMPLER_CLASS, "top_p")
    stretched = []
    for batch in (8, 64, 256, 512):
        (greedy, limited), (top_p, top_p_limited) = (
            _decode_step("greedy", batch),
            _decode_step("top_p", batch),
        )
        g = sampler_kernel("top_p", batch, LLAMA.vocab_size, 2)
        sort_s = g.bytes / kf.bandwidth + g.count * kf.t0_s
        if not (limited or top_p_limited):
            # the step gains the measured chain less the greedy argmax it replaces
            assert sort_s * 0.9 < top_p - greedy < sort_s
        else:
            # a power-limited step gains less: the sort draws less than the limit, so the
            # step's other kernels run at higher clocks meanwhile (CostModel.power_limited)
            assert 0 < top_p - greedy < sort_s
        stretched.append(limited and top_p_limited)
    assert not stretched[0] and stretched[-1]  # both regimes were checked
    assert _decode_step_s("random", 256) < _decode_step_s("top_p", 256)


def test_a_profile_without_the_sampler_class_prices_the_chain_as_streaming_and_says_so():
    prof, _ = load_profile("h200")
    bare = prof.model_copy(
        update={"kernels": {k: v for k, v in prof.kernels.items() if k != SAMPLER_CLASS}}
    )
    cm = CostModel(LLAMA, "bfloat16", bare, engine="vllm", sampling="top_p")
    cm.step_cost(StepWork(n_decode=64, decode_ctx_sum=64 * 600))
    assert "sampler" in cm.eager_fallbacks
    greedy = CostModel(LLAMA, "bfloat16", bare, engine="vllm")
    greedy.step_cost(StepWork(n_decode=64, decode_ctx_sum=64 * 600))
    assert "sampler" not in greedy.eager_fallbacks


def test_the_scenario_field_offers_exactly_the_priced_methods():
    from typing import get_args

    from llm_energy_sim.config.scenario import Workload
    from llm_energy_sim.cost.kernels import SAMPLING_METHODS

    assert set(get_args(Workload.model_fields["sampling"].annotation)) == set(SAMPLING_METHODS)
