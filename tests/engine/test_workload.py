"""Request traces: every arrival and length distribution, bit-for-bit determinism."""

from __future__ import annotations

import numpy as np
import pytest

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.scenario import Workload
from llm_energy_sim.engine.workload import generate_trace

LENGTHS = {"kind": "uniform", "min": 10, "max": 20}


def wl(arrival, n=1000, **kw):
    return Workload(
        **{
            "requests": n,
            "arrival": arrival,
            "prompt_tokens": LENGTHS,
            "output_tokens": LENGTHS,
            **kw,
        }
    )


def test_fixed_spacing():
    t = generate_trace(wl({"kind": "fixed", "interval_ms": 500}), 0)
    np.testing.assert_allclose(np.diff(t.arrival_s), 0.5)
    assert t.arrival_s[0] == 0.0


def test_uniform_gaps_within_bounds_and_mean():
    t = generate_trace(wl({"kind": "uniform", "low_ms": 50, "high_ms": 500}, n=20000), 1)
    gaps = np.diff(t.arrival_s)
    assert gaps.min() >= 0.05 and gaps.max() <= 0.5
    assert gaps.mean() == pytest.approx(0.275, rel=0.02)


def test_poisson_rate():
    t = generate_trace(wl({"kind": "poisson", "rate": 4.0}, n=50000), 2)
    assert len(t) / t.arrival_s[-1] == pytest.approx(4.0, rel=0.02)


def test_burst_groups():
    t = generate_trace(wl({"kind": "burst", "size": 10, "gap_ms": 1000}, n=35), 0)
    assert list(np.unique(t.arrival_s)) == [0.0, 1.0, 2.0, 3.0]
    assert (t.arrival_s == 3.0).sum() == 5
    everything = generate_trace(wl({"kind": "burst"}, n=35), 0)
    assert (everything.arrival_s == 0).all()


def test_lognormal_clipped_with_requested_mean():
    w = Workload(
        requests=50000,
        arrival={"kind": "fixed", "interval_ms": 1},
        prompt_tokens={"kind": "lognormal", "mean": 1200, "sigma": 0.8, "min": 200, "max": 4000},
        output_tokens=LENGTHS,
    )
    p = generate_trace(w, 0).prompt_tokens
    assert p.min() >= 200 and p.max() <= 4000
    assert 1000 < p.mean() < 1300


def test_trace_and_empirical_files(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,100,5\n0.7,50,9\n0.2,10,1\n")
    t = generate_trace(Workload(requests=3, arrival={"kind": "trace", "path": str(trace)}), 0)
    assert list(t.arrival_s) == [0.0, 0.2, 0.7]
    assert list(t.prompt_tokens) == [100, 10, 50]
    emp = tmp_path / "lengths.csv"
    emp.write_text("tokens\n3\n7\n11\n")
    w = Workload(
        requests=200,
        arrival={"kind": "fixed", "interval_ms": 1},
        prompt_tokens={"kind": "empirical", "path": str(emp)},
        output_tokens=LENGTHS,
    )
    assert set(generate_trace(w, 0).prompt_tokens) == {3, 7, 11}
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,prompt_tokens\n0,1\n")
    with pytest.raises(UserError, match="output_tokens"):
        generate_trace(Workload(requests=1, arrival={"kind": "trace", "path": str(bad)}), 0)


@pytest.mark.parametrize(
    "arrival", [{"kind": "uniform", "low_ms": 1, "high_ms": 9}, {"kind": "poisson", "rate": 3}]
)
def test_same_seed_same_trace_bit_for_bit(arrival):
    a, b = generate_trace(wl(arrival), 42), generate_trace(wl(arrival), 42)
    assert a.arrival_s.tobytes() == b.arrival_s.tobytes()
    assert a.prompt_tokens.tobytes() == b.prompt_tokens.tobytes()
    assert a.output_tokens.tobytes() == b.output_tokens.tobytes()
    c = generate_trace(wl(arrival), 43)
    assert a.arrival_s.tobytes() != c.arrival_s.tobytes()


def test_a_trace_shorter_than_the_requests_asked_is_an_error(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,100,5\n0.7,50,9\n")
    wl2 = Workload(requests=10, arrival={"kind": "trace", "path": str(trace)})
    with pytest.raises(UserError, match="holds 2 requests but workload.requests is 10"):
        generate_trace(wl2, 0)
    first = generate_trace(Workload(requests=1, arrival={"kind": "trace", "path": str(trace)}), 0)
    assert list(first.prompt_tokens) == [100]


@pytest.mark.parametrize(
    "row, what",
    [
        ("0.5,nan,5", "prompt_tokens"),
        ("0.5,12.5,5", "prompt_tokens"),
        ("0.5,12,x", "output_tokens"),
        ("nan,12,5", "arrival_s"),
        ("-1,12,5", "arrival_s"),
        ("0.5,0,5", "prompt_tokens"),
    ],
)
def test_trace_values_are_checked_with_their_row(tmp_path, row, what):
    trace = tmp_path / "trace.csv"
    trace.write_text(f"arrival_s,prompt_tokens,output_tokens\n0.0,100,5\n{row}\n")
    with pytest.raises(UserError, match=f"row 3, column '{what}'"):
        generate_trace(Workload(requests=2, arrival={"kind": "trace", "path": str(trace)}), 0)
