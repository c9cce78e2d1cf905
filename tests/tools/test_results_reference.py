"""tools/results_reference.py: a recorded run and its rerun agree; a change beyond 1e-9 is
reported, run metadata (wall time, provenance, install path) is not compared."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tools.results_reference import _diff_json, check, diff_tables, record


def test_table_diffs_use_relative_1e9():
    a = pd.DataFrame({"x": [1.0, np.nan, 3.0], "s": ["ok", "ok", "rejected_429"]})
    assert diff_tables(a, a.assign(x=[1.0 + 1e-12, np.nan, 3.0]), "t") == []
    assert diff_tables(a, a.assign(x=[1.0 + 1e-8, np.nan, 3.0]), "t")
    assert diff_tables(a, a.assign(s=["ok", "ok", "ok"]), "t")
    assert diff_tables(a, a[["s", "x"]], "t")  # column order is part of the table


def test_summary_diff_skips_run_metadata():
    ref = {"simulation_wall_s": 1.0, "profile_path": "/a", "energy": {"total_j": 10.0}}
    out: list[str] = []
    _diff_json(ref, {**ref, "simulation_wall_s": 9.0, "profile_path": "/b"}, "s", out)
    assert out == []
    _diff_json(ref, {**ref, "energy": {"total_j": 10.001}}, "s", out)
    assert out and "total_j" in out[0]


def test_record_then_check_is_clean(tmp_path, monkeypatch):
    import tools.results_reference as rr

    scen = rr.SCENARIOS / "fixed500ms.yaml"
    monkeypatch.setattr(rr, "shipped_scenarios", lambda: [scen])
    record(tmp_path, cap=30, full=set())
    index = json.loads((tmp_path / "index.json").read_text())
    assert index == {"fixed500ms": {"requests": 30, "error": None}}
    assert (tmp_path / "fixed500ms" / "requests.parquet").is_file()
    assert check(tmp_path, []) == 0
