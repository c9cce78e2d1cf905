"""Bad traces and empirical length files: every cell that is not a finite number (or not a
whole one where a count goes), header-only and empty files, missing columns, bytes that are
not UTF-8: refused by `sim run` with exit code 2, one line naming the file (and the row and
column of a bad cell), nothing written."""

from __future__ import annotations

import copy

import pytest
from badinput import SMALL, refused, write_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
GOOD_ROWS = [(0.0, 10, 5), (0.5, 12, 4), (1.0, 8, 6), (1.5, 9, 3)]
COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
#: cells that no column may hold (text, non-finite, negative)
BAD_ANY = ["nan", "NaN", "inf", "-inf", "abc", "-1", "1e400", "0x10", "--", "1,5"]
#: cells that no token-count column may hold (fractional, zero, too large)
BAD_COUNT = ["2.5", "0", "1e30", "9223372036854775808", "-0.5"]


def _trace_scenario(tmp_path, rows_text: str):
    (tmp_path / "trace.csv").write_text(rows_text)
    data = copy.deepcopy(SMALL)
    data["workload"] = {"requests": 3, "arrival": {"kind": "trace", "path": "trace.csv"}}
    return write_scenario(tmp_path / "s.yaml", data)


def _rows(cells: list[list[str]]) -> str:
    return ",".join(COLUMNS) + "\n" + "".join(",".join(r) + "\n" for r in cells)


@FUZZ
@given(
    st.integers(0, len(GOOD_ROWS) - 1),
    st.integers(0, 2),
    st.sampled_from(BAD_ANY + BAD_COUNT),
)
def test_bad_trace_cell(tmp_path_factory, row, col, cell):
    root = tmp_path_factory.mktemp("trace")
    cells = [[str(v) for v in r] for r in GOOD_ROWS]
    if col == 0 and cell in BAD_COUNT and cell not in ("-0.5",):
        cell = "nan"  # arrival times may be fractional or 0: give them a bad one
    cells[row][col] = f'"{cell}"' if "," in cell else cell
    path = _trace_scenario(root, _rows(cells))
    line = refused(["run", path, "--out", root / "o", "--quiet"], root)
    assert "trace.csv" in line
    if cell not in ("1,5",):
        assert f"row {row + 2}" in line and COLUMNS[col] in line


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty
        "arrival_s,prompt_tokens,output_tokens\n",  # header only
        "arrival_s,prompt_tokens\n0,1\n0,1\n0,1\n",  # a column missing
        "a,b,c\n1,2,3\n",  # other columns
        "arrival_s,prompt_tokens,output_tokens\n0,1,1\n",  # fewer rows than requests
        '"arrival_s,prompt_tokens\n',  # an unclosed quote
    ],
)
def test_bad_trace_file(tmp_path, text):
    path = _trace_scenario(tmp_path, text)
    assert "trace.csv" in refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)


def test_trace_not_utf8_or_a_directory(tmp_path):
    path = _trace_scenario(tmp_path, "x")
    (tmp_path / "trace.csv").write_bytes(b"arrival_s,prompt_tokens,output_tokens\n\xff\xfe,1,1\n")
    refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)
    (tmp_path / "trace.csv").unlink()
    (tmp_path / "trace.csv").mkdir()
    refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)


def _empirical_scenario(tmp_path, text: str, column: str = "tokens"):
    (tmp_path / "lengths.csv").write_text(text)
    data = copy.deepcopy(SMALL)
    data["workload"]["prompt_tokens"] = {
        "kind": "empirical",
        "path": "lengths.csv",
        "column": column,
    }
    return write_scenario(tmp_path / "s.yaml", data)


@FUZZ
@given(st.integers(0, 3), st.sampled_from(BAD_ANY + BAD_COUNT))
def test_bad_empirical_length(tmp_path_factory, row, cell):
    root = tmp_path_factory.mktemp("emp")
    values = ["10", "20", "30", "40"]
    values[row] = f'"{cell}"' if "," in cell else cell
    path = _empirical_scenario(root, "tokens\n" + "\n".join(values) + "\n")
    line = refused(["run", path, "--out", root / "o", "--quiet"], root)
    assert "lengths.csv" in line and f"row {row + 2}" in line


@pytest.mark.parametrize("text", ["", "tokens\n", "other\n1\n"])
def test_bad_empirical_file(tmp_path, text):
    path = _empirical_scenario(tmp_path, text)
    assert "lengths.csv" in refused(["run", path, "--out", tmp_path / "o", "--quiet"], tmp_path)
