"""results.tables.read_table: Parquet preferred over CSV, one-line UserError when neither exists."""

from __future__ import annotations

import pandas as pd
import pytest

from llm_energy_sim.config.errors import UserError
from llm_energy_sim.results.tables import has_table, read_table


def test_reads_csv(tmp_path):
    pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}).to_csv(tmp_path / "t.csv", index=False)
    df = read_table(tmp_path, "t")
    assert list(df.columns) == ["a", "b"]
    assert df["b"].tolist() == [0.5, 1.5]


def test_parquet_preferred(tmp_path):
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame({"a": [7, 8]}).to_parquet(tmp_path / "t.parquet", index=False)
    assert read_table(tmp_path, "t")["a"].tolist() == [7, 8]


def test_parquet_and_csv_read_the_same(tmp_path):
    df = pd.DataFrame({"x": [0.1, 0.2, 0.3], "s": ["OK", "OK", "DROPPED"]})
    (tmp_path / "c").mkdir()
    (tmp_path / "p").mkdir()
    df.to_csv(tmp_path / "c" / "t.csv", index=False)
    df.to_parquet(tmp_path / "p" / "t.parquet", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "c", "t"), read_table(tmp_path / "p", "t"))


def test_missing_raises_one_line(tmp_path):
    assert not has_table(tmp_path, "steps")
    with pytest.raises(UserError) as err:
        read_table(tmp_path, "steps")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "steps" in msg
