"""StepPricer (any forward step without building its objects) prices exactly as
CostModel.step_cost, the reference."""

from __future__ import annotations

import random

from test_decodecost import _models

from llm_energy_sim.cost.costmodel import StepWork


def test_step_pricer_is_step_cost_bit_for_bit():
    rng = random.Random(19)
    models = [m for m in _models() if m.step_pricer is not None]
    assert len(models) > 20
    for m in models:
        for _ in range(40):
            prefill = tuple(
                (rng.randint(1, 4000), rng.choice([0, 0, rng.randint(1, 8000)]))
                for _ in range(rng.choice([0, 1, 1, 2, 5]))
            )
            n = rng.choice([0, 1, 3, rng.randint(0, 128)])
            ctx = rng.randint(n, n * 9000) if n else 0
            graph = rng.choice([0, 0, 256])
            miss, cold = rng.random() < 0.2, rng.random() < 0.2
            work = StepWork(prefill, n, ctx, graph)
            ref = m.step_cost(work, shape_miss=miss, cold=cold)
            got = m.step_pricer.price(list(prefill), n, ctx, graph, miss, cold)
            assert got == (ref.wall_s, ref.energy_j), (m.engine, m.dtype, m.tp, work)
