"""results.output readers: a directory without summary.json or without its completion
marker is refused on one line; tables are read from Parquet as from CSV."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import scenario

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.accounting import build_summary, requests_frame, timeline_frame
from llm_energy_sim.results.marker import MARKER, mark_complete
from llm_energy_sim.results.output import read_results, read_summary, write_results
from llm_energy_sim.simulation import simulate


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_dir_without_summary_is_refused(tmp_path):
    pd.DataFrame({"request_id": [0]}).to_csv(tmp_path / "requests.csv", index=False)
    with pytest.raises(UserError) as err:
        read_results(tmp_path)
    assert "summary.json" in _one_line(err) and str(tmp_path) in str(err.value)


def test_dir_without_completion_marker_is_refused(written, tmp_path):
    """A directory whose writer did not finish (no .complete written last) is refused,
    even when its files look whole."""
    d = tmp_path / "copy"
    shutil.copytree(written, d)
    (d / MARKER).unlink()
    with pytest.raises(UserError) as err:
        read_results(d)
    assert "incomplete" in _one_line(err) and MARKER in str(err.value)


def test_bad_summary_is_refused(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"scenario": "x"}))
    mark_complete(tmp_path)
    with pytest.raises(UserError) as err:
        read_summary(tmp_path)
    assert "not a results summary" in _one_line(err)
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(UserError) as err:
        read_summary(tmp_path)
    _one_line(err)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    res = simulate(scenario(workload={**scenario().workload.model_dump(), "requests": 20}))
    df = requests_frame(res)
    out = tmp_path_factory.mktemp("res")
    write_results(out, build_summary(res, df), df, timeline_frame(res))
    mark_complete(out)
    return out


def test_missing_table_is_refused(written, tmp_path):
    d = tmp_path / "copy"
    d.mkdir()
    (d / "summary.json").write_text((written / "summary.json").read_text())
    (d / "requests.csv").write_text((written / "requests.csv").read_text())
    mark_complete(d)
    with pytest.raises(UserError) as err:
        read_results(d)
    assert "timeline" in _one_line(err)


def test_parquet_tables_read_like_csv(written, tmp_path):
    s_csv, r_csv, t_csv = read_results(written)
    d = tmp_path / "pq"
    d.mkdir()
    (d / "summary.json").write_text((written / "summary.json").read_text())
    r_csv.to_parquet(d / "requests.parquet", index=False)
    t_csv.to_parquet(d / "timeline.parquet", index=False)
    mark_complete(d)
    s, r, t = read_results(d)
    assert s == s_csv == json.loads((written / "summary.json").read_text())
    pd.testing.assert_frame_equal(r, r_csv)
    pd.testing.assert_frame_equal(t, t_csv)


def test_requests_csv_streamed_in_slices_is_the_whole_frame_text(tmp_path, monkeypatch):
    """requests.csv written a slice of rows at a time is the text of the whole table's
    DataFrame.to_csv, and so is each slice's row count (slices of 7 rows: several)."""
    from llm_energy_sim.results import output
    from llm_energy_sim.results.accounting import RequestTable

    monkeypatch.setattr(output, "PARQUET_ROWS", 7)
    res = simulate(scenario(workload={**scenario().workload.model_dump(), "requests": 30}))
    table = RequestTable(res)
    output.write_requests_csv(tmp_path / "streamed.csv", table)
    table.to_pandas().to_csv(tmp_path / "whole.csv", index=False)
    assert (tmp_path / "streamed.csv").read_text() == (tmp_path / "whole.csv").read_text()
    assert len(pd.read_csv(tmp_path / "streamed.csv")) == 30
