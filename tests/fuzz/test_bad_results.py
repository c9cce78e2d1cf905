"""Corrupted and incomplete results directories given to `sim compare` and `sim steps`, and
corrupted step logs: refused with exit code 2, one line naming the file (row and column for
a bad cell), nothing written."""

from __future__ import annotations

import shutil

import pytest
from badinput import SMALL, refused, sim, write_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_energy_sim.results.marker import MARKER

FUZZ = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two complete results dirs of the small scenario, one with a step log; the damaged-dir
    cases edit their request table as text, so it is written as CSV (--requests-format csv;
    the readers take either format through results/tables.read_table)."""
    root = tmp_path_factory.mktemp("runs")
    scen = write_scenario(root / "s.yaml", SMALL)
    csv = ["--requests-format", "csv"]
    for name, extra in (("a", csv), ("b", ["--step-log", *csv])):
        r = sim(["run", scen, "--out", root / name, "--quiet", *extra], root)
        assert r.exit_code == 0, r.output
    return root


def _copy(runs, tmp_path, name="b"):
    d = tmp_path / name
    shutil.copytree(runs / name, d)
    return d


def test_a_complete_pair_compares(runs, tmp_path):
    a, b = _copy(runs, tmp_path, "a"), _copy(runs, tmp_path, "b")
    r = sim(["compare", a, b, "--out", tmp_path / "cmp", "--no-plot"], tmp_path)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "damage",
    [
        "no-marker",
        "summary-empty",
        "summary-garbage",
        "summary-list",
        "summary-deep",
        "summary-not-utf8",
        "requests-missing",
        "requests-empty",
        "requests-header-only",
        "requests-torn",
        "requests-no-column",
        "timeline-missing",
        "timeline-not-utf8",
        "requests-a-directory",
    ],
)
def test_compare_refuses_a_damaged_dir(runs, tmp_path, damage):
    a, b = _copy(runs, tmp_path, "a"), _copy(runs, tmp_path, "b")
    req, summ = b / "requests.csv", b / "summary.json"
    header = req.read_text().splitlines()[0]
    match damage:
        case "no-marker":
            (b / MARKER).unlink()
        case "summary-empty":
            summ.write_text("")
        case "summary-garbage":
            summ.write_text("{not json")
        case "summary-list":
            summ.write_text("[1, 2]")
        case "summary-deep":
            summ.write_text("[" * 100000 + "]" * 100000)
        case "summary-not-utf8":
            summ.write_bytes(b'{"x": "\xff"}')
        case "requests-missing":
            req.unlink()
        case "requests-empty":
            req.write_text("")
        case "requests-header-only":
            req.write_text(header + "\n")
        case "requests-torn":
            req.write_text(req.read_text()[: len(header) + 15])
        case "requests-no-column":
            req.write_text("request_id\n0\n1\n2\n")
        case "timeline-missing":
            (b / "timeline.csv").unlink()
        case "timeline-not-utf8":
            (b / "timeline.csv").write_bytes(b"t_start_s,t_end_s\n\xff\n")
        case "requests-a-directory":
            req.unlink()
            req.mkdir()
    refused(["compare", a, b, "--out", tmp_path / "cmp", "--no-plot"], tmp_path)


@FUZZ
@given(
    st.sampled_from(["arrival_s", "prompt_tokens", "energy_j", "ttft_s", "request_id"]),
    st.integers(0, 2),
    st.sampled_from(["abc", "inf", "-inf", "1e999", "x1", "2.5"]),
)
def test_compare_refuses_a_bad_cell(runs, tmp_path_factory, column, row, cell):
    root = tmp_path_factory.mktemp("cell")
    a, b = _copy(runs, root, "a"), _copy(runs, root, "b")
    import pandas as pd

    df = pd.read_csv(b / "requests.csv", dtype=str)
    if cell == "2.5" and column in ("arrival_s", "energy_j", "ttft_s"):
        cell = "abc"  # fractional is fine there
    df.loc[row, column] = cell
    df.to_csv(b / "requests.csv", index=False)
    line = refused(["compare", a, b, "--out", root / "cmp", "--no-plot"], root)
    assert "requests.csv" in line and column in line and f"row {row + 2}" in line


@pytest.mark.parametrize(
    "steps",
    [
        "",
        "start_s,end_s\n0,1\n",
        "start_s,end_s,n_prefill,prefill,n_decode,decode_ctx_sum,replica\nabc,1,0,,1,5,0\n",
        "start_s,end_s,n_prefill,prefill,n_decode,decode_ctx_sum,replica\n0,1,1,10:x,0,0,0\n",
        "start_s,end_s,n_prefill,prefill,n_decode,decode_ctx_sum,replica\n0,1,1,10,0,0,0\n",
        "start_s,end_s,n_prefill,prefill,n_decode,decode_ctx_sum,replica\n0,inf,0,,1,5,0\n",
        "start_s,end_s,n_prefill,prefill,n_decode,decode_ctx_sum,replica\n0,1,0,,1.5,5,0\n",
        "start_s,end_s,n_prefill,prefill,n_decode,decode_ctx_sum,replica\n2,1,0,,1,5,0\n",
        "start_s,end_s,n_prefill,prefill,n_decode,decode_ctx_sum,replica\n0,1,0,,-1,5,0\n",
    ],
)
def test_steps_refuses_a_bad_step_log(runs, tmp_path, steps):
    b = _copy(runs, tmp_path, "b")
    (b / "steps.csv").write_text(steps)
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    line = refused(
        ["steps", scen, b, "--predicted", b, "--out", tmp_path / "chk", "--no-plot"], tmp_path
    )
    assert "steps.csv" in line


def test_steps_refuses_an_incomplete_dir(runs, tmp_path):
    b = _copy(runs, tmp_path, "b")
    (b / MARKER).unlink()
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    line = refused(["steps", scen, b, "--out", tmp_path / "chk", "--no-plot"], tmp_path)
    assert "incomplete" in line


def test_host_speed_from_an_incomplete_replay_dir(runs, tmp_path):
    """--host-speed DIR reads a replay's results directory: without its marker, refused."""
    b = _copy(runs, tmp_path, "b")
    (b / "hostspeed.csv").write_text("tag,utc\nbefore-0,\n")
    (b / MARKER).unlink()
    scen = write_scenario(tmp_path / "s.yaml", SMALL)
    line = refused(["run", scen, "--host-speed", b, "--out", tmp_path / "o", "--quiet"], tmp_path)
    assert "incomplete" in line


def test_compare_default_out_stays_in_results(runs, tmp_path):
    """A summary whose scenario is a path (edited by hand) cannot steer the default --out."""
    import json

    a, b = _copy(runs, tmp_path, "a"), _copy(runs, tmp_path, "b")
    for d in (a, b):
        s = json.loads((d / "summary.json").read_text())
        s["scenario"] = "../../escaped"
        (d / "summary.json").write_text(json.dumps(s))
    assert "not a name" in refused(["compare", a, b, "--no-plot"], tmp_path)
