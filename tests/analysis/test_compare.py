"""sim compare on the committed live runs (measurements/live/) against predictions kept as
fixtures (tests/data/predicted/, README there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_energy_sim.analysis.compare import compare_dirs
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.tables import read_table

LIVE = Path(__file__).resolve().parents[2] / "measurements" / "live"
PREDICTED = Path(__file__).resolve().parents[1] / "data" / "predicted"
PRED, MEAS = PREDICTED / "bootstrap-fixed500ms", LIVE / "h100" / "fixed500ms"


def test_error_table_on_committed_results(tmp_path):
    res = CliRunner().invoke(main, ["compare", str(PRED), str(MEAS), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "compare.json").read_text())
    rows = {(r["metric"], r["unit"]): r for r in data["metrics"]}
    e = rows[("energy per request (total)", "Wh")]
    assert e["error"] == pytest.approx(e["predicted"] / e["measured"] - 1)
    measured = json.loads((MEAS / "summary.json").read_text())
    assert e["measured"] == pytest.approx(measured["energy"]["per_request_wh"])
    for key in ("TTFT p50", "TPOT p90", "E2E p50", "makespan", "total energy"):
        assert any(k[0] == key for k in rows)
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert len((tmp_path / "compare_requests.csv").read_text().splitlines()) == 101


def test_different_traces_are_refused():
    with pytest.raises(UserError, match="requests"):
        compare_dirs(PREDICTED / "bootstrap-sequential", MEAS)


def test_measured_energy_adds_up():
    """The measured per-request split (time share + idle share) sums to the metered total."""
    for case in ("burst", "fixed50ms", "fixed300ms", "fixed500ms", "uniform", "sequential"):
        s = json.loads((LIVE / "h100" / case / "summary.json").read_text())
        df = read_table(LIVE / "h100" / case, "requests")
        assert df["energy_j"].sum() == pytest.approx(s["energy"]["total_j"], rel=1e-6)


def test_tpot_error_by_time_shows_a_slow_episode():
    """Lease C's fixed500ms: a steady load, and for 10 s (30-40 s into the run) tokens came
    110-113 ms apart instead of about 70. The per-request TPOT error is most negative in that
    bin, and the bins' spread is large enough for compare to say so."""
    from llm_energy_sim.analysis.compare import DRIFT_NOTE_SPREAD, drift_spread, tpot_error_by_time

    pr = read_table(PREDICTED / "h200-c-fixed500ms", "requests")
    mr = read_table(LIVE / "h200-c" / "fixed500ms", "requests")
    by_time = tpot_error_by_time(pr, mr)
    assert by_time["requests"].sum() == 100  # every request lands in one bin
    assert (by_time["bin_start_s"].diff().dropna() > 0).all()
    full = by_time[by_time["requests"] >= 3]
    worst = full.loc[full["median_error"].idxmin(), "bin_start_s"]
    assert worst == 30.0
    assert drift_spread(by_time) > DRIFT_NOTE_SPREAD
    # a run compared with itself has no error at any time
    assert drift_spread(tpot_error_by_time(mr, mr)) == pytest.approx(0.0, abs=1e-12)


def test_compare_prints_the_drift(tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "compare",
            str(PREDICTED / "h200-c-fixed500ms"),
            str(LIVE / "h200-c" / "fixed500ms"),
            "--out",
            str(tmp_path),
            "--no-plot",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "speed may have changed during the run" in res.output
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["tpot_error_by_time"]["spread"] > 0.2
