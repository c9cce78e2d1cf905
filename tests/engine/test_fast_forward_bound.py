"""Property: the closed-form decode fast path stays within its documented bound (1e-6
relative) of the step-by-step reference, over random small scenarios (1-token prompts
included: their attention switches bound inside a decode run)."""

from __future__ import annotations

import numpy as np
from conftest import run, scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BOUND = 1e-6
COLUMNS = ["start_s", "first_token_s", "finish_s", "energy_prefill_j", "energy_decode_j"]

servers = st.sampled_from(
    [
        {"kind": "tgi"},
        {"kind": "tgi", "chunked_prefill": False},
        {"kind": "sequential"},
        {"kind": "transformers-cb"},
    ]
)
arrivals = st.one_of(
    st.builds(lambda ms: {"kind": "fixed", "interval_ms": ms}, st.integers(1, 400)),
    st.builds(lambda r: {"kind": "poisson", "rate": r}, st.floats(1.0, 60.0)),
)


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    server=servers,
    arrival=arrivals,
    requests=st.integers(2, 8),
    prompt_max=st.sampled_from([1, 2, 16, 300]),
    out=st.tuples(st.integers(1, 40), st.integers(0, 250)),
    dtype=st.sampled_from(["bfloat16", "float16"]),
    seed=st.integers(0, 1000),
)
def test_fast_forward_within_bound(server, arrival, requests, prompt_max, out, dtype, seed):
    lo, span = out
    wl = {
        "requests": requests,
        "arrival": arrival,
        "prompt_tokens": {"kind": "uniform", "min": 1, "max": prompt_max},
        "output_tokens": {"kind": "uniform", "min": lo, "max": lo + span},
    }
    common = {"server": server, "workload": wl, "dtype": dtype, "seed": seed}
    _, fast, sf = run(scenario(fast_forward=True, **common))
    _, step, ss = run(scenario(fast_forward=False, **common))
    assert (fast.status == step.status).all()
    for col in COLUMNS:
        np.testing.assert_allclose(fast[col], step[col], rtol=BOUND, atol=1e-12, err_msg=col)
    assert abs(sf["energy"]["total_j"] / ss["energy"]["total_j"] - 1) <= BOUND
