"""Times, rates and spreads that are finite but out of physical range (config/limits.py):
refused with exit code 2, one line naming the field, nothing written. Before the bounds
an arrival interval of 1e308 ms crashed the timeline with a traceback, a Poisson rate of
1e-307 req/s wrote a results directory with infinite energies (which every reader then
refused), and `sim plan optimize --per-day 1e-300` ranked a configuration at 5.9e302 Wh a
request. At the bounds themselves a run is finite throughout."""

from __future__ import annotations

import copy
import json
import math

import pytest
from badinput import SMALL, refused, sim, write_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_energy_sim.config.limits import (
    MAX_HOST_TIME_FACTOR,
    MAX_RATE,
    MAX_SIGMA,
    MAX_TIME_MS,
    MAX_TIME_S,
    MIN_RATE,
)

FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

#: (an override, what goes in X, the field the error names)
FIELDS = [
    ("workload.arrival={kind: fixed, interval_ms: X}", "ms", "interval_ms"),
    ("workload.arrival={kind: uniform, low_ms: 0, high_ms: X}", "ms", "high_ms"),
    ("workload.arrival={kind: burst, size: 1, gap_ms: X}", "ms", "gap_ms"),
    ("workload.arrival={kind: poisson, rate: X}", "rate", "rate"),
    ("server={kind: static, batch_size: 2, max_wait_ms: X}", "ms", "max_wait_ms"),
    ("hardware.host_time_factor=X", "factor", "host_time_factor"),
    ("workload.prompt_tokens={kind: lognormal, mean: 10, sigma: X, max: 50}", "sigma", "sigma"),
]
#: values past each kind's bound (finite: the non-finite ones are refused already)
PAST = {
    "ms": [MAX_TIME_MS * 1.0001, 1e300, 1.7e308],
    "rate": [MIN_RATE / 2, 1e-300, 1e-307, MAX_RATE * 2, 1e300],
    "factor": [MAX_HOST_TIME_FACTOR * 2, 1e300],
    "sigma": [MAX_SIGMA * 1.01, 1e3, 1e300],
}
#: each kind at its bound (runs)
AT = {"ms": MAX_TIME_MS, "rate": MIN_RATE, "factor": MAX_HOST_TIME_FACTOR, "sigma": MAX_SIGMA}


@FUZZ
@given(st.sampled_from(FIELDS), st.data())
def test_out_of_range_time_or_rate_is_one_line(tmp_path_factory, field, data):
    override, kind, name = field
    value = data.draw(st.sampled_from(PAST[kind]))
    root = tmp_path_factory.mktemp("b")
    path = write_scenario(root / "s.yaml", SMALL)
    args = ["run", path, "--set", override.replace("X", repr(value)), "--quiet"]
    line = refused([*args, "--out", root / "o"], root)
    assert name in line


def _finite(obj) -> bool:
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


@pytest.mark.parametrize("field", FIELDS, ids=[f[2] for f in FIELDS])
def test_a_run_at_the_bound_is_finite(tmp_path, field):
    override, kind, _ = field
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    args = ["run", path, "--set", override.replace("X", repr(AT[kind])), "--quiet"]
    r = sim([*args, "--out", tmp_path / "o"], tmp_path)
    assert r.exit_code == 0, r.output
    assert _finite(json.loads((tmp_path / "o" / "summary.json").read_text()))


@pytest.mark.parametrize("think", ["{kind: fixed, value_s: X}", "{kind: exponential, mean_s: X}"])
def test_think_time_past_the_bound(tmp_path, think):
    data = copy.deepcopy(SMALL)
    path = write_scenario(tmp_path / "s.yaml", data)
    conv = (
        "workload.conversations={turns: {kind: fixed, value: 2}, first_message_tokens: "
        "{kind: fixed, value: 5}, message_tokens: {kind: fixed, value: 5}, answer_tokens: "
        f"{{kind: fixed, value: 5}}, think_time: {think.replace('X', repr(MAX_TIME_S * 10))}}}"
    )
    line = refused(["run", path, "--set", conv, "--out", tmp_path / "o", "--quiet"], tmp_path)
    assert "think_time" in line


@pytest.mark.parametrize("cell", ["1e300", "1.7e308", repr(MAX_TIME_S * 2)])
def test_trace_arrival_past_the_bound(tmp_path, cell):
    (tmp_path / "trace.csv").write_text(
        f"arrival_s,prompt_tokens,output_tokens\n0,10,5\n{cell},10,5\n"
    )
    data = copy.deepcopy(SMALL)
    data["workload"] = {"requests": 2, "arrival": {"kind": "trace", "path": "trace.csv"}}
    path = write_scenario(tmp_path / "s.yaml", data)
    line = refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)
    assert "trace.csv" in line and "row 3" in line and "arrival_s" in line


@pytest.mark.parametrize(
    "args",
    [
        ["optimize", "--per-day", "1e-300"],
        ["optimize", "--rate", "1e-300"],
        ["optimize", "--rate", "1e300"],
        ["saturation", "--slo-ttft-p90", "1", "--min-rate", "1e-300"],
        ["saturation", "--slo-ttft-p90", "1", "--max-rate", "1e300"],
    ],
)
def test_plan_rates_past_the_bound(tmp_path, args):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    command, *rest = args
    line = refused(["plan", command, path, *rest, "--out", tmp_path / "p.csv"], tmp_path)
    assert rest[-2] in line
