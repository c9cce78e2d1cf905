"""`sim steps` on the committed live runs: the cost model on the engine's own steps."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from llm_energy_sim.analysis.stepcheck import load_steps
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.tables import read_table

LIVE = Path(__file__).resolve().parents[2] / "measurements" / "live"
LEASE_G = LIVE / "h200-g"  # 2026-11-30, steady host (brackets 0.91-1.09)


def _steps(tmp_path, case: str, *extra: str) -> dict:
    args = ["steps", f"scenarios/validation/{case}.yaml", str(LEASE_G / case), "--profile"]
    res = CliRunner().invoke(main, [*args, "h200", *extra, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "steps_check.json").read_text())


def test_cb_step_log_is_costed_within_a_steady_lease(tmp_path):
    """Lease G's host was steady: the model's cost of the engine's very steps is within 15%
    of what they took, decode and prefill; the host factor defaults to the run's brackets."""
    s = _steps(tmp_path, "fixed500ms")
    assert s["source"].startswith("steps.parquet")  # the engine step log, as committed
    brackets = json.loads((LEASE_G / "fixed500ms" / "summary.json").read_text())["host_speed"]
    assert s["host_time_factor"] == pytest.approx(brackets["by_profile"]["h200"], rel=1e-6)
    for kind in ("decode", "prefill"):
        assert 0.85 < s["by_kind"][kind]["ratio_p50"] < 1.15
    df = pd.read_csv(tmp_path / "steps_check.csv")
    assert len(df) == s["steps"] == len(read_table(LEASE_G / "fixed500ms", "steps"))
    assert (df["measured_s"] > 0).all() and (df["predicted_s"] > 0).all()
    assert (tmp_path / "steps_check.png").stat().st_size > 10_000


def test_host_speed_seen_by_the_engine_does_not_depend_on_the_factor_assumed(tmp_path):
    """Host-bound steps' predicted time scales with host_time_factor, so factor x ratio (what
    the engine saw) is the same whichever factor the check starts from."""
    a = _steps(tmp_path / "a", "sequential", "--set", "hardware.host_time_factor=1.0")
    b = _steps(tmp_path / "b", "sequential", "--set", "hardware.host_time_factor=1.6")
    seen_a, seen_b = a["host_time_factor_seen_by_engine"], b["host_time_factor_seen_by_engine"]
    assert seen_a == pytest.approx(seen_b, rel=0.02)
    assert b["by_kind"]["decode"]["ratio_p50"] < a["by_kind"]["decode"]["ratio_p50"]


def test_sequential_steps_are_rebuilt_from_token_times():
    """HF generate serves one request at a time: one prefill per request and one decode per
    later token, decode KV = prompt + k."""
    steps, source = load_steps(LEASE_G / "sequential")
    assert source.startswith("token_times.csv")
    req = read_table(LEASE_G / "sequential", "requests")
    ok = req[req["status"] == "ok"]
    assert (steps["prefill"].map(len) == 1).sum() == len(ok)
    assert steps["n_decode"].sum() == (ok["generated_tokens"] - 1).sum()
    assert steps["decode_ctx_sum"].sum() == sum(
        p * (g - 1) + (g - 1) * g // 2
        for p, g in zip(ok["prompt_tokens"], ok["generated_tokens"], strict=True)
    )
    assert (steps["end_s"] >= steps["start_s"]).all()


def test_a_batching_run_without_a_step_log_is_refused(tmp_path):
    """Older CB runs have token times only; their steps cannot be rebuilt from them."""
    with pytest.raises(UserError, match="one-request-at-a-time"):
        load_steps(LIVE / "h200-e" / "fixed500ms")
    res = CliRunner().invoke(
        main, ["steps", "scenarios/validation/fixed500ms.yaml", str(tmp_path / "nope")]
    )
    assert res.exit_code != 0 and "no such results directory" in res.output
    res = CliRunner().invoke(
        main, ["steps", "scenarios/validation/uniform.yaml", str(LEASE_G / "fixed500ms")]
    )
    assert res.exit_code == 2 and "run of scenario 'val-fixed500ms'" in res.output


def _sim_steps(tmp_path, case: str, *extra: str):
    args = ["run", f"scenarios/validation/{case}.yaml", "--profile", "h200"]
    args += ["--set", "hardware.gpu=h200", "--step-log", *extra, "--out", str(tmp_path), "--quiet"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return tmp_path


@pytest.mark.parametrize(
    "lease,case", [("h200-g", "burst_warm"), ("h200-h", "burst"), ("h200-i", "burst")]
)
def test_the_simulated_scheduler_batches_a_burst_as_the_engine_did(tmp_path, lease, case):
    """All 100 requests queued at once: the schedule does not depend on step times, so the
    transformers-cb model must reproduce the live engine's steps exactly, chunk by chunk."""
    measured = LIVE / lease / case
    pred = _sim_steps(tmp_path / "pred", case, "--host-speed", str(measured))
    args = ["steps", f"scenarios/validation/{case}.yaml", str(measured), "--profile", "h200"]
    args += ["--predicted", str(pred), "--out", str(tmp_path / "check"), "--no-plot"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    sched = json.loads((tmp_path / "check" / "steps_check.json").read_text())["schedule"]
    n = len(read_table(measured, "steps"))
    assert sched["steps"] == {"predicted": n, "measured": n}
    assert sched["identical_steps"] == n and sched["first_divergence"] is None


def test_fast_forward_steps_are_the_step_by_step_steps(tmp_path):
    """Closed-form decode segments, expanded, are the steps the reference path simulates one
    by one: same compositions, same times."""
    from llm_energy_sim.results.steptable import read_steps

    a = read_steps(_sim_steps(tmp_path / "ff", "fixed500ms", "--requests", "30") / "steps.csv")
    b = read_steps(
        _sim_steps(
            tmp_path / "step", "fixed500ms", "--requests", "30", "--set", "fast_forward=false"
        )
        / "steps.csv"
    )
    cols = ["prefill", "n_decode", "decode_ctx_sum"]
    assert a[cols].equals(b[cols])
    assert a["end_s"].to_numpy() == pytest.approx(b["end_s"].to_numpy(), rel=1e-9, abs=1e-9)
    assert (a["end_s"] > a["start_s"]).all()


def test_predicted_dir_without_a_step_log_is_refused(tmp_path):
    args = ["steps", "scenarios/validation/fixed500ms.yaml", str(LEASE_G / "fixed500ms")]
    res = CliRunner().invoke(main, [*args, "--predicted", str(tmp_path), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--step-log" in res.output


def test_the_speed_an_engine_saw_predicts_the_next_run(tmp_path):
    """`sim run --host-speed steps_check.json` takes the factor `sim steps` measured on a
    live run (here lease G's fixed300ms), against the same profile only."""
    s = _steps(tmp_path / "check", "fixed300ms")
    check = tmp_path / "check" / "steps_check.json"
    args = ["run", "scenarios/validation/fixed500ms.yaml", "--profile", "h200", "--requests", "5"]
    res = CliRunner().invoke(
        main, [*args, "--host-speed", str(check), "--out", str(tmp_path / "p"), "--quiet"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    runs = summary["host_time_factor_runs"]
    assert runs[0]["factor"] == pytest.approx(s["host_time_factor_seen_by_engine"])
    res = CliRunner().invoke(
        main,
        ["run", "scenarios/validation/fixed500ms.yaml", "--profile", "h100-sxm"]
        + ["--host-speed", str(check), "--out", str(tmp_path / "q"), "--quiet"],
    )
    assert res.exit_code == 2 and "measured against profile 'h200'" in res.output
