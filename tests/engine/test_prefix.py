"""Running sums a chunk at a time (engine/prefix.py) are numpy's whole-array ones, bit for
bit; the accounting's chunked integrals equal the sorting reference exactly."""

from __future__ import annotations

import numpy as np
import pytest

from llm_energy_sim.engine import prefix
from llm_energy_sim.results.accounting import _overlap_sum, _overlap_sum_sorting


@pytest.mark.parametrize("n", [0, 1, 7, 100_003])
def test_prefix_at_is_the_whole_cumsum(n, monkeypatch):
    monkeypatch.setattr(prefix, "CHUNK", 1000)
    rng = np.random.default_rng(n)
    x = rng.lognormal(0.0, 3.0, n) * rng.choice([-1.0, 1.0], n)
    whole = np.concatenate([[0.0], np.cumsum(x)])
    idx = rng.integers(0, n + 1, 500)
    got = prefix.prefix_at(n, lambda lo, hi: x[lo:hi], idx)
    assert np.array_equal(got, whole[idx])
    if n:
        assert np.array_equal(prefix.values_at(n, lambda lo, hi: x[lo:hi], idx % n), x[idx % n])


def test_overlap_sum_of_back_to_back_intervals_is_the_sorting_one(monkeypatch):
    monkeypatch.setattr(prefix, "CHUNK", 997)
    rng = np.random.default_rng(19)
    n = 20_000
    gaps = np.where(rng.random(n) < 0.3, rng.exponential(0.5, n), 0.0)  # many back to back
    dur = np.where(rng.random(n) < 0.01, 0.0, rng.exponential(0.05, n))
    s = np.cumsum(gaps + np.r_[0.0, dur[:-1]])
    e = s + dur
    w = rng.integers(1, 9, n).astype(float)
    edges = np.append(np.arange(0.0, e[-1], e[-1] / 777), e[-1])
    for weights in (w, np.ones_like(s)):
        assert np.array_equal(
            _overlap_sum(s, e, weights, edges), _overlap_sum_sorting(s, e, weights, edges)
        )
