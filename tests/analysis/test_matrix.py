"""`sim validate matrix` (analysis/matrix.py) on CPU: a matrix directory laid out as
tools/device/matrix.sh lays it out, with `sim run` results standing in for the measured cases,
so the arithmetic is checked against known answers: a run predicted against itself has no
error, and a run made host-slower (2.0, above the profile's default, the median of its
serving-host samples) is compared field by field. The coverage of the 80% intervals is
checked on the committed matrix."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from llm_energy_sim.analysis.matrix import PAIR_KINDS, find_cases, summary_stats
from llm_energy_sim.cli.main import main
from llm_energy_sim.config.errors import UserError
from llm_energy_sim.config.profile import load_profile
from tools.device.matrix_scenarios import parse_cases, write_scenarios

CASES = "qwen2.5-0.5b bfloat16 static static_b4 4\nqwen2.5-0.5b float16 sequential sequential 2\n"
SAME = "qwen2.5-0.5b-bfloat16-static_b4"
SLOWER = "qwen2.5-0.5b-float16-sequential"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    write_scenarios(parse_cases(CASES), root / "scenarios")
    for case, sets in ((SAME, []), (SLOWER, ["--set", "hardware.host_time_factor=2.0"])):
        args = ["run", str(root / "scenarios" / f"{case}.yaml"), *sets, "--out", str(root / case)]
        res = CliRunner().invoke(main, [*args, "--quiet"])
        assert res.exit_code == 0, res.output
    out = root.parent / f"{root.name}-validate"
    res = CliRunner().invoke(main, ["validate", "matrix", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return root, out, res.output


def test_a_run_predicted_against_itself_has_no_error(matrix):
    _, out, _ = matrix
    rows = pd.read_csv(out / "matrix.csv").set_index("case")
    same = rows.loc[SAME]
    assert same["server"] == "static b4" and same["scenario"] == "static_b4"
    for col in ("energy_error", "ttft_p50_error", "tpot_p50_error", "e2e_p50_error"):
        assert same[col] == 0.0, col
    assert same["energy_wh_predicted"] == same["energy_wh_measured"]


def test_errors_are_predicted_over_measured_minus_one(matrix):
    root, out, _ = matrix
    slow = pd.read_csv(out / "matrix.csv").set_index("case").loc[SLOWER]
    meas = json.loads((root / SLOWER / "summary.json").read_text())
    pred = json.loads((out / "predicted" / SLOWER / "summary.json").read_text())
    default = load_profile(pred["profile"])[0].default_host_time_factor()
    assert pred["host_time_factor"] == default < 2.0 and meas["host_time_factor"] == 2.0
    assert pred["provenance"]["host_time_factor"].startswith("median of the")
    want = pred["energy"]["per_request_wh"] / meas["energy"]["per_request_wh"] - 1
    assert slow["energy_error"] == pytest.approx(want, rel=1e-12) and want < 0
    table = pd.read_csv(out / "compare" / f"{SLOWER}.csv").set_index("metric")
    assert slow["tpot_p50_error"] == pytest.approx(table.loc["TPOT p50", "error"], rel=1e-12)
    assert slow["tpot_p50_error"] < 0  # predicted at the median against a slower host


def test_the_markdown_table_and_its_summary(matrix):
    _, out, printed = matrix
    md = (out / "matrix.md").read_text()
    assert md in printed
    assert "| qwen2.5-0.5b | bfloat16 | static b4 | static_b4 | 4 | - |" in md
    rows = pd.read_csv(out / "matrix.csv").to_dict("records")
    s = summary_stats(rows)
    worst = abs(rows[[r["case"] for r in rows].index(SLOWER)]["energy_error"])
    assert s["worst"] == SLOWER and s["worst_abs_energy_error"] == pytest.approx(worst)
    assert s["median_abs_energy_error"] == pytest.approx(worst / 2)  # of 0 and worst
    assert f"worst {worst * 100:.1f}% ({SLOWER})" in md
    assert "no host-speed passes; the profile's default host_time_factor" in md  # said
    meta = json.loads((out / "validate.json").read_text())
    assert meta["summary"]["cases"] == 2 and len(meta["rows"]) == 2


def test_a_case_without_its_scenario_file_is_refused(matrix, tmp_path):
    root, _, _ = matrix
    (tmp_path / SAME).mkdir()
    (tmp_path / SAME / "summary.json").write_text((root / SAME / "summary.json").read_text())
    with pytest.raises(UserError, match="no scenario file"):
        find_cases(tmp_path)
    with pytest.raises(UserError, match="no case directories"):
        find_cases(tmp_path / SAME)


def test_with_nothing_to_order_the_ordering_check_says_so(matrix):
    _, out, printed = matrix
    meta = json.loads((out / "validate.json").read_text())["ordering"]
    assert meta["pairs"] == []  # one model, but a static batch and a sequential server
    assert all(meta["stats"][k]["comparable"] == 0 for k in PAIR_KINDS)
    first = "dtype ordering: no pair of cases differs only in dtype; no pair of the same model"
    assert first in printed and "No pair of cases is comparable." in printed
