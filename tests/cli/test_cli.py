"""The CLI as a user runs it: every shipped scenario, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import SCENARIOS

from llm_energy_sim.cli.main import main
from llm_energy_sim.results.tables import read_table

GOOD = {
    "name": "x",
    "model": "llama-3.1-8b",
    "dtype": "bfloat16",
    "server": {"kind": "tgi"},
    "workload": {
        "requests": 5,
        "arrival": {"kind": "fixed", "interval_ms": 500},
        "prompt_tokens": {"kind": "fixed", "value": 100},
        "output_tokens": {"kind": "fixed", "value": 10},
    },
}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_runs(path: Path, tmp_path: Path):
    out = tmp_path / "res"
    r = CliRunner().invoke(
        main, ["run", str(path), "--requests", "40", "--out", str(out), "--plot"]
    )
    assert r.exit_code == 0, r.output
    assert "energy per request" in r.output and "profile:" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["completed"] > 0
    assert summary["energy"]["total_j"] >= summary["energy"]["deep_idle_floor_j"]
    req = read_table(out, "requests")  # requests.parquet by default
    assert (out / "requests.parquet").is_file()
    assert len(req) == 40
    for col in (
        "arrival_s",
        "start_s",
        "first_token_s",
        "finish_s",
        "prompt_tokens",
        "output_tokens",
        "energy_j",
    ):
        assert col in req.columns
    tl = pd.read_csv(out / "timeline.csv")
    assert {"t_start_s", "power_total_w"} <= set(tl.columns)
    assert any(c.startswith("batch_r") for c in tl.columns) and any(
        c.startswith("queue_r") for c in tl.columns
    )
    for png in ("power.png", "batch_queue.png", "request_energy.png"):
        assert (out / png).stat().st_size > 10_000


def _bad(tmp_path: Path, mutate) -> tuple[int, str, Path]:
    data = json.loads(json.dumps(GOOD))
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_energy_sim.cli.main",
            "run",
            str(path),
            "--quiet",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    return r.returncode, r.stderr, path


CASES = {
    "unknown key": (lambda d: d.update(colour="blue"), ["colour", "unknown field"]),
    "wrong type": (
        lambda d: d["workload"].update(requests="many"),
        ["workload.requests", "integer"],
    ),
    "negative rate": (
        lambda d: d["workload"].update(arrival={"kind": "poisson", "rate": -2}),
        ["workload.arrival.poisson.rate", "greater than or equal to 0.000000001"],
    ),
    "missing model card": (lambda d: d.update(model="gpt-17"), ["model", "gpt-17", "llama-3.1-8b"]),
    "unknown dtype": (lambda d: d.update(dtype="int3"), ["dtype", "bfloat16", "int4"]),
    "unknown server kind": (
        lambda d: d["server"].update(kind="triton"),
        ["server", "sequential", "tgi"],
    ),
    "missing field": (lambda d: d.pop("workload"), ["workload", "required"]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_one_line_error_exit_2(tmp_path: Path, case: str):
    mutate, words = CASES[case]
    code, err, path = _bad(tmp_path, mutate)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert str(path) in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_missing_file_and_bad_override(tmp_path: Path):
    r = CliRunner().invoke(main, ["run", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "file not found" in r.output
    good = tmp_path / "g.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    r = CliRunner().invoke(main, ["run", str(good), "--set", "dtype"])
    assert r.exit_code == 2 and "key=value" in r.output
    r = CliRunner().invoke(main, ["run", str(good), "--profile", "no-such-profile"])
    assert r.exit_code == 2 and "h100-sxm" in r.output


def test_set_override_changes_the_run(tmp_path: Path):
    good = tmp_path / "g.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    outs = {}
    for dt in ("bfloat16", "int8"):
        r = CliRunner().invoke(
            main, ["run", str(good), "--set", f"dtype={dt}", "--out", str(tmp_path / dt), "--quiet"]
        )
        assert r.exit_code == 0, r.output
        outs[dt] = json.loads((tmp_path / dt / "summary.json").read_text())
    assert outs["int8"]["dtype"] == "int8"
    assert outs["int8"]["energy"]["prefill_j"] > outs["bfloat16"]["energy"]["prefill_j"]
