"""The ordering check of `sim validate matrix` (issue 17 item 4: the order of dtypes by energy
per request as measured) on the committed H200 matrix, and on pairs built from its scenario
files with known answers: every pair is found from the scenario files themselves, its measured
order from the cases' own summary.json, its predicted order from the matrix's predictions, and a
measured difference inside the run-to-run spread is a tie that compares nothing."""

from __future__ import annotations

import itertools
import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO

from llm_energy_sim.analysis import matrix as mx
from llm_energy_sim.analysis.intervals import t_quantile
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.profile import load_profile
from llm_energy_sim.config.scenario import load_scenario

MATRIX = REPO / "measurements/live/h200-matrix"
INT4 = "mistral-7b-int4-burst_warm"
FP16 = "mistral-7b-float16-burst_warm"


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    out = tmp_path_factory.mktemp("ordering") / "m"
    res = CliRunner().invoke(main, ["validate", "matrix", str(MATRIX), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "validate.json").read_text()), res.output


def _scenarios() -> dict:
    return {p.stem: load_scenario(p) for p in sorted((MATRIX / "scenarios").glob("*.yaml"))}


def _measured_wh(case: str) -> float:
    return json.loads((MATRIX / case / "summary.json").read_text())["energy"]["per_request_wh"]


def test_every_pair_of_one_model_and_server_kind_across_dtypes_is_checked(validated):
    _, meta, _ = validated
    scen = _scenarios()
    want = {
        frozenset((a, b))
        for a, b in itertools.combinations(scen, 2)
        if scen[a].model == scen[b].model
        and scen[a].server.kind == scen[b].server.kind
        and scen[a].dtype != scen[b].dtype
    }
    pairs = meta["ordering"]["pairs"]
    got = {frozenset((p["a"], p["b"])) for p in pairs if p["kind"] in ("dtype", "dtype+")}
    assert got == want and want  # the matrix has such pairs, each one is there
    for p in pairs:  # what else differs comes from the scenario files
        diff = mx.differences(scen[p["a"]], scen[p["b"]])
        assert p["also_differ"] == {
            k: list(v) for k, v in diff.items() if k not in ("model", "dtype")
        }
        assert p["kind"] != "dtype" or not p["also_differ"]


def test_the_matrix_says_so_when_no_pair_differs_only_in_dtype(validated):
    _, meta, printed = validated
    scen = _scenarios()
    only = [
        (a, b)
        for a, b in itertools.combinations(scen, 2)
        if set(mx.differences(scen[a], scen[b])) == {"dtype"}
    ]
    stats = meta["ordering"]["stats"]
    assert stats["dtype"]["pairs"] == len(only)
    first = meta["ordering"]["summary"][0]
    if only:
        assert first.startswith(f"dtype ordering: {stats['dtype']['agree']} of ")
    else:  # nothing to compare: said, not passed
        assert first.startswith("dtype ordering: no pair of cases differs only in dtype")
        assert stats["dtype"]["comparable"] == 0 and stats["dtype"]["agree"] == 0
    loose = stats["dtype+"]
    assert f"{loose['agree']} of {loose['comparable']} comparable pairs agree" in first
    assert f"- {first}\n" in printed and f"- {first}\n" in (validated[0] / "matrix.md").read_text()


def test_orders_follow_from_the_measured_and_predicted_energies(validated):
    out, meta, _ = validated
    pred = pd.read_csv(out / "matrix.csv").set_index("case")["energy_wh_predicted"]
    default = {
        r["case"]: r["energy_per_request_wh_value"] for r in meta["coverage"]["shipped"]["rows"]
    }
    spread = load_profile("h200")[0].run_to_run
    tie = t_quantile(spread.dof) * spread.sigma_log["energy_per_request_wh"]
    for p in meta["ordering"]["pairs"]:
        ma, mb = _measured_wh(p["a"]), _measured_wh(p["b"])
        assert p["measured_wh"] == pytest.approx([ma, mb], rel=1e-12)
        assert p["tie_rel"] == pytest.approx(math.hypot(tie, tie))
        r = math.log(ma / mb)
        want = "=" if abs(r) <= p["tie_rel"] else (">" if r > 0 else "<")
        assert p["measured_order"] == want
        pa, pb = pred[p["a"]], pred[p["b"]]
        assert p["predicted_order"] == (">" if pa > pb else "<" if pa < pb else "=")
        da, db = default[p["a"]], default[p["b"]]
        assert p["predicted_at_default_order"] == (">" if da > db else "<" if da < db else "=")
        if want == "=":
            assert p["agree"] is None
        else:
            assert p["agree"] == (p["predicted_order"] == want)
            assert p["agree_at_default"] == (p["predicted_at_default_order"] == want)
    for kind in mx.PAIR_KINDS:
        s = meta["ordering"]["stats"][kind]
        ps = [p for p in meta["ordering"]["pairs"] if p["kind"] == kind]
        assert s["pairs"] == len(ps)
        assert s["agree"] == sum(p["agree"] is True for p in ps)
        assert s["comparable"] == sum(p["agree"] is not None for p in ps)


def test_across_models_only_pairs_of_one_workload_are_compared(validated):
    _, meta, _ = validated
    scen = _scenarios()
    for p in meta["ordering"]["pairs"]:
        a, b = scen[p["a"]], scen[p["b"]]
        if p["kind"].startswith("model"):
            assert a.model != b.model and not p["also_differ"]
            assert (a.server, a.workload) == (b.server, b.workload)


def _row(case: str, measured: float, predicted: float) -> dict:
    scen = load_scenario(MATRIX / "scenarios" / f"{case}.yaml")
    return {
        "case": case,
        "model": scen.model,
        "dtype": scen.dtype,
        "energy_wh_measured": measured,
        "energy_wh_predicted": predicted,
    }


def test_a_pair_that_differs_only_in_dtype_agrees_disagrees_or_ties():
    # the NF4 case's scenario with the float16 case's 32 requests: only the dtype differs
    scen = {
        INT4: load_scenario(MATRIX / "scenarios" / f"{INT4}.yaml", {"workload.requests": 32}),
        FP16: load_scenario(MATRIX / "scenarios" / f"{FP16}.yaml"),
    }
    assert mx.pair_kind(scen[INT4], scen[FP16]) == "dtype"
    tie = {INT4: 0.01, FP16: 0.01}
    for pred_int4, want in ((0.06, True), (0.02, False)):
        rows = [_row(INT4, 0.08, pred_int4), _row(FP16, 0.03, 0.025)]
        (p,) = mx.ordering_pairs(rows, scen, tie)
        assert (p["label_a"], p["measured_order"], p["agree"]) == ("int4", ">", want)
        line = mx.ordering_summary(mx.ordering_stats([p]))[0]
        assert line.startswith(f"dtype ordering: {int(want)} of 1 comparable pairs agree")
    # 1% apart with a 1.4% combined spread: a tie, counted as neither
    (p,) = mx.ordering_pairs([_row(INT4, 0.0303, 0.06), _row(FP16, 0.03, 0.025)], scen, tie)
    assert p["measured_order"] == "=" and p["agree"] is None
    s = mx.ordering_stats([p])["dtype"]
    assert (s["pairs"], s["comparable"], s["agree"]) == (1, 0, 0)
    assert (
        "1 measured tie within run-to-run spread" in mx.ordering_summary(mx.ordering_stats([p]))[0]
    )


def test_cases_of_different_models_and_workloads_are_not_paired():
    a = load_scenario(MATRIX / "scenarios" / "qwen2.5-7b-float32-sequential.yaml")
    b = load_scenario(MATRIX / "scenarios" / "mistral-7b-int4-sequential.yaml")
    assert "workload.requests" in mx.differences(a, b) and mx.pair_kind(a, b) is None


def test_live_status_of_a_figure_cell(validated):
    _, meta, _ = validated
    rows = meta["rows"]
    seq = next(r for r in rows if r["server"] == "sequential")
    got = mx.live_status(rows, seq["model"], seq["dtype"], "sequential")
    assert got["validated"] and got["cases"][0]["energy_error"] == seq["energy_error"]
    assert mx.live_cell(got).startswith("live: ") and seq["case"] in mx.live_cell(got)
    none = mx.live_status(rows, "llama-3.1-8b", "float32", "static b4")
    assert not none["validated"] and mx.live_cell(none) == "unvalidated"
    near = {c["case"] for c in none["nearest"]}
    assert near == {
        r["case"]
        for r in rows
        if (r["model"], r["dtype"]) == ("llama-3.1-8b", "float32")
        or (r["server"] == "static b4" and r["dtype"] == "float32")
        or (r["server"] == "static b4" and r["model"] == "llama-3.1-8b")
    }
    assert near  # the float32 Qwen batches of 4


def test_repeats_are_found_and_said_and_the_smallest_difference_is_reported(validated):
    _, meta, printed = validated
    scen = _scenarios()
    repeats = [
        (a, b) for a, b in itertools.combinations(scen, 2) if not mx.differences(scen[a], scen[b])
    ]
    third = meta["ordering"]["summary"][2]
    assert f"- {third}\n" in printed
    if not repeats:
        assert third.startswith("measured orders: no case of the matrix was measured twice")
    ordered = [p for p in meta["ordering"]["pairs"] if p["kind"] != "repeat"]
    ratios = [_measured_wh(p["a"]) / _measured_wh(p["b"]) for p in ordered]
    smallest = min(max(r, 1 / r) - 1 for r in ratios)
    m = meta["ordering"]["stats"]["measured"]
    assert m["smallest_difference"] == pytest.approx(smallest)
    assert f"the smallest difference of a pair {smallest:.1%}" in third


def test_the_same_scenario_twice_is_a_repeat_not_an_order():
    path = MATRIX / "scenarios" / f"{FP16}.yaml"
    scen = {FP16: load_scenario(path), "again": load_scenario(path)}
    assert mx.pair_kind(scen[FP16], scen["again"]) == "repeat"
    rows = [_row(FP16, 0.03, 0.025), {**_row(FP16, 0.02, 0.026), "case": "again"}]
    (p,) = mx.ordering_pairs(rows, scen, {FP16: 0.01, "again": 0.01}, {FP16: 1.0, "again": 2.0})
    assert p["kind"] == "repeat" and p["agree"] is None and p["agree_at_default"] is None
    stats = mx.ordering_stats([p])
    assert all(stats[k]["comparable"] == 0 for k in mx.PAIR_KINDS)
    assert stats["measured"]["smallest_difference"] is None  # nothing ordered
    assert mx.ordering_summary(stats)[2] == "measured orders: 1 pair of cases repeat one scenario."
