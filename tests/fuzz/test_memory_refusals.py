"""The memory estimate up front of `sim plan saturation`, `sim plan optimize` and `sim
replay`, as `sim run` and `sim sweep` have it: a run that cannot fit is refused in a second
(exit code 2, one line naming the scenario, the GiB and --force, nothing written) and
--force skips the estimate. Each hostile case needs terabytes, so it is refused on any
machine; each control needs well under a gigabyte."""

from __future__ import annotations

import copy

import pytest
from badinput import SMALL, refused, sim, write_scenario

from llm_energy_sim.config.estimate import (
    estimate_memory,
    estimate_replay_memory,
    memory_limit,
)
from llm_energy_sim.config.scenario import load_scenario_dict

#: 500 requests 1 ms apart with a 1 us timeline: 0.5 s of arrivals, 5e5 bins at the
#: scenario's own rate, but 1e10 bins at --min-rate's 0.05 req/s
FINE = {
    **SMALL,
    "workload": {**SMALL["workload"], "arrival": {"kind": "fixed", "interval_ms": 1}},
    "output": {"timeline_bin_s": 1e-6},
}


def _assert_memory_refusal(line: str, path) -> None:
    assert str(path) in line and "GiB" in line and "--force" in line, line


def test_saturation_estimates_the_run_at_the_lowest_rate(tmp_path):
    """The bisection's longest run is the one at --min-rate: its timeline is estimated,
    not the scenario's own arrival (0.2 GB there, terabytes at 0.05 req/s)."""
    own = estimate_memory(load_scenario_dict(FINE, "fine", {"workload.requests": 500}))
    assert own.bytes < 1e9
    path = write_scenario(tmp_path / "s.yaml", FINE)
    args = ["plan", "saturation", path, "--slo-ttft-p90", "1", "--out", tmp_path / "p.csv"]
    _assert_memory_refusal(refused(args, tmp_path), path)


def test_saturation_force_skips_the_estimate(tmp_path):
    """With --force the next check (an --out that is a directory) is the one that refuses."""
    path = write_scenario(tmp_path / "s.yaml", FINE)
    (tmp_path / "d").mkdir()
    args = ["plan", "saturation", path, "--slo-ttft-p90", "1", "--out", tmp_path / "d"]
    line = refused([*args, "--force"], tmp_path)
    assert "is a directory" in line and "GiB" not in line


@pytest.mark.parametrize(
    "args",
    [
        ["--replicas", "auto", "--max-replicas", "10000000"],  # the largest fleet check
        ["--replicas", "1,10000000", "--max-replicas", "10000000"],
        ["--requests", "1000000000"],
        ["--replicas", "auto", "--set", "output.timeline_bin_s=1e-9"],
    ],
)
def test_optimize_refuses_runs_that_cannot_fit(tmp_path, args):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    base = ["plan", "optimize", path, "--rate", "1", "--dtypes", "bfloat16", "--tp", "1"]
    line = refused([*base, *args, "--out", tmp_path / "p.csv"], tmp_path)
    _assert_memory_refusal(line, path)


def test_optimize_force_skips_the_estimate(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    (tmp_path / "d").mkdir()
    args = ["plan", "optimize", path, "--rate", "1", "--max-replicas", "10000000"]
    line = refused([*args, "--force", "--out", tmp_path / "d"], tmp_path)
    assert "is a directory" in line and "GiB" not in line


def test_optimize_points_that_do_not_load_are_not_fatal(tmp_path):
    """The estimate skips a configuration that does not load (its row says why), as the
    table lists it: TP 7 does not divide the card's heads, TP 1 runs."""
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    args = ["plan", "optimize", path, "--rate", "0.5", "--dtypes", "bfloat16", "--tp", "1,7"]
    args += ["--replicas", "1", "--requests", "3", "--workers", "1", "--slo-ttft-p90", "100"]
    r = sim([*args, "--out", tmp_path / "p.csv"], tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p.csv").is_file()


def _replay_args(tmp_path, path, *more):
    return [
        "replay",
        path,
        "--engine",
        "tgi",
        "--endpoint",
        "http://127.0.0.1:9",
        "--no-meter",
        *more,
        "--out",
        tmp_path / "m",
        "--quiet",
    ]


@pytest.mark.parametrize(
    "sets",
    [
        ["workload.requests=100000000"],
        # the tokens' time stamps (the 1e6 requests alone need 4 GB)
        ["workload.requests=1000000", "workload.output_tokens={kind: fixed, value: 100000}"],
        # the meter's readings over 32 years of arrivals (1000 requests)
        ["workload.requests=1000", "workload.arrival.interval_ms=1000000000"],
    ],
)
def test_replay_refuses_a_replay_that_cannot_fit(tmp_path, sets):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    more = [a for s in sets for a in ("--set", s)]
    _assert_memory_refusal(refused(_replay_args(tmp_path, path, *more), tmp_path), path)


def test_replay_force_skips_the_estimate(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    (tmp_path / "f").write_text("x")
    args = _replay_args(tmp_path, path, "--set", "workload.requests=100000000", "--force")
    args[args.index("--out") + 1] = tmp_path / "f" / "sub"
    line = refused(args, tmp_path)
    assert "is a file" in line and "GiB" not in line


def test_replay_estimate_counts_tokens_and_meter_readings():
    """A replay holds more than the simulated run of the same scenario: a time stamp per
    generated token and the energy readings over the arrivals' span."""
    scen = load_scenario_dict(copy.deepcopy(SMALL), "small", {"workload.requests": 10**5})
    run, replay = estimate_memory(scen), estimate_replay_memory(scen)
    tokens, readings = 10**5 * 5, (10**5 - 1) * 0.5 / 0.02
    assert replay.bytes == pytest.approx(run.bytes + 200 * tokens + 200 * readings)
    assert replay.bytes < memory_limit()  # the control replay below fits anywhere


@pytest.mark.parametrize("gpus", ["a", "0,x", "-1", "0,0", "", "1.5", ","])
def test_replay_bad_gpus_is_one_line(tmp_path, gpus):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    line = refused(_replay_args(tmp_path, path, "--gpus", gpus), tmp_path)
    assert "--gpus" in line


def _sparse(path, size: int):
    """A file of `size` bytes that takes no disk (its bytes are never read)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_a_huge_trace_is_refused_before_it_is_read(tmp_path):
    """A trace is read whole whatever workload.requests says: an 8 TB one (sparse, so the
    test writes nothing) is refused by the estimate, not by MemoryError after minutes."""
    _sparse(tmp_path / "trace.csv", 2**43)
    data = copy.deepcopy(SMALL)
    data["workload"] = {"requests": 3, "arrival": {"kind": "trace", "path": "trace.csv"}}
    path = write_scenario(tmp_path / "s.yaml", data)
    line = refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)
    _assert_memory_refusal(line, path)


def test_a_huge_profile_or_summary_is_refused_before_it_is_read(tmp_path):
    path = write_scenario(tmp_path / "s.yaml", SMALL)
    prof = _sparse(tmp_path / "p.json", 2**40)
    line = refused(["run", path, "--profile", prof, "--out", tmp_path / "o", "--quiet"], tmp_path)
    assert "p.json" in line and "larger than" in line
    assert sim(["run", path, "--out", tmp_path / "a", "--quiet"], tmp_path).exit_code == 0
    _sparse(tmp_path / "a" / "summary.json", 2**40)
    line = refused(["compare", tmp_path / "a", tmp_path / "a", "--out", tmp_path / "c"], tmp_path)
    assert "summary.json" in line and "larger than" in line
