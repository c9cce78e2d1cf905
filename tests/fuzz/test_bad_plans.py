"""`sim plan` options: every bad tolerance, rate, SLO, count, dtype and key is refused with
exit code 2, one line, nothing written; the bisection ends even when the tolerance is below
what floating point can resolve."""

from __future__ import annotations

import pytest
from badinput import SMALL, refused, sim, write_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_energy_sim.analysis.capacity import Slo, saturation

FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
NON_FINITE = ["nan", "inf", "-inf", "NaN", "Infinity", "1e999"]


@FUZZ
@given(
    st.sampled_from(
        ["--tolerance", "--min-rate", "--max-rate", "--slo-ttft-p90", "--slo-tpot-p90"]
    ),
    st.sampled_from([*NON_FINITE, "0", "-1", "-0.5", "abc", ""]),
)
def test_bad_saturation_number(tmp_path_factory, option, value):
    root = tmp_path_factory.mktemp("sat")
    scen = write_scenario(root / "s.yaml", SMALL)
    args = ["plan", "saturation", scen, "--slo-ttft-p90", "1", option, value]
    assert option in refused([*args, "--out", root / "p.csv"], root)


@pytest.mark.parametrize(
    "args",
    [
        ["--tolerance", "1"],
        ["--tolerance", "2"],
        ["--min-rate", "5", "--max-rate", "5"],
        ["--min-rate", "6", "--max-rate", "5"],
        ["--requests", "0"],
        ["--set", "workload.requests=10"],
        ["--set", "workload.arrival.rate=3"],
        ["--set", "bogus=1"],
        ["--set", "dtype=["],
        ["--requests", "100000000"],
    ],
)
def test_bad_saturation_options(tmp_path, args):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    refused(["plan", "saturation", scen, "--slo-ttft-p90", "1", *args], tmp_path)


def test_saturation_needs_an_slo_and_a_writable_out(tmp_path):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    refused(["plan", "saturation", scen], tmp_path)
    (tmp_path / "d").mkdir()
    refused(["plan", "saturation", scen, "--slo-ttft-p90", "1", "--out", tmp_path / "d"], tmp_path)


@FUZZ
@given(
    st.sampled_from(["--rate", "--per-day"]),
    st.sampled_from([*NON_FINITE, "0", "-3", "x"]),
)
def test_bad_optimize_rate(tmp_path_factory, option, value):
    root = tmp_path_factory.mktemp("opt")
    scen = write_scenario(root / "s.yaml", SMALL)
    args = ["plan", "optimize", scen, option, value, "--out", root / "p.csv"]
    assert option in refused(args, root)


@pytest.mark.parametrize(
    "args",
    [
        ["--max-replicas", "0"],
        ["--max-replicas", "-2"],
        ["--workers", "0"],
        ["--requests", "0"],
        ["--dtypes", "bfloat16,bogus"],
        ["--dtypes", ","],
        ["--tp", "0"],
        ["--tp", "a"],
        ["--replicas", "0"],
        ["--replicas", "1,x"],
        ["--replicas", "100", "--max-replicas", "4"],
        ["--set", "bogus.key=1,2"],
        ["--set", "dtype=int8"],
        ["--set", "hardware.gpus_per_replica=2"],
        ["--set", "hardware.replicas=2"],
        ["--set", "workload.requests=5"],
        ["--slo-ttft-p90", "nan"],
        ["--slo-tpot-p90", "-1"],
        ["--rate", "1", "--per-day", "5"],
    ],
)
def test_bad_optimize_options(tmp_path, args):
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    base = [] if "--rate" in args else ["--rate", "1"]
    refused(["plan", "optimize", scen, *base, *args, "--out", tmp_path / "p.csv"], tmp_path)


def test_bisection_stops_at_the_floating_point_end(tmp_path):
    """A bracket narrower than the tolerance can resolve still ends: the midpoint reaches
    an end of the bracket and the bisection stops there."""
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    rate, rows = saturation(scen, Slo(ttft_p90_s=100.0), 1.0, 1.0 + 1e-9, 1e-300, requests=3)
    assert 1.0 <= rate <= 1.0 + 1e-9
    assert len(rows) < 80


@pytest.mark.parametrize("ttft", [float("nan"), float("inf"), 0.0, -1.0])
def test_slo_must_be_finite_and_positive(ttft):
    from llm_energy_sim.config.errors import UserError

    with pytest.raises(UserError):
        Slo(ttft_p90_s=ttft)


def test_a_good_saturation_answers(tmp_path):
    """The control: a valid call answers a rate between the bounds and exits 0."""
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    r = sim(
        [
            "plan",
            "saturation",
            scen,
            "--slo-ttft-p90",
            "100",
            "--requests",
            "3",
            "--max-rate",
            "0.2",
            "--tolerance",
            "0.5",
        ],
        tmp_path,
    )
    assert r.exit_code == 0, r.output
