"""The built-in live engines on CPU with a tiny random model: a few requests through `sim replay`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from llm_energy_sim.cli.main import main

pytest.importorskip("torch")
pytest.importorskip("transformers")


CB_SMALL = ["--set", "server.num_blocks=64", "--set", "server.max_batch_tokens=512"]


def _replay(scenarios: list[str], out, requests: int, extra: list[str]):
    """`sim replay` of validation scenarios on CPU with the tiny random model, unmetered."""
    paths = [f"scenarios/validation/{s}.yaml" for s in scenarios]
    args = ["replay", *paths, "--engine", "transformers", "--device", "cpu", "--no-meter"]
    args += ["--requests", str(requests), "--set", "model=tiny-llama", "--set", "dtype=float32"]
    return CliRunner().invoke(main, [*args, *extra, "--out", str(out), "--quiet"])


@pytest.mark.parametrize(
    "scenario,extra,warm",
    [
        ("fixed50ms", CB_SMALL, True),  # server.cold_start false: warmed up before the trace
        ("burst", CB_SMALL, False),  # server.cold_start true: the first request pays set-up
        ("sequential", [], True),
    ],
)
def test_cpu_replay(tiny_models, tmp_path, scenario, extra, warm, step_log_check):
    out = tmp_path / scenario
    res = _replay([scenario], out, 5, extra)
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "requests.csv")
    assert (df["status"] == "ok").all()
    assert (df["generated_tokens"] == df["output_tokens"]).all()  # EOS is off
    assert (df["first_token_s"] >= df["send_s"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["completed"] == 5
    assert summary["server_limits"]["warmed_up"] is warm
    if warm and scenario != "sequential":  # CB: one full step's token budget (512 here)
        assert summary["server_limits"]["warm_up_tokens"] == 512
    tokens = pd.read_csv(out / "token_times.csv")
    assert len(tokens) == df["generated_tokens"].sum()
    if scenario != "sequential":
        step_log_check(out, df, summary)


def test_a_cold_start_scenario_after_another_is_flagged(tiny_models, tmp_path):
    """burst.yaml promises a fresh engine; replayed second in one process it cannot get one."""
    res = _replay(["fixed50ms", "burst"], tmp_path, 2, CB_SMALL)
    assert res.exit_code == 0, res.output
    assert "burst.yaml sets server.cold_start: true" in res.output
    for name in ("val-fixed50ms", "val-burst"):
        assert (
            json.loads((tmp_path / name / "summary.json").read_text())["requests"]["completed"] == 2
        )
