"""The closed-form decode fast path gives the same per-request results as step by step."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run, scenario

COLUMNS = [
    "start_s",
    "first_token_s",
    "finish_s",
    "energy_prefill_j",
    "energy_decode_j",
    "energy_j",
]


@pytest.mark.parametrize(
    "server,hw,arrival",
    [
        ({"kind": "tgi"}, {}, {"kind": "fixed", "interval_ms": 100}),
        ({"kind": "tgi"}, {}, {"kind": "poisson", "rate": 25}),
        ({"kind": "tgi", "chunked_prefill": False}, {}, {"kind": "poisson", "rate": 25}),
        (
            {"kind": "tgi", "max_batch_total_tokens": 9000},
            {"replicas": 2, "balancer": "least_loaded"},
            {"kind": "uniform", "low_ms": 5, "high_ms": 80},
        ),
        ({"kind": "sequential"}, {}, {"kind": "fixed", "interval_ms": 500}),
        (
            {"kind": "static", "batch_size": 4, "max_wait_ms": 200},
            {"gpus_per_replica": 2},
            {"kind": "fixed", "interval_ms": 30},
        ),
    ],
    ids=["tgi-fixed", "tgi-poisson", "tgi-nochunk", "tgi-dp2-kvbound", "sequential", "static-tp2"],
)
def test_fast_path_matches_step_path(server, hw, arrival):
    wl = {
        "requests": 80,
        "arrival": arrival,
        "prompt_tokens": {"kind": "lognormal", "mean": 1200, "min": 200, "max": 4000},
        "output_tokens": {"kind": "uniform", "min": 10, "max": 300},
    }
    res_f, fast, sf = run(scenario(server=server, hardware=hw, workload=wl, fast_forward=True))
    res_s, step, ss = run(scenario(server=server, hardware=hw, workload=wl, fast_forward=False))
    assert (fast.status == step.status).all()
    for col in COLUMNS:
        np.testing.assert_allclose(fast[col], step[col], rtol=1e-6, atol=1e-9, err_msg=col)
    assert sf["energy"]["total_j"] == pytest.approx(ss["energy"]["total_j"], rel=1e-6)
    # and the fast path really skipped events
    assert len(res_f.replicas[0].ledger.starts) < len(res_s.replicas[0].ledger.starts)
