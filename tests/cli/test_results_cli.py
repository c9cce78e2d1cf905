"""Self-describing, clean result directories through the CLI: provenance recorded, reruns
replace every file of the previous run, `sim compare` and `sim steps` write to their own
directory and never into the measured one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import llm_energy_sim
from llm_energy_sim.cli.main import main
from llm_energy_sim.results.tables import read_table

REPO = Path(__file__).resolve().parents[2]
SCEN = "scenarios/validation/fixed500ms.yaml"
LIVE_RUN = REPO / "measurements" / "live" / "h200-g" / "fixed500ms"  # a committed sim replay
needs_live = pytest.mark.skipif(
    not (LIVE_RUN / "summary.json").exists(), reason="no committed live run"
)


def _sim(*args: str) -> None:
    r = CliRunner().invoke(main, ["run", *args, "--quiet"])
    assert r.exit_code == 0, r.output


def _listing(d: Path) -> dict[str, float]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in sorted(d.rglob("*"))}


def test_run_records_its_provenance(tmp_path):
    out = tmp_path / "res"
    _sim(str(REPO / SCEN), "--requests", "12", "--set", "dtype=float16", "--out", str(out))
    s = json.loads((out / "summary.json").read_text())
    p = s["provenance"]
    assert p["command"] == "sim run" and p["scenario_path"] == str(REPO / SCEN)
    assert p["overrides"] == {"set": ["dtype=float16"], "requests": 12}
    assert p["version"] == llm_energy_sim.__version__
    assert "commit" in p and "created_utc" in p
    assert s["dtype"] == "float16" and s["requests"]["total"] == 12


def test_rerun_without_plot_leaves_no_png(tmp_path):
    out = tmp_path / "res"
    _sim(str(REPO / SCEN), "--requests", "10", "--out", str(out), "--plot", "--step-log")
    assert {p.name for p in out.glob("*.png")} == {
        "power.png",
        "batch_queue.png",
        "request_energy.png",
        "intervals.png",  # the 80% prediction intervals
    }
    assert (out / "steps.csv").exists()
    _sim(str(REPO / SCEN), "--requests", "10", "--out", str(out))
    assert sorted(p.name for p in out.iterdir()) == [
        ".complete",
        "requests.parquet",
        "summary.json",
        "timeline.csv",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # nothing left beside it


def test_run_refuses_to_replace_a_directory_of_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    r = CliRunner().invoke(main, ["run", SCEN, "--requests", "5", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "summary.json" in r.output
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_reading_a_dir_without_summary_is_a_user_error(tmp_path):
    (tmp_path / "requests.csv").write_text("request_id\n0\n")
    r = CliRunner().invoke(main, ["compare", str(tmp_path), str(tmp_path), "--out", "x"])
    assert r.exit_code == 2
    assert "not a results directory (no summary.json)" in r.output


@needs_live
def test_compare_writes_to_its_own_out_not_into_measured(tmp_path, monkeypatch):
    pred = tmp_path / "pred"
    _sim(SCEN, "--profile", "h200", "--set", "hardware.gpu=h200", "--out", str(pred))
    before = _listing(LIVE_RUN)
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["compare", str(pred), str(LIVE_RUN), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [
        "compare.csv",
        "compare.json",
        "compare.png",
        "compare_requests.csv",
    ]
    assert _listing(LIVE_RUN) == before
    assert sorted(p.name for p in pred.iterdir()) == [
        ".complete",
        "requests.parquet",
        "summary.json",
        "timeline.csv",
    ]
    # without --out: results/compare-<scenario> under the working directory
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["compare", str(pred), str(LIVE_RUN), "--no-plot"])
    assert r.exit_code == 0, r.output
    default = tmp_path / "results" / "compare-val-fixed500ms"
    assert (default / "compare.json").exists() and not (default / "compare.png").exists()
    assert _listing(LIVE_RUN) == before
    # into a compared directory: refused
    r = CliRunner().invoke(main, ["compare", str(pred), str(LIVE_RUN), "--out", str(LIVE_RUN)])
    assert r.exit_code == 2 and "its own" in r.output
    assert _listing(LIVE_RUN) == before


@needs_live
def test_steps_default_out_is_its_own(tmp_path, monkeypatch):
    before = _listing(LIVE_RUN)
    monkeypatch.chdir(tmp_path)
    args = ["steps", str(REPO / SCEN), str(LIVE_RUN), "--profile", "h200", "--no-plot"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    out = tmp_path / "results" / "steps-val-fixed500ms"
    assert sorted(p.name for p in out.iterdir()) == ["steps_check.csv", "steps_check.json"]
    assert _listing(LIVE_RUN) == before


def test_replay_records_provenance_and_reruns_clean(tiny_models, tmp_path):
    """A live replay (HF generate on CPU, tiny random model, no meter) writes its raw files
    with the results, records its provenance, and a rerun replaces the whole directory."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = tmp_path / "meas"
    args = ["replay", SCEN.replace("fixed500ms", "sequential"), "--engine", "transformers"]
    args += ["--device", "cpu", "--no-meter", "--requests", "2", "--set", "model=tiny-llama"]
    args += ["--set", "dtype=float32", "--out", str(out), "--quiet"]
    r = CliRunner().invoke(main, [*args, "--plot"])
    assert r.exit_code == 0, r.output
    assert (out / "power.png").exists()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".complete",
        "energy_samples.csv",
        "requests.csv",
        "summary.json",
        "timeline.csv",
        "token_times.csv",
    ]
    s = json.loads((out / "summary.json").read_text())
    p = s["provenance"]
    assert p["command"] == "sim replay" and p["scenario_path"].endswith("sequential.yaml")
    assert p["overrides"] == {"set": ["model=tiny-llama", "dtype=float32"], "requests": 2}
    assert s["measured"]["completed"] is True and s["requests"]["completed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meas", "models"]


def test_requests_as_csv_on_request_read_the_same(tmp_path):
    """--requests-format csv writes requests.csv (and no Parquet file); both forms read back
    as the same table through results/tables.py."""
    pq_dir, csv_dir = tmp_path / "pq", tmp_path / "csv"
    _sim(str(REPO / SCEN), "--requests", "30", "--out", str(pq_dir))
    _sim(str(REPO / SCEN), "--requests", "30", "--out", str(csv_dir), "--requests-format", "csv")
    assert (csv_dir / "requests.csv").is_file() and not (csv_dir / "requests.parquet").exists()
    a, b = read_table(pq_dir, "requests"), read_table(csv_dir, "requests")
    assert list(a.columns) == list(b.columns) and len(a) == 30
    for c in a.columns:
        if a[c].dtype.kind in "fi":
            np.testing.assert_allclose(a[c], b[c], rtol=1e-15, err_msg=c)
        else:
            assert (a[c].astype(str) == b[c].astype(str)).all(), c
