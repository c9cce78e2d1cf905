"""Host speed as a distribution (issue 17, item 3): the profiles' serving-host samples and
run-to-run spread, the default host factor (their median), the 80% prediction intervals of
`sim run` (analysis/intervals.py), their bounds in sweep and plan rows, and the coverage
check on the committed validation matrix."""

from __future__ import annotations

import copy
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from badinput import SMALL, refused, write_scenario
from click.testing import CliRunner
from conftest import REPO
from pydantic import ValidationError

from llm_energy_sim.analysis import intervals as iv
from llm_energy_sim.analysis.capacity import Slo, saturation
from llm_energy_sim.analysis.sweep import run_sweep
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.paths import PROFILES_DIR
from llm_energy_sim.config.profile import (
    INTERVAL_FIGURES,
    HostSpeedDistribution,
    HostSpeedSample,
    ModelResidual,
    ModelResiduals,
    Profile,
    RunToRunSpread,
    load_profile,
)
from llm_energy_sim.config.scenario import load_scenario_dict
from tools import host_speed_samples as hss

H200 = load_profile("h200")[0]
#: host-bound and small: HF generate, one request at a time, on the H200 profile
SEQ = {
    **SMALL,
    "hardware": {"gpu": "h200"},
    "workload": {
        **SMALL["workload"],
        "requests": 4,
        "output_tokens": {"kind": "fixed", "value": 8},
    },
}


def _scen(**over):
    data = copy.deepcopy(SEQ)
    data.update(over)
    return load_scenario_dict(data, "<test>")


def _run(args: list, where: Path):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


# ---- the profile fields -------------------------------------------------------------------
SAMPLE = {"factor": 1.2, "utc": "2026-11-30T10:00:00+00:00", "source": "measurements/live/x"}


@pytest.mark.parametrize(
    "bad",
    [
        {"factor": 0.0},
        {"factor": -1.0},
        {"factor": float("nan")},
        {"factor": float("inf")},
        {"utc": "yesterday"},
        {"source": ""},
    ],
)
def test_a_host_speed_sample_is_finite_positive_and_dated(bad):
    with pytest.raises(ValidationError):
        HostSpeedSample(**{**SAMPLE, **bad})


def test_a_distribution_needs_a_sample_and_a_spread_known_figures():
    with pytest.raises(ValidationError):
        HostSpeedDistribution(samples=[], source="x")
    ok = {"sigma_log": {"ttft_p50_s": 0.01}, "dof": 1, "runs": [["a", "b"]], "source": "x"}
    RunToRunSpread(**ok)
    for bad in (
        {"sigma_log": {"latency": 0.01}},
        {"sigma_log": {"ttft_p50_s": -0.1}},
        {"sigma_log": {"ttft_p50_s": float("nan")}},
        {"dof": 0},
        {"runs": [["only-one"]]},
    ):
        with pytest.raises(ValidationError):
            RunToRunSpread(**{**ok, **bad})


def test_a_profile_with_a_bad_sample_is_refused_on_one_line(tmp_path):
    data = json.loads((PROFILES_DIR / "h200.json").read_text())
    data["host_speed"]["samples"][3]["factor"] = -0.5
    (tmp_path / "p.json").write_text(json.dumps(data))
    scen = write_scenario(tmp_path / "s.yaml", SEQ)
    line = refused(
        ["run", scen, "--profile", tmp_path / "p.json", "--out", tmp_path / "o", "--quiet"],
        tmp_path,
    )
    assert "p.json" in line and "host_speed" in line


def test_quantiles_are_numpys_and_the_default_is_the_median():
    xs = H200.host_speed.factors()
    assert H200.default_host_time_factor() == pytest.approx(statistics.median(xs), rel=1e-12)
    for q in (0.0, 0.1, 0.5, 0.9, 1.0):
        assert H200.host_speed.quantile(q) == pytest.approx(float(np.quantile(xs, q)))
    bare = Profile.model_validate(
        {**H200.model_dump(mode="json"), "host_speed": None, "run_to_run": None}
    )
    assert bare.default_host_time_factor() == 1.0


# ---- the collecting tool on the committed measurements ------------------------------------
def test_shipped_profiles_carry_what_the_tool_collects_now():
    for name in hss.PROFILES:
        old, new = hss.updated(name)
        assert old["host_speed"] == new["host_speed"], f"run: python {hss.__file__} --write"
        assert old["run_to_run"] == new["run_to_run"]
        assert old.get("graph_residuals") == new["graph_residuals"]


def test_samples_are_every_pass_once_from_live_leases():
    samples = H200.host_speed.samples
    keys = [(s.utc, s.source.split("/")[2]) for s in samples]
    assert len(set(keys)) == len(keys)  # a pass bracketing two cases counted once
    for s in samples:
        assert s.source.startswith("measurements/live/") and (REPO / s.source).is_dir()
    # a case's own bracket (its summary.json, h200 scale) is among the samples, as measured
    case = REPO / "measurements/live/h200-matrix/llama-3.1-8b-bfloat16-burst_warm"
    passes = json.loads((case / "summary.json").read_text())["host_speed"]["utc"]
    assert set(passes) <= {s.utc for s in samples}
    h100 = load_profile("h100-sxm")[0]
    assert "borrow" in h100.host_speed.source or "No H100 lease" in h100.host_speed.source


def test_run_to_run_spread_is_the_pooled_log_sd_of_the_repeats():
    rr = H200.run_to_run
    assert rr.dof == sum(len(g) - 1 for g in rr.runs)
    a, b = (json.loads((REPO / d / "summary.json").read_text()) for d in rr.runs[0])
    assert a["scenario"] == b["scenario"] and a["model"] == b["model"]
    ss = 0.0
    for group in rr.runs:
        vals = [
            math.log(json.loads((REPO / d / "summary.json").read_text())["energy"]["total_wh"])
            for d in group
        ]
        ss += sum((v - sum(vals) / len(vals)) ** 2 for v in vals)
    assert rr.sigma_log["total_energy_wh"] == pytest.approx(math.sqrt(ss / rr.dof), abs=1e-6)


# ---- the default host factor ----------------------------------------------------------------
def test_sim_run_defaults_to_the_median_and_an_explicit_factor_wins(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SEQ)
    _run(["run", scen, "--out", tmp_path / "a", "--quiet", "--no-interval"], tmp_path)
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert a["host_time_factor"] == H200.default_host_time_factor()
    n = len(H200.host_speed.samples)
    assert a["provenance"]["host_time_factor"].startswith(f"median of the {n} serving-host")
    assert "intervals" not in a
    _run(
        ["run", scen, "--out", tmp_path / "b", "--quiet", "--set", "hardware.host_time_factor=1.1"],
        tmp_path,
    )
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert b["host_time_factor"] == 1.1 and b["provenance"]["host_time_factor"] == "scenario"
    table = REPO / "measurements/live/h200-matrix/qwen2.5-7b-int8-fixed50ms"
    _run(["run", scen, "--out", tmp_path / "c", "--quiet", "--host-speed", table], tmp_path)
    c = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert c["host_time_factor"] == pytest.approx(
        statistics.mean(r["factor"] for r in c["host_time_factor_runs"])
    )
    assert c["host_time_factor"] != a["host_time_factor"]


# ---- the intervals ----------------------------------------------------------------------------
def test_combination_rule_on_known_numbers():
    spread = RunToRunSpread(sigma_log={"ttft_p50_s": 0.1}, dof=3, runs=[["a", "b"]], source="test")
    p = iv.BoundPlan(1.4, (1.0, 2.0), True, "test", spread)
    out = iv.combine({"ttft_p50_s": 1.0}, [{"ttft_p50_s": 0.8}, {"ttft_p50_s": 1.5}], p)
    e = out["figures"]["ttft_p50_s"]
    w = iv.t_quantile(3) * 0.1
    assert iv.t_quantile(3) == pytest.approx(1.6377, abs=1e-4)  # Student t, 0.9, 3 dof
    assert e["lower"] == pytest.approx(math.exp(-math.hypot(math.log(1.25), w)))
    assert e["upper"] == pytest.approx(math.exp(math.hypot(math.log(1.5), w)))
    assert e["monotone"] is True
    # not monotone: the bounds still take the smallest and largest of the three
    bent = iv.combine({"ttft_p50_s": 1.0}, [{"ttft_p50_s": 1.2}, {"ttft_p50_s": 1.1}], p)
    e = bent["figures"]["ttft_p50_s"]
    assert e["monotone"] is False and e["host_lower"] == 1.0 and e["host_upper"] == 1.2
    assert out["figures"]["energy_per_request_wh"] is None  # no value: no interval


def test_bound_factors_are_the_distributions_p10_p90_or_its_spread_about_a_given_factor():
    hs = H200.host_speed
    p = iv.plan(_scen(), H200)
    assert p.bound_factors == (hs.quantile(0.1), hs.quantile(0.9))
    assert p.central_factor == hs.median()
    given = iv.plan(_scen(hardware={"gpu": "h200", "host_time_factor": 2.0}), H200)
    assert given.bound_factors == pytest.approx(
        (2.0 * hs.quantile(0.1) / hs.median(), 2.0 * hs.quantile(0.9) / hs.median())
    )
    tgi = iv.plan(_scen(server={"kind": "tgi"}), H200)  # no host term: nothing to simulate
    assert tgi.bound_factors == () and tgi.host_known and not tgi.empty


@pytest.mark.parametrize(
    "case",
    [
        ("sequential.yaml", {"workload.requests": 10}),
        ("static_b8.yaml", {}),
        ("fixed500ms.yaml", {"workload.requests": 40}),
    ],
    ids=["sequential", "static_b8", "cb_fixed500ms"],
)
def test_figures_are_monotone_in_host_speed_on_validation_cases(case):
    """Verified, not assumed: over factors 0.9-2.2 every figure of these validation cases
    moves one way. It need not everywhere (a tiny CB run's TTFT p90, CB at 50 ms spacing:
    scheduling bends a quantile), which is why the bounds take the smallest and largest of
    the three runs and `monotone` records whether they were in order."""
    from llm_energy_sim.config.scenario import load_scenario

    name, ov = case
    scen = load_scenario(REPO / "scenarios" / "validation" / name, ov)
    rows = [iv.figures_at(scen, f) for f in np.linspace(0.9, 2.2, 8)]
    for k in INTERVAL_FIGURES:
        v = np.array([r[k] for r in rows])
        d = np.diff(v)
        if name == "fixed500ms.yaml" and k.startswith("ttft"):
            # CB's TTFT waits for the step in flight when a request arrives: its quantiles
            # rise with the host factor overall but may dip by a fraction of a step
            assert v[-1] > v[0] and (d >= -0.05 * v[1:]).all(), k
            continue
        assert (d >= -1e-12).all() or (d <= 1e-12).all(), k
    assert all(np.diff([r["tpot_p50_s"] for r in rows]) > 0)  # host-bound: slower host


def test_sim_run_intervals_bracket_the_central_value_and_say_how(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SEQ)
    _run(["run", scen, "--out", tmp_path / "r", "--plot"], tmp_path)
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    ivs = s["intervals"]
    assert ivs["level"] == 0.8 and ivs["quantiles"] == [0.1, 0.9]
    assert ivs["bound_factors"] == [H200.host_speed.quantile(0.1), H200.host_speed.quantile(0.9)]
    assert ivs["run_to_run"]["dof"] == H200.run_to_run.dof and "sqrt" in ivs["method"]
    central = iv.figures(s)
    assert set(ivs["figures"]) == set(INTERVAL_FIGURES)
    for k, e in ivs["figures"].items():
        assert e["value"] == central[k]
        assert e["lower"] <= e["host_lower"] <= e["value"] <= e["host_upper"] <= e["upper"], k
        assert e["monotone"] is True
    assert ivs["figures"]["tpot_p50_s"]["upper"] > 1.2 * central["tpot_p50_s"]
    assert (tmp_path / "r" / "intervals.png").is_file()
    # the central run is the --no-interval run, number for number
    _run(["run", scen, "--out", tmp_path / "n", "--quiet", "--no-interval"], tmp_path)
    n = json.loads((tmp_path / "n" / "summary.json").read_text())
    for key in ("energy", "latency_s", "makespan_s", "tokens", "batch"):
        assert n[key] == s[key], key
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "r" / "requests.parquet"),
        pd.read_parquet(tmp_path / "n" / "requests.parquet"),
    )


def test_the_table_shows_value_and_bounds(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SEQ)
    out = _run(["run", scen, "--out", tmp_path / "r"], tmp_path).output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    e = s["intervals"]["figures"]["tpot_p50_s"]
    assert f"[{e['lower']:.3g}, {e['upper']:.3g} s]" in out
    n = len(H200.host_speed.samples)
    assert "[lo, hi]: 80% prediction interval" in out and f"median of the {n}" in out


PARALLEL_CHECK = """
import json, sys
from llm_energy_sim.analysis import intervals as iv
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.config.scenario import load_scenario_dict
scen = load_scenario_dict(json.loads(sys.argv[1]), "<test>")
p = iv.plan(scen, load_profile("h200")[0])
assert iv.can_fork()
with iv.BoundRuns(scen, p.bound_factors, None, parallel=True) as par:
    assert len(par._workers) == 2
    a = par.results()
with iv.BoundRuns(scen, p.bound_factors, None, parallel=False) as seq:
    b = seq.results()
assert a == b, (a, b)
bad = {**json.loads(sys.argv[1]), "model": "llama-3.1-70b", "dtype": "float32"}
try:
    with iv.BoundRuns(load_scenario_dict(bad, "<bad>"), (1.0, 2.0), None, True) as par:
        par.results()
except Exception as exc:
    assert type(exc).__name__ == "UserError" and "does not fit" in str(exc), exc
else:
    raise AssertionError("a bound run's UserError was lost")
print("ok")
"""


def test_forked_bound_runs_equal_the_in_process_ones():
    """In a fresh interpreter (one thread, as `sim run` forks): the forked bound runs give the
    same figures as in-process ones, and a bound run's UserError comes back as one."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    p = subprocess.run(
        [sys.executable, "-c", PARALLEL_CHECK, json.dumps(SEQ)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_no_fork_beside_other_threads():
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not iv.can_fork()
    finally:
        stop.set()
        t.join()


def test_tgi_interval_is_the_graph_residuals_alone(tmp_path):
    data = {**SEQ, "server": {"kind": "tgi"}}
    scen = write_scenario(tmp_path / "s.yaml", data)
    _run(["run", scen, "--out", tmp_path / "r", "--quiet"], tmp_path)
    ivs = json.loads((tmp_path / "r" / "summary.json").read_text())["intervals"]
    assert ivs["bound_factors"] == [] and "no host time" in ivs["host"]
    e = ivs["figures"]["energy_per_request_wh"]
    # no host part: the bounds are the residuals' conformal 10% / 90% offsets alone, those of
    # the live CUDA-graph runs (TGI replays graphs)
    res = load_profile("h200")[0].graph_residuals
    q_lo, q_hi = res.quantiles("energy_per_request_wh", iv.QUANTILES)
    assert e["upper"] == pytest.approx(e["value"] * math.exp(max(0.0, q_hi)))
    assert e["lower"] == pytest.approx(e["value"] * math.exp(-max(0.0, -q_lo)))
    assert e["model_log_offsets"] == pytest.approx([max(0.0, -q_lo), max(0.0, q_hi)])
    assert ivs["model_residuals"]["cases"] == len(res.cases)
    # no run ends before its last request arrives: the makespan's lower bound is at least that
    req = pd.read_parquet(tmp_path / "r" / "requests.parquet")
    m = ivs["figures"]["makespan_s"]
    assert m["lower"] >= req["arrival_s"].max() and m["lower"] <= m["value"]


@pytest.mark.parametrize(
    ("server", "graphs"),
    [
        ({"kind": "tgi"}, True),
        ({"kind": "vllm"}, True),
        ({"kind": "transformers-cb", "cuda_graphs": True}, True),
        ({"kind": "transformers-cb"}, False),
        ({"kind": "sequential"}, False),
    ],
)
def test_graph_engines_take_the_graph_runs_residuals(server, graphs):
    prof, _ = load_profile("h200")
    assert prof.graph_residuals is not None and prof.model_residuals is not None
    scen = load_scenario_dict({**SEQ, "server": server}, "test")
    want = prof.graph_residuals if graphs else prof.model_residuals
    assert iv.plan(scen, prof).residuals is want
    # the graph runs' residuals are none of the eager matrix's cases
    graph_cases = {c.case for c in prof.graph_residuals.cases}
    assert not graph_cases & {c.case for c in prof.model_residuals.cases}
    assert len(graph_cases) == len(prof.graph_residuals.cases) >= 9  # bounds an 80% interval


def _residuals(values: list[float], figure: str = "ttft_p50_s") -> ModelResiduals:
    cases = [ModelResidual(case=f"m/c{i}", log_ratio={figure: v}) for i, v in enumerate(values)]
    return ModelResiduals(cases=cases, source="test")


def test_conformal_quantiles_are_order_statistics_and_leave_a_case_out():
    res = _residuals([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5])  # n = 9
    # ceil(10 x 0.9) = 9th smallest, floor(10 x 0.1) = 1st smallest
    assert res.quantiles("ttft_p50_s", (0.1, 0.9)) == (-0.3, 0.5)
    # with c8 (0.5) left out, n = 8: (n + 1) x 0.9 = 8.1 -> the 9th of 8 does not exist
    assert res.quantiles("ttft_p50_s", (0.1, 0.9), exclude="m/c8") is None
    assert res.quantiles("energy_per_request_wh", (0.1, 0.9)) is None  # no residuals
    more = _residuals([x / 100 for x in range(-10, 10)])  # n = 20
    assert more.quantiles("ttft_p50_s", (0.1, 0.9)) == pytest.approx((-0.09, 0.08))  # 2nd, 19th


def test_residuals_replace_run_to_run_and_a_biased_side_adds_nothing():
    spread = RunToRunSpread(sigma_log={"ttft_p50_s": 0.1}, dof=3, runs=[["a", "b"]], source="t")
    res = _residuals([x / 100 for x in range(5, 25)])  # the model always under-predicts
    p = iv.BoundPlan(1.4, (1.0, 2.0), True, "test", spread, res)
    out = iv.combine({"ttft_p50_s": 1.0}, [{"ttft_p50_s": 0.8}, {"ttft_p50_s": 1.5}], p)
    e = out["figures"]["ttft_p50_s"]
    q_lo, q_hi = res.quantiles("ttft_p50_s", iv.QUANTILES)
    assert q_lo > 0  # measured above predicted even at the 10% quantile
    assert e["lower"] == pytest.approx(0.8)  # host part alone below
    assert e["upper"] == pytest.approx(math.exp(math.hypot(math.log(1.5), q_hi)))
    # a figure the residuals lack falls back to the run-to-run spread
    out2 = iv.combine({"ttft_p90_s": 1.0}, [{"ttft_p90_s": 1.0}, {"ttft_p90_s": 1.0}], p)
    assert out2["figures"]["ttft_p90_s"]["upper"] == pytest.approx(1.0)  # no spread for it


def test_residuals_in_profile_refuse_unknown_figures_and_non_finite():
    with pytest.raises(ValidationError, match="unknown figure"):
        ModelResidual(case="m/c", log_ratio={"joules": 0.1})
    with pytest.raises(ValidationError, match="finite"):
        ModelResidual(case="m/c", log_ratio={"ttft_p50_s": float("nan")})


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 30])
def test_t_quantile_is_students(dof):
    from scipy.special import stdtrit

    for q in (0.75, 0.9, 0.975):
        assert iv.t_quantile(dof, q) == pytest.approx(float(stdtrit(dof, q)), rel=1e-9)


# ---- sweep and plan -----------------------------------------------------------------------------
def test_sweep_rows_carry_the_bounds(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", SEQ)
    df = run_sweep(path, [{"dtype": "bfloat16"}, {"dtype": "float16"}], tmp_path / "t.csv", 1)
    for fig, col in iv.FIGURE_COLUMNS.items():
        lo, hi = df[iv.bound_column(fig, "lower")], df[iv.bound_column(fig, "upper")]
        assert (lo <= df[col]).all() and (df[col] <= hi).all(), fig
    plain = run_sweep(path, [{"dtype": "bfloat16"}], tmp_path / "p.csv", 1, interval=False)
    assert iv.bound_column("makespan_s", "upper") not in plain.columns
    assert plain["energy.per_request_wh"][0] == df["energy.per_request_wh"][0]


def test_a_plan_at_the_upper_bound_is_stricter(tmp_path):
    """One request at a time: TTFT p90 grows once requests queue; an SLO of three times the
    unloaded TTFT p90 saturates at a lower rate when its upper bound must meet it."""
    wl = {**SEQ["workload"], "requests": 12}
    path = write_scenario(tmp_path / "s.yaml", {**SEQ, "workload": wl})
    idle = iv.figures_at(_scen(workload=wl), H200.default_host_time_factor())
    slo = 3 * idle["ttft_p90_s"]
    central, rows = saturation(path, Slo(ttft_p90_s=slo), 0.05, 50, 0.02, "fixed", interval=True)
    upper, _ = saturation(path, Slo(ttft_p90_s=slo, at="upper"), 0.05, 50, 0.02, "fixed")
    assert upper < central < 50
    assert all(r[iv.bound_column("ttft_p90_s", "upper")] >= r["latency_s.ttft.p90"] for r in rows)


def test_plan_optimize_rows_carry_bounds_and_bad_options_exit_2(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", SEQ)
    out = tmp_path / "plan.csv"
    args = ["plan", "optimize", path, "--rate", "0.2", "--dtypes", "bfloat16", "--tp", "1"]
    res = _run(
        [*args, "--replicas", "1", "--requests", "4", "--workers", "1", "--out", out], tmp_path
    )
    assert "80% interval" in res.output
    row = pd.read_csv(out).iloc[0]
    for c in ("wh_per_request", "kwh_per_day", "ttft_p90_s", "tpot_p90_s"):
        assert row[f"{c}_lower"] <= row[c] <= row[f"{c}_upper"], c
    line = refused([*args, "--slo-at", "upper", "--no-interval", "--out", out], tmp_path)
    assert "--slo-at upper needs the interval" in line
    refused([*args, "--slo-at", "sideways", "--out", out], tmp_path)


# ---- coverage over the committed validation matrix ------------------------------------------
@pytest.fixture(scope="module")
def coverage(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "m"
    res = CliRunner().invoke(
        main, ["validate", "matrix", str(REPO / "measurements/live/h200-matrix"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "validate.json").read_text())["coverage"]


def test_coverage_uses_the_distribution_not_the_cases_own_factor(coverage):
    out, cov = coverage
    rows = cov["shipped"]["rows"]
    assert len(rows) == 15
    assert {r["host_time_factor"] for r in rows} == {H200.default_host_time_factor()}
    own = pd.read_csv(out / "matrix.csv").set_index("case")["host_time_factor"]
    assert own.nunique() > 5  # the cases' own factors differ; the coverage never uses them


def test_coverage_fractions_and_widths_follow_from_the_rows(coverage):
    out, cov = coverage
    for variant in ("shipped", "held_out"):
        rows, stats = cov[variant]["rows"], cov[variant]["stats"]
        inside_all = []
        for fig in ("energy_per_request_wh", "ttft_p50_s", "tpot_p50_s"):
            inside = [r[f"{fig}_lower"] <= r[f"{fig}_measured"] <= r[f"{fig}_upper"] for r in rows]
            assert inside == [r[f"{fig}_inside"] for r in rows]
            widths = [(r[f"{fig}_upper"] - r[f"{fig}_lower"]) / r[f"{fig}_value"] for r in rows]
            assert stats[fig]["covered"] == sum(inside) and stats[fig]["cases"] == 15
            assert stats[fig]["median_width"] == pytest.approx(statistics.median(widths))
            inside_all += inside
        assert stats["all"]["fraction"] == pytest.approx(sum(inside_all) / 45)
    # the held-out distribution has none of the matrix lease's passes (another lease's stay)
    held = json.loads(next((out / "profiles").glob("*.json")).read_text())["host_speed"]
    assert not any("h200-matrix" in Path(s["source"]).parts for s in held["samples"])
    assert any("h200-matrix-r" in Path(s["source"]).parts for s in held["samples"])
    assert len(held["samples"]) < len(H200.host_speed.samples)
    md = (out / "coverage.md").read_text()
    assert f"all {stats['all']['covered']}/45" in md
