"""DecodePricer (decode steps memoised per batch size) prices exactly as CostModel.step_cost."""

from __future__ import annotations

import random

import pytest

from llm_energy_sim.config.dtypes import DTYPE_INFO
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.modelcard import load_model_card
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.cost.costmodel import ENGINE_SHAPES, CostModel, StepWork


def _models():
    out = []
    for prof_name in ("h100-sxm", "h200"):
        profile, _ = load_profile(prof_name)
        for card_name, tps in (("llama-3.1-8b", (1, 2)), ("llama-3.1-70b", (4,))):
            card = load_model_card(card_name)
            for engine in ENGINE_SHAPES:
                for dtype in DTYPE_INFO:
                    for tp in tps:
                        try:
                            m = CostModel(card, dtype, profile, engine, tp, 1.3)
                            m.step_cost(StepWork(n_decode=1, decode_ctx_sum=1))
                        except (UserError, KeyError, ValueError):
                            continue  # no fit or host entry for this combination
                        out.append(m)
                        if engine == "hf_eager":  # and under a padding mask (static batches)
                            out.append(CostModel(card, dtype, profile, engine, tp, 1.3, True))
    return out


def test_pricer_is_step_cost_bit_for_bit():
    rng = random.Random(19)
    models = _models()
    assert len(models) > 20
    for m in models:
        for _ in range(40):
            n = rng.choice([1, 2, 3, rng.randint(1, 256)])
            ctx = rng.choice([n, n + 1, rng.randint(n, n * 9000)])
            ref = m.step_cost(StepWork(n_decode=n, decode_ctx_sum=ctx))
            got = m.decode_pricer.gpu_busy(n, ctx)
            assert got == (ref.gpu_s, ref.busy_energy_j), (m.engine, m.dtype, m.tp, n, ctx)
            assert m.decode_pricer.host_s(n) + m.serial_host_s(n, True, ctx) == ref.host_s


@pytest.mark.parametrize("k", [1, 2, 7, 300])
@pytest.mark.parametrize(
    "engine, dtype",
    [
        ("tgi", "bfloat16"),
        ("transformers_cb", "bfloat16"),
        ("transformers_cb_graphs", "bfloat16"),
        ("hf_eager", "int8"),
    ],
)
def test_segment_matches_direct_costing(k, engine, dtype):
    # a synchronous CB loop adds its between-forward host work to every step, LLM.int8's
    # per-call sync all of its host work
    profile, _ = load_profile("h200")
    m = CostModel(load_model_card("llama-3.1-8b"), dtype, profile, engine)
    assert (m.serial_host_s(5) > 0) == (engine != "tgi")
    n, ctx0 = 5, 6000
    seg = m.decode_segment(n, ctx0)
    steps = [m.step_cost(StepWork(n_decode=n, decode_ctx_sum=ctx0 + n * j)) for j in range(k)]
    assert seg.time(k) == pytest.approx(sum(c.wall_s for c in steps), rel=1e-12)
    assert seg.energy(k) == pytest.approx(sum(c.energy_j for c in steps), rel=1e-12)
