"""results.schema: summary.json of a simulated and of a live run is one typed model that
round-trips; request rows and status values are the schema's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import scenario

from llm_energy_sim.engine.request import RequestStatus
from llm_energy_sim.live import base as live_base
from llm_energy_sim.results import measured as m
from llm_energy_sim.results.accounting import build_summary, requests_frame, summarize
from llm_energy_sim.results.output import read_summary
from llm_energy_sim.results.schema import (
    LIVE_REQUEST_COLUMNS,
    REQUEST_COLUMNS,
    LiveRequestRow,
    RequestRow,
    Summary,
    check_requests,
)
from llm_energy_sim.results.tables import read_table
from llm_energy_sim.simulation import simulate

LIVE = Path(__file__).resolve().parents[2] / "measurements" / "live"
LIVE_RUN = LIVE / "h200-g" / "fixed500ms"  # a committed `sim replay` (CB engine, metered)


@pytest.fixture(scope="module")
def simulated():
    scen = scenario(
        server={"kind": "tgi", "max_concurrent_requests": 8},
        workload={
            "requests": 40,
            "arrival": {"kind": "fixed", "interval_ms": 20},
            "prompt_tokens": {"kind": "uniform", "min": 100, "max": 2000},
            "output_tokens": {"kind": "uniform", "min": 5, "max": 200},
        },
    )
    res = simulate(scen)
    df = requests_frame(res)
    return res, df, build_summary(res, df, grid_g_per_kwh=400.0)


def test_simulated_summary_round_trips(simulated):
    _, _, summary = simulated
    text = json.dumps(summary.to_dict(), indent=2)
    again = Summary.model_validate(json.loads(text))
    assert again == summary
    assert json.dumps(again.to_dict(), indent=2) == text


def test_simulated_summary_has_the_sim_run_keys(simulated):
    res, df, summary = simulated
    d = summary.to_dict()
    assert d["host_time_factor"] == res.scenario.hardware.host_time_factor
    assert "measured" not in d and "errors" not in d["requests"]
    assert "attribution" not in d["energy"]
    assert d["energy"]["co2_g"] == pytest.approx(d["energy"]["total_j"] / 3.6e6 * 400.0)
    # the queue limit rejects some of the burst: counts add up to the frame
    n = df["status"].value_counts()
    assert d["requests"]["rejected_429"] == n.get("rejected_429", 0) > 0
    assert d["requests"]["completed"] == n["ok"] == len(df) - d["requests"]["rejected_429"]
    # the parts of the energy add up, and sim run's dict form is the model's
    assert d["energy"]["busy_j"] + d["energy"]["idle_j"] == pytest.approx(d["energy"]["total_j"])
    assert df["energy_j"].sum() == pytest.approx(d["energy"]["total_j"])
    assert summarize(res, df, 400.0) == d


def test_request_rows_are_the_schema(simulated):
    _, df, _ = simulated
    assert list(df.columns) == list(REQUEST_COLUMNS)
    check_requests(df)
    rows = [RequestRow.model_validate(r) for r in df.to_dict("records")]
    assert {r.status for r in rows} <= set(RequestStatus)
    bad = df.assign(status="lost")
    with pytest.raises(ValueError, match="unknown status"):
        check_requests(bad)
    with pytest.raises(ValueError, match="lacks columns"):
        check_requests(df.drop(columns="ttft_s"))


def test_one_set_of_status_values():
    """The live engines' statuses are the simulator's members, so both rows share them."""
    assert live_base.OK is RequestStatus.OK
    assert live_base.REJECTED_429 is RequestStatus.REJECTED_QUEUE_FULL
    assert live_base.UNFINISHED is RequestStatus.UNFINISHED
    assert {live_base.ERROR, live_base.TIMEOUT} == {RequestStatus.ERROR, RequestStatus.TIMEOUT}
    assert str(RequestStatus.OK) == "ok" and f"{RequestStatus.REJECTED_TOO_LONG}" == "rejected_422"
    assert json.dumps([RequestStatus.TIMEOUT]) == '["timeout"]'


@pytest.mark.skipif(not (LIVE_RUN / "summary.json").exists(), reason="no committed live run")
def test_live_summary_rebuilt_from_the_committed_run():
    """summarize_measured on a committed replay's own frames gives back its summary.json
    (every key and value), and that file round-trips through the model unchanged."""
    text = (LIVE_RUN / "summary.json").read_text()
    committed = json.loads(text)
    assert read_summary(LIVE_RUN).to_dict() == committed
    df = read_table(LIVE_RUN, "requests")
    raw = read_table(LIVE_RUN, "energy_samples")
    samples = m.EnergySamples(
        raw["t_s"].to_numpy(float),
        raw[[c for c in raw.columns if c.startswith("energy_j_g")]].to_numpy(float),
    )
    t_end = committed["makespan_s"]
    df, idle = m.attribute_energy(df[[c for c in df.columns if "energy" not in c]], samples, t_end)
    e = committed["energy"]
    deep_idle_w = e["deep_idle_floor_j"] / committed["gpus"] / t_end
    scen = _scenario_of(committed)
    got = m.summarize_measured(
        scen,
        df,
        samples,
        t_end,
        idle,
        committed["server_limits"],
        committed["measured"],
        deep_idle_w,
    ).to_dict()
    committed.pop("host_speed", None)  # added by record_host_speed after the replay
    assert list(got) == list(committed)
    _assert_same(got, committed)


def _scenario_of(summary: dict):
    from llm_energy_sim.config.scenario import load_scenario

    path = Path(__file__).resolve().parents[2] / "scenarios" / "validation" / "fixed500ms.yaml"
    scen = load_scenario(path, {"hardware.gpu": "h200"})
    assert scen.name == summary["scenario"]
    return scen


def _assert_same(a, b, where="summary"):
    if isinstance(b, dict):
        assert list(a) == list(b), where
        for k in b:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), where
    else:
        assert a == b, where


def test_live_rows_and_unmetered_summary():
    """A live run without a meter: energy figures are all null (not zeros), the live
    request columns are there, errors and timeouts are counted."""
    from llm_energy_sim.live.base import RequestRecord

    scen = scenario()
    records = [
        RequestRecord(
            0,
            0.0,
            10,
            5,
            send_s=0.0,
            start_s=0.01,
            first_token_s=0.1,
            finish_s=0.5,
            generated_tokens=5,
            status=RequestStatus.OK,
        ),
        RequestRecord(1, 0.2, 12, 4, send_s=0.2, status=RequestStatus.TIMEOUT, error="late"),
        RequestRecord(2, 0.3, 12, 4, send_s=0.3, status=RequestStatus.ERROR, error="500"),
    ]
    df = m.base_requests_frame(records)
    samples = m.EnergySamples(np.array([0.0, 0.5]), np.zeros((2, 0)))
    df, idle = m.attribute_energy(df, samples, 0.5)
    check_requests(df, live=True)
    assert set(LIVE_REQUEST_COLUMNS) == set(df.columns)
    LiveRequestRow.model_validate(df.iloc[0].to_dict())
    s = m.summarize_measured(scen, df, samples, 0.5, idle, {}, {"engine": "x"}, None).to_dict()
    assert s["requests"] == {
        "total": 3,
        "completed": 1,
        "rejected_429": 0,
        "rejected_422": 0,
        "unfinished": 0,
        "errors": 1,
        "timeouts": 1,
    }
    assert all(v is None for v in s["energy"].values()) and "attribution" in s["energy"]
    assert s["gpus"] == 1 and s["steps"] is None and s["profile"] is None
    assert s["latency_s"]["ttft"]["p50"] == pytest.approx(0.1)
