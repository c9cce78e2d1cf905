"""`sim sweep`: grid parsing, local and Dask execution, resume, the table and the plot.

Small grids of a 0.5B model and traces of tens of requests keep each test well under a second
(the Dask one starts an in-process LocalCluster: a couple of seconds).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from llm_energy_sim.analysis import sweep
from llm_energy_sim.analysis.grid import parse_axis, parse_sets, point_key
from llm_energy_sim.analysis.sweep import journal_path, read_journal, run_sweep
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.scenario import load_scenario
from llm_energy_sim.results.accounting import requests_frame, summarize
from llm_energy_sim.simulation import simulate

BASE = {
    "name": "small",
    "model": "qwen2.5-0.5b",
    "dtype": "bfloat16",
    "server": {"kind": "tgi"},
    "workload": {
        "requests": 40,
        "arrival": {"kind": "fixed", "interval_ms": 200},
        "prompt_tokens": {"kind": "uniform", "min": 100, "max": 400},
        "output_tokens": {"kind": "uniform", "min": 5, "max": 30},
    },
}


@pytest.fixture
def scen(tmp_path):
    p = tmp_path / "small.yaml"
    p.write_text(yaml.safe_dump(BASE))
    return p


# ---- grid parsing -----------------------------------------------------------------------------
def test_axis_values_are_yaml_and_flow_mappings_keep_their_commas():
    key, vals = parse_axis(
        "workload.arrival={kind: poisson, rate: 2},{kind: fixed, interval_ms: 5}"
    )
    assert key == "workload.arrival"
    assert vals == [{"kind": "poisson", "rate": 2}, {"kind": "fixed", "interval_ms": 5}]
    assert parse_axis("hardware.replicas=1, 2,4") == ("hardware.replicas", [1, 2, 4])
    assert parse_axis("server.chunked_prefill=true,false")[1] == [True, False]


def test_grid_is_the_cartesian_product_in_order():
    pts = parse_sets(["dtype=bfloat16,int8", "hardware.replicas=1,2,3"])
    assert len(pts) == 6
    assert pts[0] == {"dtype": "bfloat16", "hardware.replicas": 1}
    assert pts[-1] == {"dtype": "int8", "hardware.replicas": 3}
    assert parse_sets([]) == [{}]
    assert sweep.parse_sets is parse_sets  # still importable from llm_energy_sim.analysis.sweep


@pytest.mark.parametrize("bad", ["dtype", "=1,2", "dtype=a,,b", "x=1,2"])
def test_bad_axes_are_user_errors(bad):
    with pytest.raises(UserError):
        parse_sets([bad, "x=3"] if bad == "x=1,2" else [bad])


# ---- running ----------------------------------------------------------------------------------
def test_rows_hold_the_same_numbers_as_a_direct_run(scen, tmp_path):
    df = run_sweep(
        scen, parse_sets(["dtype=bfloat16,int8"]), tmp_path / "t.csv", workers=2, progress=False
    )
    for dtype in ("bfloat16", "int8"):
        res = simulate(load_scenario(scen, {"dtype": dtype}))
        direct = summarize(res, requests_frame(res))
        row = df[df["set.dtype"] == dtype].iloc[0]
        assert row["energy.total_j"] == pytest.approx(direct["energy"]["total_j"], rel=1e-12)
        assert row["latency_s.ttft.p90"] == pytest.approx(direct["latency_s"]["ttft"]["p90"])
    # and the physics shows through: bitsandbytes int8 prefill costs more than bfloat16
    by = df.set_index("set.dtype")
    assert by.loc["int8", "energy.prefill_j"] > by.loc["bfloat16", "energy.prefill_j"]


def test_requests_option_shortens_every_run(scen, tmp_path):
    df = run_sweep(scen, [{}], tmp_path / "t.csv", workers=1, requests=7, progress=False)
    assert df["requests.total"].tolist() == [7]


def test_an_interrupted_sweep_resumes_without_rerunning_done_points(scen, tmp_path):
    table = tmp_path / "sw" / "sweep.csv"
    pts = parse_sets(["dtype=bfloat16,float32", "hardware.replicas=1,2"])
    run_sweep(scen, pts[:2], table, workers=2, progress=False)  # killed after two points...
    with journal_path(table).open("a") as f:
        f.write('{"point": "{\\"dtype\\": \\"float32\\"')  # ...in the middle of a third write
    first = {r["point"]: r for r in read_journal(journal_path(table))}
    assert len(first) == 2

    df = run_sweep(scen, pts, table, workers=2, progress=False)

    rows = read_journal(journal_path(table))
    assert len(rows) == 4  # the two done points were not run again
    assert sorted(r["point"] for r in rows) == sorted(point_key(p) for p in pts)
    for key, row in first.items():  # and their rows are the ones written before the kill
        assert next(r for r in rows if r["point"] == key) == row
    assert len(df) == 4 and df["point"].tolist() == [point_key(p) for p in pts]
    assert pd.read_csv(table).shape[0] == 4


def test_resume_refuses_a_sweep_with_other_settings_unless_restarted(scen, tmp_path):
    table = tmp_path / "sweep.csv"
    run_sweep(scen, [{}], table, workers=1, requests=10, progress=False)
    with pytest.raises(UserError, match="another scenario or --requests"):
        run_sweep(scen, [{}], table, workers=1, requests=20, progress=False)
    df = run_sweep(scen, [{}], table, workers=1, requests=20, progress=False, restart=True)
    assert df["requests.total"].tolist() == [20]
    assert len(read_journal(journal_path(table))) == 1


def test_a_point_that_does_not_fit_is_a_row_not_a_crash(scen, tmp_path):
    df = run_sweep(
        scen,
        parse_sets(["model=qwen2.5-0.5b,llama-3.1-70b"]),
        tmp_path / "t.csv",
        workers=1,
        progress=False,
    )
    errors = df.set_index("set.model")["error"].fillna("")
    assert errors["qwen2.5-0.5b"] == ""
    assert "does not fit" in errors["llama-3.1-70b"]


def test_sweep_on_a_real_dask_localcluster(scen, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        df = run_sweep(
            scen,
            parse_sets(["hardware.replicas=1,2"]),
            tmp_path / "d.csv",
            dask=cluster.scheduler_address,
            progress=False,
        )
    local = run_sweep(
        scen, parse_sets(["hardware.replicas=1,2"]), tmp_path / "l.csv", workers=1, progress=False
    )
    assert df["set.hardware.replicas"].tolist() == [1, 2]
    pd.testing.assert_series_equal(df["energy.total_j"], local["energy.total_j"])


def test_cli_writes_table_journal_and_plot(scen, tmp_path):
    out = tmp_path / "o"
    r = CliRunner().invoke(
        main,
        [
            "sweep",
            str(scen),
            "--set",
            "dtype=bfloat16,int8",
            "--set",
            "workload.arrival={kind: fixed, interval_ms: 100},{kind: fixed, interval_ms: 400}",
            "--requests",
            "20",
            "--out",
            str(out),
            "--workers",
            "1",
            "--plot",
            "energy.per_request_wh,latency_s.ttft.p90",
        ],
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out / "sweep.csv")
    assert len(df) == 4 and (df["requests.total"] == 20).all()
    assert json.loads(df["set.workload.arrival"][0]) == {"interval_ms": 100, "kind": "fixed"}
    assert len(read_journal(out / "sweep.jsonl")) == 4
    assert (out / "sweep.png").stat().st_size > 10_000
    assert "4 points (0 with errors)" in r.output


def test_cli_user_mistakes_exit_2_on_one_line(scen, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["sweep", str(scen), "--set", "dtype=float99", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "dtype" in r.output and "Traceback" not in r.output
    r = runner.invoke(
        main,
        [
            "sweep",
            str(scen),
            "--set",
            "dtype=bfloat16",
            "--requests",
            "5",
            "--out",
            str(tmp_path / "p"),
            "--plot",
            "energy.nope",
            "--quiet",
        ],
    )
    assert r.exit_code == 2 and "energy.nope" in r.output


def test_parquet_table_or_a_clear_error_without_pyarrow(scen, tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pyarrow"):
            run_sweep(scen, [{}], tmp_path / "t.parquet", workers=1, requests=5, progress=False)
        return
    run_sweep(scen, [{}], tmp_path / "t.parquet", workers=1, requests=5, progress=False)
    assert pd.read_parquet(tmp_path / "t.parquet")["requests.total"].tolist() == [5]
